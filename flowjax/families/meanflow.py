"""MeanFlow (Geng et al. 2025): one- and few-step generation by a network of two times that
learns the flow's average velocity `u(x, s, e)` (`flowjax.losses.meanflow` states the
convention and the identity), trained with one `jax.jvp` per step.

Data `x1: [B, *event]` (floats), a standard normal source and the straight path; times (s, e)
from the paper's logit-normal sampler, a fraction `ratio` of them distinct (elsewhere the
objective is flow matching); adaptive loss weighting with power `power`; for class-conditional
networks, label dropout and classifier-free guidance folded into the target as the paper's
ImageNet setting (`omega`, `kappa`, applied where s lies in `guidance_interval`). Sampling by
flow-map jumps ("flow_map", `steps` network calls; "renoise": jumps to the data with the path
drawn afresh at each next time, the consistency models' sampler), or by any ODE solver of the
instantaneous
velocity `u(x, t, t)`, which also gives the held-out likelihoods (those of
`flowjax.families.CFM`, on that velocity).
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from flowjax import guidance, losses, solvers, sources, time_samplers
from flowjax._utils import Array, check_choice, expand_time
from flowjax.contracts import (
    DataSpec,
    Evaluator,
    Field,
    NetworkSpec,
    SampleMetric,
    Sampler,
    SamplerSettings,
    TrainContext,
)
from flowjax.families.cfm import CFM, CFMConfig


@dataclasses.dataclass(frozen=True)
class FlowMapConfig:
    """What every `flow` section of the MeanFlow family holds: the conditioning.

    label_dropout: probability of the null class (class-conditional networks).
    omega, kappa: guidance folded into the target, `omega v + kappa u(c) + (1 - omega -
      kappa) u(null)` at s in [guidance_low, guidance_high] (omega = 1, kappa = 0: none).
    """

    label_dropout: float = 0.0
    omega: float = 1.0
    kappa: float = 0.0
    guidance_low: float = 0.0
    guidance_high: float = 1.0

    def choices(self) -> dict[str, Collection]:
        return {}

    def check(self) -> None:
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if not 0.0 <= self.guidance_low <= self.guidance_high <= 1.0:
            raise ValueError("the guidance interval must lie in [0, 1]")

    @property
    def guided(self) -> bool:
        return self.omega != 1.0 or self.kappa != 0.0


@dataclasses.dataclass(frozen=True)
class TimePairsConfig(FlowMapConfig):
    """A section of the MeanFlow family that draws its times (s, e) as MeanFlow does.

    ratio: fraction of the batch with s != e (the paper's best: 0.25).
    time_mean, time_std: the logit-normal of both times, in our convention (the paper's
      (-0.4, 1.0) at t = 1 noise is (0.4, 1.0) here); of the start time s alone when
      `end_mean` or `end_std` is set.
    end_mean, end_std: the end time e's own logit-normal (None: time_mean, time_std).
      py-meanflow draws its t (our 1 - s) from (P_mean_t, P_std_t) and its r (our 1 - e) from
      (P_mean_r, P_std_r): time_mean = -P_mean_t, end_mean = -P_mean_r, the stds as they are.
    time_pairing: "sort" (the two draws sorted, then e = s on 1 - ratio of the batch: the
      paper's, py-meanflow's tr_sampler v0) or "max" (e = s on 1 - ratio, then e = max(s, e):
      its v1); `flowjax.time_samplers.TimePairs`.
    """

    ratio: float = 0.25
    time_mean: float = 0.4
    time_std: float = 1.0
    end_mean: float | None = None
    end_std: float | None = None
    time_pairing: str = "sort"

    def choices(self) -> dict[str, Collection]:
        return {**super().choices(), "time_pairing": time_samplers.PAIRINGS}

    def check(self) -> None:
        super().check()
        check_fraction(ratio=self.ratio)
        if self.time_std <= 0:
            raise ValueError(f"time_std must be positive, got {self.time_std}")
        if self.end_std is not None and self.end_std <= 0:
            raise ValueError(f"end_std must be positive, got {self.end_std}")

    def time_pairs(self) -> time_samplers.TimePairs:
        """The sampler of the times (s, e) these settings describe."""
        start = time_samplers.LogitNormal(self.time_mean, self.time_std)
        end = None
        if self.end_mean is not None or self.end_std is not None:
            end = time_samplers.LogitNormal(
                self.time_mean if self.end_mean is None else self.end_mean,
                self.time_std if self.end_std is None else self.end_std,
            )
        return time_samplers.TimePairs(start, self.ratio, end, self.time_pairing)


@dataclasses.dataclass(frozen=True)
class MeanFlowConfig(TimePairsConfig):
    """The `flow` section of a MeanFlow run: its times (`TimePairsConfig`), its conditioning
    (`FlowMapConfig`) and the adaptive weighting `1 / (error + eps)^power` (power 0: the plain
    squared error)."""

    power: float = 1.0
    eps: float = 1e-3

    def check(self) -> None:
        super().check()
        check_weighting(self.power, self.eps)


def check_fraction(**values: float) -> None:
    """ValueError unless each value lies in [0, 1]."""
    for name, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


def check_weighting(power: float, eps: float) -> None:
    """ValueError unless the adaptive weighting's `eps > 0` and `power >= 0`."""
    if eps <= 0 or power < 0:
        raise ValueError(f"need eps > 0 and power >= 0, got eps {eps}, power {power}")


class MeanFlow:
    """MeanFlow on `DataSpec` floats (see the module docstring)."""

    Config = MeanFlowConfig
    sampler_methods = ("flow_map", "renoise", *solvers.METHODS)

    def __init__(self, config: FlowMapConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        if not data.is_float or data.manifold is not None:
            raise ValueError(f"MeanFlow needs Euclidean float data, got {data}")
        if data.num_classes is None and (config.label_dropout or config.guided):
            raise ValueError("label_dropout and guidance need class labels in the data")
        self.config, self.data = config, data
        self.source = sources.Gaussian(1.0)
        self.network = NetworkSpec(data.event_shape, data.event_shape, times=2)
        self.flow_matching = CFM(CFMConfig(), data, mesh)  # the instantaneous velocity's tools

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        """The family's `objective` on the batch, guidance folded in when configured."""
        c = self.config
        cond = guidance.training_conditioning(key, batch, c.label_dropout)
        guided = self._guided_velocity(field, params, cond) if c.guided else None
        x1 = batch["x1"].astype(jnp.float32)
        loss, aux = self.objective(field, params, key, x1, guided, cond, context)
        return loss, {"loss": loss, **aux}

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Callable[[Array, Array, Array], Array] | None,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        """`losses.meanflow_loss` (`velocity`: the guided target velocity, or None)."""
        del context
        c = self.config
        return losses.meanflow_loss(
            field,
            params,
            key,
            x1,
            source=self.source,
            times=c.time_pairs(),
            power=c.power,
            eps=c.eps,
            guided_velocity=velocity,
            cond=cond,
        )

    def velocity(self, field: Field) -> Field:
        """The instantaneous velocity `u(x, t, t)` of the network, an ordinary field."""
        return losses.instantaneous(field)

    def flow_map(self, field: Field) -> Field:
        """The average velocity `u(x, (s, e))` the flow-map sampler jumps with."""
        return field

    def _guided_velocity(
        self, field: Field, params: Any, cond: Mapping[str, Array]
    ) -> Callable[[Array, Array, Array], Array]:
        """The paper's guided target velocity, for samples with a label (not the null class)
        at s within the guidance interval; v elsewhere. With kappa = 0 only the null class's
        output enters: one network call on the batch, not one on the doubled batch."""
        c, v_at = self.config, self.velocity(field)

        def velocity(x: Array, s: Array, v: Array) -> Array:
            if c.kappa:
                conditional, unconditional = guidance.both_halves(v_at, params, x, s, dict(cond))
            else:  # guidance at w = 0: the null class's field, one call
                conditional, unconditional = 0.0, guidance.guided(v_at, 0.0)(params, x, s, **cond)
            mixed = c.omega * v + c.kappa * conditional + (1 - c.omega - c.kappa) * unconditional
            inside = (s >= c.guidance_low) & (s <= c.guidance_high) & (cond["y"] >= 0)
            inside &= cond["y"] < self.data.num_classes
            return jnp.where(expand_time(inside, x), mixed, v)

        return velocity

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """`settings.steps` flow-map jumps ("flow_map": one network call each; "renoise": each
        to the data, the source drawn afresh between them), or an ODE solve of the
        instantaneous velocity by `settings.method` (`flowjax.families.CFM`'s sampler);
        labels in `cond["y"]` are guided with scale `settings.guidance`."""
        check_choice(settings.method, self.sampler_methods, "sampler method")
        if settings.method not in ("flow_map", "renoise"):
            fm = self.flow_matching.sampler(settings)
            return lambda field, *args: fm(self.velocity(field), *args)

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            if "y" in cond:
                field = guidance.guided(field, settings.guidance)
            shape = (n, *self.data.event_shape)
            x0 = self.source.sample(key, shape, jnp.float32)
            u, steps = self.flow_map(field), settings.steps
            if settings.method == "flow_map":
                sol = solvers.flow_map_sample(u, params, x0, num_steps=steps, cond=cond)
            else:
                noise = lambda k: self.source.sample(k, shape, jnp.float32)  # noqa: E731
                sol = solvers.renoised_flow_map_sample(
                    u,
                    params,
                    x0,
                    jax.random.fold_in(key, 1),
                    noise=noise,
                    num_steps=steps,
                    cond=cond,
                )
            return sol.y, sol.stats

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """CFM's held-out scores (NLL or bits/dim) of the instantaneous velocity."""
        scores = self.flow_matching.evaluators(settings)
        return {name: self._on_velocity(evaluate) for name, evaluate in scores.items()}

    def sample_metrics(self) -> dict[str, SampleMetric]:
        return self.flow_matching.sample_metrics()

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        self.flow_matching.render(samples, path, title)

    def _on_velocity(self, evaluate: Evaluator) -> Evaluator:
        """`evaluate` of the network's instantaneous velocity."""

        def on_velocity(field: Field, params: Any, key: Array, data: Mapping[str, Array]) -> dict:
            return evaluate(self.velocity(field), params, key, data)

        return on_velocity

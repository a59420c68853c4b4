"""Continuous flow matching (Lipman et al. 2023; Tong et al. 2024): the family of Gaussian
affine paths, and the worked example of the `flowjax.contracts.Family` contract.

Data `x1: [B, *event]` (floats), a scheduler's path `x_t = alpha_t x1 + sigma_t x0` with
standard normal `x0`, the CFM regression loss with a parameterization (the network predicts
the velocity, x1, x0 or epsilon), a training-time distribution, a minibatch coupling and label
dropout for classifier-free guidance; samples by the Diffrax ODE solvers, likelihoods by the
instantaneous change of variables.

A network that predicts x1 (or x0 / epsilon) is turned into a velocity field for sampling and
likelihoods; that conversion divides by sigma_t (alpha_t), so where the scheduler makes it
vanish at t = 1 (t = 0) the solves run on [t0, t1] = [0, 1 - endpoint_eps] ([endpoint_eps, 1]).
The source (where samples start, the base density of likelihoods) is the path's marginal at t0
without its data term, N(0, sigma_t0^2 I): N(0, I) for CondOT, cosine, polynomial and VP
(whose alpha_0 is 6.6e-3) and N(0, sigma_max^2 I) for the variance-exploding path.
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from flowjax import (
    couplings,
    guidance,
    losses,
    metrics,
    paths,
    plots,
    solvers,
    sources,
    time_samplers,
)
from flowjax._utils import Array, check_choice
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


@dataclasses.dataclass(frozen=True)
class CFMConfig:
    """The `flow` section of a CFM run.

    scheduler: a name in `flowjax.paths.SCHEDULERS` (`sigma_min` applies to "condot").
    parameterization: what the network predicts ("velocity", "x1", "x0", "epsilon").
    time_sampler: a name in `flowjax.time_samplers.TIME_SAMPLERS`; `time_eps` clips t to
      [eps, 1 - eps] (None: the sampler's own default).
    coupling: "independent" or minibatch OT by the "exact", "auction" or "sinkhorn" solver
      (`coupling_reg` for sinkhorn), over the global batch or per device shard
      (`coupling_scope`; see `flowjax.couplings` for the cost), optionally within classes.
    label_dropout: probability of replacing a label by the null class (classifier-free
      guidance), per sample or for the whole batch (`label_dropout_mode`).
    weighting: "none" (the loss in the parameterization's own space) or "velocity" (each
      error weighted by the square of the factor that turns it into a velocity error, so that
      an x1 or epsilon network minimizes the velocity loss; the factor's denominator, sigma_t
      for x1, is floored at `weighting_floor` as Li & He 2025 clip 1 - t).
    endpoint_eps: how far short of a singular end sampling and likelihoods stop (see the
      module docstring).
    """

    scheduler: str = "condot"
    sigma_min: float = 0.0
    parameterization: str = "velocity"
    time_sampler: str = "uniform"
    time_eps: float | None = None
    coupling: str = "independent"
    coupling_reg: float = 0.0
    coupling_scope: str = "global"
    coupling_within: str | None = None
    label_dropout: float = 0.0
    label_dropout_mode: str = "sample"
    weighting: str = "none"
    weighting_floor: float = 0.05
    endpoint_eps: float = 1e-3

    def choices(self) -> dict[str, Collection]:
        return {
            "scheduler": paths.SCHEDULERS,
            "parameterization": losses.LOSS_TARGETS,
            "time_sampler": time_samplers.TIME_SAMPLERS,
            "coupling": ("independent", *couplings.SOLVERS),
            "coupling_scope": couplings.SCOPES,
            "coupling_within": (None, "y"),
            "label_dropout_mode": ("sample", "batch"),
            "weighting": ("none", "velocity"),
        }

    def check(self) -> None:
        for name in ("sigma_min", "coupling_reg", "weighting_floor"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.time_eps is not None and not 0.0 <= self.time_eps < 0.5:
            raise ValueError(f"time_eps must be in [0, 0.5) or None, got {self.time_eps}")
        if not 0.0 < self.endpoint_eps < 0.5:
            raise ValueError(f"endpoint_eps must be in (0, 0.5), got {self.endpoint_eps}")
        if self.coupling == "sinkhorn" and not self.coupling_reg > 0:
            raise ValueError("coupling = 'sinkhorn' needs coupling_reg > 0")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")


def scheduler(config: CFMConfig) -> paths.Scheduler:
    cls = paths.SCHEDULERS[config.scheduler]
    return cls(sigma_min=config.sigma_min) if cls is paths.CondOT else cls()


def time_sampler(config: CFMConfig) -> Any:
    cls = time_samplers.TIME_SAMPLERS[config.time_sampler]
    return cls() if config.time_eps is None else cls(eps=config.time_eps)


def wasserstein2(samples: np.ndarray, data: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Exact W2 between the samples and the held-out points."""
    return {"w2": metrics.wasserstein2(samples, data["x1"])}


class CFM:
    """Continuous flow matching on `DataSpec` floats (see the module docstring)."""

    Config = CFMConfig
    sampler_methods = ("dopri5", *(m for m in solvers.METHODS if m != "dopri5"))

    def __init__(self, config: CFMConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        if not data.is_float:
            raise ValueError(f"continuous flow matching needs float data, got {data.dtype}")
        if data.bits not in (None, 8):
            raise ValueError(f"bits/dim is defined for 8-bit data here, got bits = {data.bits}")
        if data.num_classes is None and (config.label_dropout or config.coupling_within):
            raise ValueError(
                "label_dropout and coupling_within need class labels in the data "
                "(a class-conditional model: model.num_classes)"
            )
        self.config, self.data = config, data
        self.path = paths.AffinePath(scheduler(config))
        self.coupling = couplings.configured(
            config.coupling,
            reg=config.coupling_reg,
            within=config.coupling_within,
            scope=config.coupling_scope,
            mesh=mesh,
        )
        self.time_sampler = time_sampler(config)
        self.t0, self.t1 = self._interval()
        self.source = sources.Gaussian(float(self.path.scheduler.sigma(self.t0)))
        self.network = NetworkSpec(data.event_shape, data.event_shape)

    def _interval(self) -> tuple[float, float]:
        """The times [t0, t1] on which the network's prediction converts to a velocity."""
        s, eps = self.path.scheduler, self.config.endpoint_eps
        kind = self.config.parameterization
        t0 = eps if kind in ("x0", "epsilon") and abs(float(s.alpha(0.0))) < eps else 0.0
        t1 = 1.0 - eps if kind == "x1" and abs(float(s.sigma(1.0))) < eps else 1.0
        return t0, t1

    def velocity(self, field: Field) -> Field:
        """The velocity field of a network trained by this family."""
        kind = self.config.parameterization
        return field if kind == "velocity" else paths.as_velocity(field, self.path, kind)

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        del context
        cond = guidance.training_conditioning(
            key,
            batch,
            self.config.label_dropout,
            whole_batch=self.config.label_dropout_mode == "batch",
        )
        return losses.cfm_loss(
            field,
            params,
            key,
            batch["x1"].astype(jnp.float32),
            path=self.path,
            cond=cond,
            coupling=self.coupling,
            parameterization=self.config.parameterization,
            time_sampler=self.time_sampler,
            weighting=self._weighting(),
        )

    def _weighting(self) -> Callable[[Array], Array] | None:
        if self.config.weighting == "none":
            return None
        kind, floor = self.config.parameterization, self.config.weighting_floor
        return lambda t: self.path.conversion_scale(t, src=kind, dst="velocity", floor=floor) ** 2

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """ODE samples from the source at t0 to t1; labels in `cond["y"]` are guided with scale
        `settings.guidance` (one batched network call per evaluation). An x1 network that
        stops short of t = 1 gives its x1 prediction at t1 as the sample (one call more)."""
        check_choice(settings.method, self.sampler_methods, "sampler method")
        options = {"method": settings.method, "num_steps": settings.steps}

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            if "y" in cond:
                field = guidance.guided(field, settings.guidance)
            x0 = self.source.sample(key, (n, *self.data.event_shape), jnp.float32)
            sol = solvers.sample(
                self.velocity(field), params, x0, cond=cond, t0=self.t0, t1=self.t1, **options
            )
            if self.t1 == 1.0:
                return sol.y, sol.stats
            x1 = field(params, sol.y, jnp.full((n,), self.t1), **cond)
            stats = dataclasses.replace(
                sol.stats, nfe=sol.stats.nfe + 1, nfe_batch=sol.stats.nfe_batch + 1
            )
            return x1, stats

        return sample

    def log_likelihood(
        self, field: Field, params: Any, x1: Array, **options: Any
    ) -> tuple[Array, solvers.Solution]:
        """`log p(x1): [B]` through the flow back to the source (`options`: those of
        `flowjax.solvers.log_likelihood`)."""
        return solvers.log_likelihood(
            self.velocity(field), params, x1, source=self.source, t0=self.t1, t1=self.t0, **options
        )

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """Test NLL in nats (exact divergence, dopri5) of continuous data, or bits/dim of 8-bit
        data (uniform dequantization, one Rademacher probe); a class-conditional network is
        scored unconditionally (the null class)."""
        del settings
        if self.data.bits is None:
            return {"nll": self._nll}
        return {"bits_per_dim": self._bits_per_dim}

    def _nll(self, field: Field, params: Any, key: Array, data: Mapping[str, Array]) -> dict:
        del key
        logp, sol = self.log_likelihood(field, params, data["x1"])
        return {"nll": -jnp.mean(logp), "nll_nfe": sol.stats.nfe_batch}

    def _bits_per_dim(
        self, field: Field, params: Any, key: Array, data: Mapping[str, Array]
    ) -> dict:
        def log_likelihood(k: Array, z: Array) -> Array:
            return self.log_likelihood(field, params, z, key=k, divergence="hutchinson")[0]

        return {"bits_per_dim": jnp.mean(metrics.bits_per_dim(log_likelihood, key, data["x1"]))}

    def sample_metrics(self) -> dict[str, SampleMetric]:
        """W2 to held-out points for unlabelled vector data."""
        if len(self.data.event_shape) == 1 and self.data.num_classes is None:
            return {"w2": wasserstein2}
        return {}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        """A scatter plot of 2-D points or a grid of images in [-1, 1]."""
        plots.samples_png(samples, path, title)

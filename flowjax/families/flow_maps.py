"""The rest of the MeanFlow family: Modular MeanFlow, SplitMeanFlow, shortcut models, AlphaFlow,
SoFlow, Terminal Velocity Matching and Consistency Flow Matching, each `flowjax.families.
MeanFlow` with its own objective (`flowjax.losses.flow_maps`, which maps each paper's time
convention onto ours) and curriculum; they share its data, source, label dropout, guidance
folded into the target velocity (`omega`, `kappa`), flow-map and ODE samplers and likelihoods.

Curricula read the training step from the `TrainContext` (outside a run, their final value).
`teacher = "ema"` computes the targets with the run's EMA parameters (`optim.ema_decay`),
`"online"` with the parameters being trained, stopped.
"""

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax import losses, time_samplers
from flowjax._utils import Array
from flowjax.contracts import Field, NetworkSpec, TrainContext
from flowjax.families.meanflow import (
    FlowMapConfig,
    MeanFlow,
    MeanFlowConfig,
    TimePairsConfig,
    check_fraction,
    check_weighting,
)
from flowjax.losses import flow_maps

Velocity = Callable[[Array, Array, Array], Array] | None
TEACHERS = ("ema", "online")


def progress(context: TrainContext | None) -> Array:
    """The fraction of the run done, `step / steps` (1 outside a run)."""
    if context is None:
        return jnp.asarray(1.0)
    return context.step.astype(jnp.float32) / max(context.steps, 1)


def _teacher(name: str, params: Any, context: TrainContext | None) -> Any:
    if name == "ema" and context is not None:
        return context.ema_params
    return jax.lax.stop_gradient(params)


@dataclasses.dataclass(frozen=True)
class ModularMeanFlowConfig(MeanFlowConfig):
    """MeanFlow's section plus the gradient modulation: lambda rises linearly from 0 to
    `modulation` over the first `warmup` of the run (the paper's curriculum warm-up)."""

    modulation: float = 1.0
    warmup: float = 0.5

    def check(self) -> None:
        super().check()
        check_fraction(modulation=self.modulation, warmup=self.warmup)


class ModularMeanFlow(MeanFlow):
    """Modular MeanFlow (You et al. 2025): MeanFlow with a fraction lambda of the gradient
    through its jvp term (`losses.meanflow_loss(modulation=...)`)."""

    Config = ModularMeanFlowConfig

    def modulation(self, context: TrainContext | None) -> Array:
        c = self.config
        return c.modulation * jnp.minimum(1.0, progress(context) / max(c.warmup, 1e-9))

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        c, modulation = self.config, self.modulation(context)
        loss, aux = losses.meanflow_loss(
            field,
            params,
            key,
            x1,
            source=self.source,
            times=c.time_pairs(),
            power=c.power,
            eps=c.eps,
            guided_velocity=velocity,
            modulation=modulation,
            cond=cond,
        )
        return loss, {**aux, "modulation": modulation}


@dataclasses.dataclass(frozen=True)
class SplitMeanFlowConfig(TimePairsConfig):
    """MeanFlow's times, half the batch distinct (no official code: the public
    reimplementation's boundary share), and its conditioning; no loss weighting."""

    ratio: float = 0.5


class SplitMeanFlow(MeanFlow):
    """SplitMeanFlow (Guo et al. 2025): interval-splitting consistency, no jvp."""

    Config = SplitMeanFlowConfig

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        del context
        source, times = self.source, self.config.time_pairs()
        return flow_maps.split_meanflow_loss(
            field, params, key, x1, source=source, times=times, velocity=velocity, cond=cond
        )


@dataclasses.dataclass(frozen=True)
class ShortcutConfig(FlowMapConfig):
    """The conditioning (`FlowMapConfig`) and: ratio, the self-consistency share of the batch
    (the code's 1/8); levels: step sizes 1, 1/2, ..., 2^-(levels - 1) (the code's 7, flow
    matching at 1/128); teacher: "ema" (the code's) or "online"."""

    ratio: float = 0.125
    levels: int = 7
    teacher: str = "ema"

    def choices(self) -> dict[str, Collection]:
        return {**super().choices(), "teacher": TEACHERS}

    def check(self) -> None:
        super().check()
        check_fraction(ratio=self.ratio)
        if self.levels < 1:
            raise ValueError(f"levels must be positive, got {self.levels}")


class Shortcut(MeanFlow):
    """Shortcut models (Frans et al. 2024): self-consistency over the step size; a step of
    size d from t is `u(x, t, t + d)`."""

    Config = ShortcutConfig

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        c = self.config
        return flow_maps.shortcut_loss(
            field,
            params,
            key,
            x1,
            source=self.source,
            teacher=_teacher(c.teacher, params, context),
            ratio=c.ratio,
            levels=c.levels,
            velocity=velocity,
            cond=cond,
        )


@dataclasses.dataclass(frozen=True)
class AlphaFlowConfig(MeanFlowConfig):
    """MeanFlow's section (half the batch distinct, the B/2 setting) plus alpha's sigmoid
    curriculum from `alpha_start` to `alpha_end` between the fractions `begin` and `end` of
    the run, steepness `gamma`; alpha below `clamp` is 0 (MeanFlow), above `1 - clamp` is 1."""

    ratio: float = 0.5
    alpha_start: float = 1.0
    alpha_end: float = 0.0
    begin: float = 0.0
    end: float = 1.0
    gamma: float = 25.0
    clamp: float = 0.005

    def check(self) -> None:
        super().check()
        check_fraction(alpha_start=self.alpha_start, alpha_end=self.alpha_end, clamp=self.clamp)
        if not 0.0 <= self.begin < self.end <= 1.0:
            raise ValueError(f"need 0 <= begin < end <= 1, got {self.begin}, {self.end}")


class AlphaFlow(MeanFlow):
    """AlphaFlow (Zhang et al. 2025): the alpha-Flow objective under its curriculum."""

    Config = AlphaFlowConfig

    def alpha(self, context: TrainContext | None) -> Array:
        c, k = self.config, progress(context)
        middle = (c.begin + c.end) / 2
        ramp = jax.nn.sigmoid(c.gamma * (k - middle) / (c.end - c.begin))
        alpha = c.alpha_start + (c.alpha_end - c.alpha_start) * ramp
        alpha = jnp.where(k <= c.begin, c.alpha_start, jnp.where(k >= c.end, c.alpha_end, alpha))
        return jnp.where(alpha < c.clamp, 0.0, jnp.where(alpha > 1.0 - c.clamp, 1.0, alpha))

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        c = self.config
        return flow_maps.alpha_flow_loss(
            field,
            params,
            key,
            x1,
            source=self.source,
            alpha=self.alpha(context),
            times=c.time_pairs(),
            power=c.power,
            eps=c.eps,
            velocity=velocity,
            cond=cond,
        )


@dataclasses.dataclass(frozen=True)
class SoFlowConfig(FlowMapConfig):
    """The conditioning (`FlowMapConfig`) and the paper's CIFAR-10 settings in our convention:
    `ratio` the solution-consistency share (1: no flow-matching rows), logit-normal means of
    the flow-matching, start and end times (the paper's (-0.9, -0.9, -4.0) at t = 1 noise,
    negated), one std; `rho` decays exponentially from `rho_start` to `rho_end` over the run;
    adaptive weighting `1 / (error + eps)^power`, power 0.75."""

    ratio: float = 1.0
    fm_mean: float = 0.9
    start_mean: float = 0.9
    end_mean: float = 4.0
    time_std: float = 1.6
    rho_start: float = 1.0
    rho_end: float = 3.125e-4
    power: float = 0.75
    eps: float = 1e-3

    def check(self) -> None:
        super().check()
        check_fraction(ratio=self.ratio)
        check_weighting(self.power, self.eps)
        if self.time_std <= 0:
            raise ValueError(f"time_std must be positive, got {self.time_std}")
        if not 0.0 < self.rho_end <= self.rho_start <= 1.0:
            raise ValueError(f"need 0 < rho_end <= rho_start <= 1, got {self.rho_end}")


class SoFlow(MeanFlow):
    """SoFlow (Luo et al. 2025): the solution-flow loss, no jvp."""

    Config = SoFlowConfig

    def rho(self, context: TrainContext | None) -> Array:
        c = self.config
        return c.rho_start * (c.rho_end / c.rho_start) ** progress(context)

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        c, times = self.config, time_samplers.LogitNormal
        return flow_maps.soflow_loss(
            field,
            params,
            key,
            x1,
            source=self.source,
            rho=self.rho(context),
            ratio=c.ratio,
            times=tuple(times(m, c.time_std) for m in (c.fm_mean, c.start_mean, c.end_mean)),
            power=c.power,
            eps=c.eps,
            velocity=velocity,
            cond=cond,
        )


@dataclasses.dataclass(frozen=True)
class TVMConfig(FlowMapConfig):
    """The conditioning (`FlowMapConfig`) and `teacher`: the terminal velocity's parameters
    ("online", stopped; the paper keeps its own EMA of decay 0.99, "ema" uses the run's)."""

    teacher: str = "online"

    def choices(self) -> dict[str, Collection]:
        return {**super().choices(), "teacher": TEACHERS}


class TVM(MeanFlow):
    """Terminal Velocity Matching (Zhou et al. 2025)."""

    Config = TVMConfig

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        source, teacher = self.source, _teacher(self.config.teacher, params, context)
        return flow_maps.terminal_velocity_loss(
            field, params, key, x1, source=source, teacher=teacher, velocity=velocity, cond=cond
        )


@dataclasses.dataclass(frozen=True)
class ConsistencyFMConfig(FlowMapConfig):
    """Label dropout (no folded guidance) and the paper's CIFAR-10 settings: `segments`,
    `delta`, the velocity weight `alpha`, times `t ~ U(eps, 1)`, and the teacher ("online",
    stopped, as its code; the paper writes an EMA)."""

    segments: int = 2
    delta: float = 1e-3
    alpha: float = 1e-5
    eps: float = 1e-3
    teacher: str = "online"

    def choices(self) -> dict[str, Collection]:
        return {**super().choices(), "teacher": TEACHERS}

    def check(self) -> None:
        super().check()
        if self.segments < 1 or not 0.0 < self.delta < 1.0 / self.segments:
            raise ValueError("need segments >= 1 and 0 < delta < 1 / segments")
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"eps must be in [0, 1), got {self.eps}")


class ConsistencyFM(MeanFlow):
    """Consistency Flow Matching (Yang et al. 2024): a one-time velocity network, straight
    within each segment; the flow-map sampler takes one Euler step per jump (`steps` =
    `segments` is the paper's sampler)."""

    Config = ConsistencyFMConfig

    def __init__(self, config: ConsistencyFMConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if config.guided:
            raise ValueError("Consistency FM has no folded guidance (omega = 1, kappa = 0)")
        self.network = NetworkSpec(self.data.event_shape, self.data.event_shape)

    def velocity(self, field: Field) -> Field:
        return field

    def flow_map(self, field: Field) -> Field:
        def u(params: Any, x: Array, times: tuple[Array, Array], **cond: Any) -> Array:
            return field(params, x, times[0], **cond)

        return u

    def objective(
        self,
        field: Field,
        params: Any,
        key: Array,
        x1: Array,
        velocity: Velocity,
        cond: Mapping[str, Array],
        context: TrainContext | None,
    ) -> tuple[Array, dict[str, Array]]:
        del velocity
        c = self.config
        return flow_maps.consistency_fm_loss(
            field,
            params,
            key,
            x1,
            source=self.source,
            teacher=_teacher(c.teacher, params, context),
            segments=c.segments,
            delta=c.delta,
            alpha=c.alpha,
            eps=c.eps,
            cond=cond,
        )

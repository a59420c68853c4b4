"""Riemannian flow matching (Chen & Lipman 2024) on the manifold the data names (`DataSpec.
manifold`: a sphere, a flat torus, SO(3), a hyperbolic space, or a generated mesh): geodesic
paths from the uniform law (or a wrapped normal), or on a mesh, which has no exponential map,
premetric paths of its spectral distance (simulated trajectories, every point of a stratified
time grid a training pair, as the RFM code trains); the loss in the metric, projected
fixed-step sampling and likelihoods with the exact divergence of the tangent field under the
source's density (on a mesh, the field made tangent by its continuous projection: see
`flowjax.manifolds.mesh`).

The network reads the point's features, its ambient coordinates (a sphere's, a flattened
rotation matrix, a hyperboloid's) or `(cos, sin)` of each angle on a torus (the torus
embedded as a product of circles, a periodic input: `[*event, 2]`), and gives a vector in the
same coordinates, made tangent at the point (on a circle: its component along `(-sin, cos)`
is the angle's velocity).
"""

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from flowjax import couplings, losses, manifolds, ot, paths, plots, solvers, sources
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
class RFMConfig:
    """The `flow` section of a Riemannian FM run.

    source: "uniform" (the uniform law of a compact manifold) or "wrapped_normal" (at the
      manifold's `origin` with `source_scale`: a torus' zero angles, a sphere's x axis, the
      identity rotation, the hyperboloid's apex).
    scheduler: kappa_t of the geodesic path (`flowjax.paths.SCHEDULERS`).
    coupling: "independent" or minibatch OT with the squared geodesic cost by the "exact",
      "auction" or "sinkhorn" solver (`coupling_reg` for sinkhorn), over the global batch or
      each device's shard (`coupling_scope`; `flowjax.couplings`).
    premetric_times: time points per simulated pair on a premetric path (meshes).
    nll_rtol: tolerance of the adaptive solves: the held-out likelihood's (dopri5) and the
      adaptive samplers' ("dopri5", "tsit5").
    nll_method, nll_steps: the held-out likelihood's solver, "dopri5" (at `nll_rtol`) or a
      fixed-step method (`flowjax.solvers.FIXED_STEP`) with `nll_steps` steps.
    nll_divergence: the likelihood's divergence, "exact" or "hutchinson" (one Rademacher probe
      per point: unbiased, for high dimensions, as the RFM code's tori).
    """

    source: str = "uniform"
    source_scale: float = 1.0
    scheduler: str = "condot"
    coupling: str = "independent"
    coupling_reg: float = 0.0
    coupling_scope: str = "global"
    premetric_times: int = 32
    nll_rtol: float = 1e-5
    nll_method: str = "dopri5"
    nll_steps: int = 100
    nll_divergence: str = "exact"

    def choices(self) -> dict[str, Collection]:
        return {
            "source": ("uniform", "wrapped_normal"),
            "scheduler": ("condot", "cosine"),
            "coupling": ("independent", *couplings.SOLVERS),
            "coupling_scope": couplings.SCOPES,
            "nll_method": ("dopri5", *solvers.FIXED_STEP),
            "nll_divergence": solvers.DIVERGENCES,
        }

    def check(self) -> None:
        if self.source_scale <= 0:
            raise ValueError(f"source_scale must be positive, got {self.source_scale}")
        if self.coupling == "sinkhorn" and not self.coupling_reg > 0:
            raise ValueError("coupling = 'sinkhorn' needs coupling_reg > 0")
        if self.premetric_times < 1:
            raise ValueError(f"premetric_times must be positive, got {self.premetric_times}")
        if not 0 < self.nll_rtol < 1:
            raise ValueError(f"nll_rtol must be in (0, 1), got {self.nll_rtol}")
        if self.nll_steps < 1:
            raise ValueError(f"nll_steps must be positive, got {self.nll_steps}")


def features(manifold_name: str, x: Array) -> Array:
    """The network's input for points `x [..., D]`: x on a sphere, `(cos x, sin x)` `[..., D,
    2]` on a torus."""
    return jnp.stack([jnp.cos(x), jnp.sin(x)], -1) if manifold_name == "torus" else x


class RFM:
    """Riemannian FM on `DataSpec` points of a named manifold (the module docstring)."""

    Config = RFMConfig
    sampler_methods = ("rk4", "euler", "midpoint", "geodesic", "dopri5", "tsit5")

    def __init__(self, config: RFMConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        if data.manifold is None or not data.is_float or data.num_classes is not None:
            raise ValueError(f"Riemannian FM needs unlabelled points of a manifold, got {data}")
        self.config, self.data = config, data
        self.manifold = manifolds.by_name(data.manifold, data.event_shape[-1])
        if config.source == "uniform":
            if not hasattr(self.manifold, "uniform"):
                raise ValueError(f"{self.manifold} is not compact: use source='wrapped_normal'")
            self.source = sources.ManifoldUniform(self.manifold)
        elif not hasattr(self.manifold, "log_wrapped_normal"):
            raise ValueError(f"{data.manifold} has no wrapped normal: use source='uniform'")
        else:
            origin = self.manifold.origin
            self.source = sources.WrappedNormal(self.manifold, origin, config.source_scale)
        scheduler = paths.SCHEDULERS[config.scheduler]()
        self.geodesic = hasattr(self.manifold, "expmap")
        if self.geodesic:
            self.path = paths.GeodesicPath(self.manifold, scheduler)
        else:
            self.path = paths.PremetricPath(self.manifold, scheduler)
        self.coupling = couplings.configured(
            config.coupling,
            reg=config.coupling_reg,
            scope=config.coupling_scope,
            mesh=mesh,
            cost=ot.geodesic_cost(self.manifold),
        )
        shape = (*data.event_shape, 2) if data.manifold == "torus" else data.event_shape
        self.network = NetworkSpec(shape, shape)

    def velocity(self, field: Field) -> Field:
        """The network as a tangent velocity field on the manifold's points."""

        def v(params: Any, x: Array, t: Array, **cond: Any) -> Array:
            out = field(params, features(self.data.manifold, x), t, **cond)
            if self.data.manifold == "torus":  # the circles' tangents (-sin, cos)
                return jnp.sum(out * jnp.stack([-jnp.sin(x), jnp.cos(x)], -1), axis=-1)
            return out

        return manifolds.tangent_field(v, self.manifold)

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        """The RFM loss on the batch's points: `losses.rfm_loss` on a geodesic path,
        `losses.premetric_rfm_loss` (`premetric_times` per pair) on a premetric one."""
        del context
        x1 = self.manifold.projx(batch["x1"].astype(jnp.float32))
        v, common = self.velocity(field), {"source": self.source, "coupling": self.coupling}
        if self.geodesic:
            loss, aux = losses.rfm_loss(v, params, key, x1, path=self.path, **common)
        else:
            times = self.config.premetric_times
            loss, aux = losses.premetric_rfm_loss(
                v, params, key, x1, path=self.path, times=times, **common
            )
        return loss, {"loss": loss, **aux}

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """From the source at t = 0: `settings.steps` projected Runge-Kutta steps
        (`solvers.manifold_sample`) of the method, geodesic Euler steps ("geodesic"), or an
        adaptive Diffrax solve ("dopri5", "tsit5" at `nll_rtol`) in ambient coordinates of the
        tangent field, its end projected onto the manifold."""
        check_choice(settings.method, self.sampler_methods, "sampler method")
        geodesic = settings.method == "geodesic"
        if geodesic and not self.geodesic:
            raise ValueError(f"{self.data.manifold} has no exponential map: sample by projection")
        adaptive = settings.method not in solvers.FIXED_STEP and not geodesic
        rtol = self.config.nll_rtol

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            x0 = self.source.sample(key, (n, *self.data.event_shape), jnp.float32)
            v = self.velocity(field)
            if adaptive:
                sol = solvers.sample(
                    v, params, x0, cond=cond, method=settings.method, rtol=rtol, atol=rtol
                )
                return self.manifold.projx(sol.y), sol.stats
            sol = solvers.manifold_sample(
                v,
                params,
                x0,
                manifold=self.manifold,
                method="euler" if geodesic else settings.method,
                step="geodesic" if geodesic else "project",
                num_steps=settings.steps,
                cond=cond,
            )
            return sol.y, sol.stats

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """The held-out negative log-likelihood (nats per point) of `log_likelihood`."""
        del settings
        return {"nll": self._nll}

    def log_likelihood(
        self, field: Field, params: Any, key: Array, x1: Array
    ) -> tuple[Array, dict[str, Array]]:
        """`log p_1(x1) [B]` of points `x1 [B, *event]` by the divergence of the tangent field
        (`nll_divergence`) in a solve by `nll_method`, and its network calls (`nll_nfe`)."""
        x1 = self.manifold.projx(jnp.asarray(x1, jnp.float32))
        rtol, method = self.config.nll_rtol, self.config.nll_method
        steps = {} if method == "dopri5" else {"num_steps": self.config.nll_steps}
        logp, sol = solvers.log_likelihood(
            self.velocity(field),
            params,
            x1,
            key=key,
            divergence=self.config.nll_divergence,
            source=self.source,
            method=method,
            rtol=rtol,
            atol=rtol,
            **steps,
        )
        return logp, {"nll_nfe": sol.stats.nfe_batch}

    def _nll(self, field: Field, params: Any, key: Array, data: Mapping[str, Array]) -> dict:
        logp, stats = self.log_likelihood(field, params, key, data["x1"])
        return {"nll": -jnp.mean(logp), **stats}

    def sample_metrics(self) -> dict[str, SampleMetric]:
        return {}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        """A map of S^2 (or mesh) samples, the angle pairs of torus samples, ...
        (`plots.manifold_png`)."""
        plots.manifold_png(samples, self.data.manifold, path, title)

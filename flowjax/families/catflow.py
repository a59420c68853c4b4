"""CatFlow, variational flow matching on categorical data (Eijkelboom et al. 2024, "Variational
Flow Matching for Graph Generation"): the family of tokens as one-hot vectors in R^V.

Tokens `x1 [B, *event]` in `[0, V)` are one-hot vectors `[B, *event, V]`; the path is the
straight line `x_t = t x1 + (1 - t) x0` from Gaussian noise (or, `source="simplex"`, from the
uniform Dirichlet: the linear simplex FM that Dirichlet FM compares with). The network reads
`x_t` and gives logits of a factorized categorical posterior q(x1 | x_t) per token; its mean
`mu = softmax(logits)` is the x1 prediction, so the velocity is `v = (mu - x_t) / (1 - t)`.
Trained by the cross-entropy of x1 under q (per token), sampled by the ODE solvers from t = 0
to `1 - endpoint_eps`, where each token is drawn from the posterior. Classifier-free
guidance combines the logits (log-probability space).
"""

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from flowjax import guidance, losses, paths, plots, solvers, sources
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
from flowjax.families.tokens import check_token_data


@dataclasses.dataclass(frozen=True)
class CatFlowConfig:
    """The `flow` section of a CatFlow run.

    source: "gaussian" (CatFlow: N(0, I) in R^V) or "simplex" (the uniform Dirichlet: the
      linear-path simplex FM baseline of Dirichlet FM).
    label_dropout: probability of the null class for classifier-free guidance (with labels).
    endpoint_eps: the sampler integrates to t = 1 - endpoint_eps (v is singular at t = 1).
    eval_times: time points (midpoints of a uniform grid) of the held-out cross-entropy.
    """

    source: str = "gaussian"
    label_dropout: float = 0.0
    endpoint_eps: float = 1e-3
    eval_times: int = 8

    def choices(self) -> dict[str, Collection]:
        return {"source": ("gaussian", "simplex")}

    def check(self) -> None:
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if not 0.0 < self.endpoint_eps < 1.0:
            raise ValueError(f"endpoint_eps must be in (0, 1), got {self.endpoint_eps}")
        if self.eval_times < 1:
            raise ValueError(f"eval_times must be at least 1, got {self.eval_times}")


def ode_tokens(
    field: Field,
    velocity: Field,
    params: Any,
    key: Array,
    source: sources.Source,
    shape: tuple[int, ...],
    cond: Mapping[str, Array],
    *,
    t1: float = 1.0,
    **options: Any,
) -> tuple[Array, solvers.SolveStats]:
    """Tokens of a family of continuous token states: `x0 ~ source` of `shape` `[n, *event,
    V]`, the ODE of `velocity` from t = 0 to `t1` (`options` of `solvers.sample`), then each
    token drawn from the posterior logits `field` at `t1` (one network call more)."""
    k_source, k_draw = jax.random.split(key)
    x0 = source.sample(k_source, shape, jnp.float32)
    sol = solvers.sample(velocity, params, x0, cond=cond, t1=t1, **options)
    logits = field(params, sol.y, jnp.full(shape[:1], t1), **cond)
    stats = dataclasses.replace(sol.stats, nfe=sol.stats.nfe + 1, nfe_batch=sol.stats.nfe_batch + 1)
    return jax.random.categorical(k_draw, logits, axis=-1).astype(jnp.int32), stats


class CatFlow:
    """CatFlow on `DataSpec` tokens (see the module docstring)."""

    Config = CatFlowConfig
    sampler_methods = ("dopri5", *(m for m in solvers.METHODS if m != "dopri5"))

    def __init__(self, config: CatFlowConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        del mesh
        check_token_data(data, config.label_dropout, "CatFlow")
        self.config, self.data, self.vocab_size = config, data, data.vocab_size
        self.path = paths.AffinePath(paths.CondOT())
        self.source = (
            sources.Gaussian(1.0)
            if config.source == "gaussian"
            else sources.UniformSimplex(data.vocab_size)
        )
        shape = (*data.event_shape, data.vocab_size)
        self.network = NetworkSpec(shape, shape, output="logits")

    def _x_t(self, key: Array, x1: Array, t: Array) -> Array:
        """`x_t [B, *event, V]` at times `t [B]` on the line from noise to the one-hot `x1`."""
        one_hot = jax.nn.one_hot(x1, self.vocab_size)
        x0 = self.source.sample(key, one_hot.shape, jnp.float32)
        return self.path.sample(x0, one_hot, t).x_t

    def mean(self, field: Field) -> Field:
        """The posterior mean `mu(x_t, t) = softmax(logits)`: the x1 prediction."""

        def mu(params: Any, x: Array, t: Array, **cond: Any) -> Array:
            return jax.nn.softmax(field(params, x, t, **cond).astype(jnp.float32), axis=-1)

        return mu

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        """Cross-entropy of x1 under the posterior, nats per token."""
        del context
        cond = guidance.training_conditioning(key, batch, self.config.label_dropout)
        x1 = batch["x1"].astype(jnp.int32)
        t = jax.random.uniform(jax.random.fold_in(key, 1), x1.shape[:1])
        x_t = self._x_t(jax.random.fold_in(key, 2), x1, t)
        nll, correct = losses.token_cross_entropy(field(params, x_t, t, **cond), x1)
        loss = jnp.mean(nll)
        return loss, {"loss": loss, "accuracy": jnp.mean(correct)}

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """ODE samples of `v = (mu - x) / (1 - t)` from noise to t = 1 - endpoint_eps, then
        each token drawn from the posterior there (one call more); labels in `cond["y"]`
        are guided on the logits with scale `settings.guidance`."""
        check_choice(settings.method, self.sampler_methods, "sampler method")
        t1 = 1.0 - self.config.endpoint_eps

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            if "y" in cond:
                field = guidance.guided(field, settings.guidance)
            velocity = paths.as_velocity(self.mean(field), self.path, "x1")
            options = {"t1": t1, "method": settings.method, "num_steps": settings.steps}
            shape = (n, *self.network.input_shape)
            return ode_tokens(field, velocity, params, key, self.source, shape, cond, **options)

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """The held-out cross-entropy (nats per token) and accuracy of the posterior, averaged
        over `eval_times` times; a class-conditional network on the held-out labels."""
        del settings
        return {"cross_entropy": self._cross_entropy}

    def _cross_entropy(
        self, field: Field, params: Any, key: Array, data: Mapping[str, Array]
    ) -> dict:
        x1 = jnp.asarray(data["x1"], jnp.int32)
        cond = {k: jnp.asarray(v) for k, v in data.items() if k != "x1"}
        return losses.path_cross_entropy(
            field,
            params,
            key,
            x1,
            sample_x_t=self._x_t,
            num_times=self.config.eval_times,
            cond=cond,
        )

    def sample_metrics(self) -> dict[str, SampleMetric]:
        return {}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        """Text as a .txt file, two-token samples as a PNG (`flowjax.plots.token_samples`)."""
        plots.token_samples(samples, self.data.vocabulary, path, title)

"""Dirichlet flow matching (Stark et al. 2024): tokens as points on the simplex, moved from
the uniform Dirichlet to a vertex along the Dirichlet path (`flowjax.paths.DirichletPath`).

Tokens `x1 [B, *event]` in `[0, K)`; states `x [B, *event, K]` on the simplex. The network
reads `x_t` and gives logits of the posterior `p(x1 | x_t)`; the velocity is the posterior
mixture of the conditional velocities, `v = sum_i p_i C(x_i, alpha_t) (e_i - x) dalpha/dt`.
Trained by cross-entropy at `x_t ~ Dir(1 + (alpha - 1) e_{x1})`, with `alpha - 1` drawn from
an exponential law of scale `alpha_scale` as the paper's code does (time `t = (alpha - 1) /
(alpha_max - 1)`, clipped at 1); sampled by a fixed-step ODE solver from the uniform Dirichlet
(t = 0) to alpha_max (t = 1), where each token is drawn from the posterior. Classifier-free
guidance combines the logits (log-probability space).
"""

import dataclasses
from collections.abc import Mapping
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
from flowjax.families.catflow import ode_tokens
from flowjax.families.tokens import check_token_data


@dataclasses.dataclass(frozen=True)
class DirichletFMConfig:
    """The `flow` section of a Dirichlet FM run.

    alpha_max: the concentration at t = 1 (where sampling ends).
    alpha_scale: training draws `alpha = 1 + alpha_scale * Exp(1)`.
    label_dropout: probability of the null class for classifier-free guidance (with labels).
    eval_times: time points (midpoints of a uniform grid) of the held-out cross-entropy.
    """

    alpha_max: float = 8.0
    alpha_scale: float = 2.0
    label_dropout: float = 0.0
    eval_times: int = 8

    def check(self) -> None:
        if not self.alpha_max > 1.0 or not self.alpha_scale > 0.0:
            raise ValueError(
                f"alpha_max must be > 1 and alpha_scale > 0, got {self.alpha_max}, "
                f"{self.alpha_scale}"
            )
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.eval_times < 1:
            raise ValueError(f"eval_times must be at least 1, got {self.eval_times}")


class DirichletFM:
    """Dirichlet flow matching on `DataSpec` tokens (see the module docstring)."""

    Config = DirichletFMConfig
    sampler_methods = ("euler", *(m for m in solvers.METHODS if m not in ("euler", "dopri5")))

    def __init__(self, config: DirichletFMConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        del mesh
        check_token_data(data, config.label_dropout, "Dirichlet FM", min_vocab=2)
        self.config, self.data = config, data
        self.path = paths.DirichletPath(data.vocab_size, config.alpha_max)
        self.source = sources.UniformSimplex(data.vocab_size)
        shape = (*data.event_shape, data.vocab_size)
        self.network = NetworkSpec(shape, shape, output="logits")

    def velocity(self, field: Field) -> Field:
        """The velocity field of a network trained by this family."""

        def v(params: Any, x: Array, t: Array, **cond: Any) -> Array:
            logits = field(params, x, t, **cond).astype(jnp.float32)
            t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), x.shape[:1])
            return self.path.velocity(x, jax.nn.softmax(logits, axis=-1), t)

        return v

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
        alpha = 1.0 + self.config.alpha_scale * jax.random.exponential(
            jax.random.fold_in(key, 1), x1.shape[:1]
        )
        t = jnp.minimum((alpha - 1.0) / (self.config.alpha_max - 1.0), 1.0)
        x_t = self.path.sample_x_t(jax.random.fold_in(key, 2), x1, t)
        nll, correct = losses.token_cross_entropy(field(params, x_t, t, **cond), x1)
        loss = jnp.mean(nll)
        return loss, {"loss": loss, "accuracy": jnp.mean(correct)}

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """Fixed-step ODE samples from the uniform Dirichlet to alpha_max (`settings.steps`
        steps of `settings.method`), then each token drawn from the posterior there (one
        call more); labels in `cond["y"]` are guided on the logits (`settings.guidance`)."""
        check_choice(settings.method, self.sampler_methods, "sampler method")

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            if "y" in cond:
                field = guidance.guided(field, settings.guidance)
            options = {"method": settings.method, "num_steps": settings.steps}
            shape = (n, *self.network.input_shape)
            velocity = self.velocity(field)
            return ode_tokens(field, velocity, params, key, self.source, shape, cond, **options)

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """The held-out cross-entropy (nats per token) and accuracy of the posterior along
        the path, averaged over `eval_times` times."""
        del settings
        return {"cross_entropy": self._cross_entropy}

    def _cross_entropy(
        self, field: Field, params: Any, key: Array, data: Mapping[str, Array]
    ) -> dict:
        cond = {k: jnp.asarray(v) for k, v in data.items() if k != "x1"}
        return losses.path_cross_entropy(
            field,
            params,
            key,
            jnp.asarray(data["x1"], jnp.int32),
            sample_x_t=self.path.sample_x_t,
            num_times=self.config.eval_times,
            cond=cond,
        )

    def sample_metrics(self) -> dict[str, SampleMetric]:
        return {}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        """Text as a .txt file, two-token samples as a PNG (`flowjax.plots.token_samples`)."""
        plots.token_samples(samples, self.data.vocabulary, path, title)

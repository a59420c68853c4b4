"""The autoregressive baseline on tokens: not a flow, the reference that discrete flow
matching's bits per token are compared with, trained by the same system on the same data.

A causal network (`NetworkSpec.causal`: output n depends on inputs <= n, e.g.
`TokenTransformer(causal=True)`) reads the sequence shifted right by one, behind a start token
(token V, the mask row of the token models), and predicts every token from the ones before it:
`log p(x) = sum_n log p(x_n | x_<n)` exactly. Trained by next-token cross-entropy, evaluated by
the exact NLL in bits per token, sampled ancestrally one token per network call. The network's
time input is held at 0. Tokens are read in row-major order of the event.
"""

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from flowjax import guidance, losses, plots, solvers, sources
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
class ARConfig:
    """The `flow` section of an autoregressive run.

    temperature: the sampler's softmax temperature (1: the model's distribution).
    label_dropout: probability of the null class for classifier-free guidance (with labels).
    """

    temperature: float = 1.0
    label_dropout: float = 0.0

    def check(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")


def shift_right(x: Array, start: int) -> Array:
    """`x [B, *event]` -> the network's input: the start token, then x's tokens but the last
    (row-major order), in x's shape."""
    flat = x.reshape(x.shape[0], -1)
    head = jnp.full((x.shape[0], 1), start, x.dtype)
    return jnp.concatenate([head, flat[:, :-1]], axis=1).reshape(x.shape)


def token_log_likelihood(
    field: Field, params: Any, x: Array, start: int, cond: Mapping[str, Array]
) -> Array:
    """`log p(x_n | x_<n)` of every token `[B, *event]` (one network call)."""
    logits = field(params, shift_right(x, start), jnp.zeros(x.shape[0]), **cond)
    return -losses.token_cross_entropy(logits, x)[0]


class AR:
    """The autoregressive baseline on `DataSpec` tokens (see the module docstring)."""

    Config = ARConfig
    sampler_methods = ("ancestral",)

    def __init__(self, config: ARConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        del mesh
        check_token_data(data, config.label_dropout, "the autoregressive baseline")
        self.config, self.data = config, data
        self.start = data.vocab_size
        self.source = sources.MaskToken(data.vocab_size)  # samples start as start tokens
        self.network = NetworkSpec(
            data.event_shape,
            (*data.event_shape, data.vocab_size),
            input_dtype="int32",
            output="logits",
            causal=True,
        )

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        """Next-token cross-entropy in nats per token."""
        del context
        cond = guidance.training_conditioning(key, batch, self.config.label_dropout)
        x1 = batch["x1"].astype(jnp.int32)
        loss = -jnp.mean(token_log_likelihood(field, params, x1, self.start, cond))
        return loss, {"loss": loss, "bits_per_token": loss / math.log(2.0)}

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """Ancestral samples, one token per network call (`prod(event)` calls; each recomputes
        the whole prefix: no key-value cache); labels in `cond["y"]` are guided in
        log-probability space with scale `settings.guidance`."""
        check_choice(settings.method, self.sampler_methods, "sampler method")
        shape, temperature = self.data.event_shape, self.config.temperature

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            if "y" in cond:
                field = guidance.guided(field, settings.guidance)
            length = math.prod(shape)

            def write(i: Array, x: Array) -> Array:
                inputs = shift_right(x.reshape(n, *shape), self.start)
                logits = field(params, inputs, jnp.zeros(n), **cond).reshape(n, length, -1)
                token = jax.random.categorical(
                    jax.random.fold_in(key, i), logits[:, i] / temperature
                )
                return x.at[:, i].set(token.astype(x.dtype))

            x = jax.lax.fori_loop(0, length, write, jnp.full((n, length), self.start, jnp.int32))
            return x.reshape(n, *shape), solvers.exact_stats(n, length, length)

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """The exact NLL of held-out tokens in bits per token (one network call)."""
        del settings
        return {"nll_bits_per_token": self._nll}

    def _nll(self, field: Field, params: Any, key: Array, data: Mapping[str, Array]) -> dict:
        del key
        x1 = jnp.asarray(data["x1"], jnp.int32)
        cond = {k: jnp.asarray(v) for k, v in data.items() if k != "x1"}
        ll = token_log_likelihood(field, params, x1, self.start, cond)
        return {"nll_bits_per_token": -jnp.mean(ll) / math.log(2.0)}

    def sample_metrics(self) -> dict[str, SampleMetric]:
        return {}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        """Text samples as a .txt file (see `flowjax.plots.token_samples`)."""
        plots.token_samples(samples, self.data.vocabulary, path, title)

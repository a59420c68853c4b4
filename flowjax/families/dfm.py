"""Discrete flow matching on mixture paths (Gat et al. 2024): the family of token data.

Data `x1: [B, *event]` integer tokens in `[0, V)` (`DataSpec.vocab_size`), the mixture path of
a scheduler (kappa_t = alpha_t), a mask source (token V) or a uniform one; the network is the
posterior `p_{1|t}` (logits `[B, *event, V]`) trained by cross-entropy or the path's
generalized KL; samples by the CTMC sampler, evaluation by the ELBO in bits per token. With the
mask source the unmasked tokens' posterior is known (`paths.carry_unmasked`) and imposed in
training, sampling and evaluation alike: the network predicts masked tokens only.
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

DFM_SOURCES = ("mask", "uniform")


@dataclasses.dataclass(frozen=True)
class DFMConfig:
    """The `flow` section of a discrete FM run.

    scheduler: kappa_t, a name in `flowjax.paths.SCHEDULERS` ("condot": kappa_t = t,
      "polynomial": t^n with `polynomial_n`, "cosine").
    source: "mask" (every token starts as the mask, token V) or "uniform" over the vocabulary.
    loss: "cross_entropy" or "generalized_kl" (`flowjax.losses.dfm_loss`).
    label_dropout: probability of the null class for classifier-free guidance (with labels).
    elbo_times: the time points of the evaluation's ELBO (`flowjax.losses.dfm_elbo`).
    corrector: beta of the sampler's divergence-free corrector (mask source; 0: none).
    """

    scheduler: str = "condot"
    polynomial_n: float = 1.0
    source: str = "mask"
    loss: str = "cross_entropy"
    label_dropout: float = 0.0
    elbo_times: int = 32
    corrector: float = 0.0

    def choices(self) -> dict[str, Collection]:
        return {
            "scheduler": ("condot", "polynomial", "cosine"),
            "source": DFM_SOURCES,
            "loss": losses.DISCRETE_LOSSES,
        }

    def check(self) -> None:
        if not self.polynomial_n > 0:
            raise ValueError(f"polynomial_n must be > 0, got {self.polynomial_n}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.elbo_times < 1:
            raise ValueError(f"elbo_times must be at least 1, got {self.elbo_times}")
        if self.corrector < 0 or (self.corrector > 0 and self.source != "mask"):
            raise ValueError("corrector must be >= 0, and is defined for the mask source only")


def kappa(config: DFMConfig) -> paths.Scheduler:
    if config.scheduler == "polynomial":
        return paths.Polynomial(config.polynomial_n)
    return paths.SCHEDULERS[config.scheduler]()


class DFM:
    """Discrete flow matching on `DataSpec` tokens (see the module docstring)."""

    Config = DFMConfig
    sampler_methods = solvers.ctmc.JUMPS

    def __init__(self, config: DFMConfig, data: DataSpec, mesh: Mesh | None = None) -> None:
        del mesh
        check_token_data(data, config.label_dropout, "discrete flow matching")
        self.config, self.data = config, data
        self.vocab_size = data.vocab_size
        self.path = paths.MixturePath(kappa(config))
        self.mask = self.vocab_size if config.source == "mask" else None
        self.source = (
            sources.MaskToken(self.vocab_size)
            if config.source == "mask"
            else sources.UniformTokens(self.vocab_size)
        )
        self.network = NetworkSpec(
            data.event_shape,
            (*data.event_shape, self.vocab_size),
            input_dtype="int32",
            output="logits",
        )

    def posterior(self, field: Field) -> Field:
        """The posterior field of a network trained by this family."""
        return field if self.mask is None else paths.carry_unmasked(field, self.mask)

    def loss(
        self,
        field: Field,
        params: Any,
        key: Array,
        batch: Mapping[str, Array],
        context: TrainContext | None = None,
    ) -> tuple[Array, dict[str, Array]]:
        del context
        cond = guidance.training_conditioning(key, batch, self.config.label_dropout)
        return losses.dfm_loss(
            self.posterior(field),
            params,
            key,
            batch["x1"].astype(jnp.int32),
            path=self.path,
            source=self.source,
            loss=self.config.loss,
            cond=cond,
        )

    def sampler(self, settings: SamplerSettings) -> Sampler:
        """CTMC samples from the source (`settings.method`: the sampler's `jump`, `steps`
        network calls); labels in `cond["y"]` are guided in log-probability space with scale
        `settings.guidance` (one doubled call per step)."""
        check_choice(settings.method, self.sampler_methods, "sampler method")
        if settings.method == "confident" and self.mask is None:
            raise ValueError("sampler method 'confident' unmasks: it needs the mask source")

        def sample(
            field: Field, params: Any, key: Array, n: int, cond: Mapping[str, Array]
        ) -> tuple[Array, solvers.SolveStats]:
            if "y" in cond:
                field = guidance.guided(field, settings.guidance)
            k_source, k_sample = jax.random.split(key)
            x0 = self.source.sample(k_source, (n, *self.data.event_shape), jnp.int32)
            sol = solvers.ctmc_euler(
                self.posterior(field),
                params,
                k_sample,
                x0,
                path=self.path,
                num_steps=settings.steps,
                jump=settings.method,
                corrector=self.config.corrector,
                mask=self.mask,
                cond=dict(cond),
            )
            return sol.y, sol.stats

        return sample

    def evaluators(self, settings: SamplerSettings) -> dict[str, Evaluator]:
        """The ELBO on held-out tokens in bits per token (`elbo_times` network calls); a
        class-conditional network is scored on the held-out labels if there are any."""
        del settings
        return {"elbo_bits_per_token": self._elbo}

    def _elbo(self, field: Field, params: Any, key: Array, data: Mapping[str, Array]) -> dict:
        x1 = jnp.asarray(data["x1"], jnp.int32)
        cond = {k: jnp.asarray(v) for k, v in data.items() if k != "x1"}
        nats = losses.dfm_elbo(
            self.posterior(field),
            params,
            key,
            x1,
            path=self.path,
            source=self.source,
            num_times=self.config.elbo_times,
            cond=cond,
        )
        return {"elbo_bits_per_token": losses.bits_per_token(jnp.mean(nats), x1.shape[1:])}

    def sample_metrics(self) -> dict[str, SampleMetric]:
        return {}

    def render(self, samples: np.ndarray, path: Path, title: str) -> None:
        """Text as a .txt file, two-token samples as a PNG (`flowjax.plots.token_samples`)."""
        plots.token_samples(samples, self.data.vocabulary, path, title)

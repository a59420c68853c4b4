"""Distributions of the training time t in [0, 1] (t = 0 noise, t = 1 data), and of the time
pairs (s, e) of two-time (average-velocity) models.

Each sampler is a pytree dataclass called as `sampler(key, shape) -> t` with values clipped to
`[eps, 1 - eps]` (no clipping at the default eps = 0); `TimePairs(...)(key, shape) -> (s, e)`.
"""

from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_domain, pytree_dataclass


def _clip(t: Array, eps: float) -> Array:
    return jnp.clip(t, eps, 1.0 - eps)


@pytree_dataclass
class Uniform:
    """t ~ U[0, 1] (Lipman et al. 2023)."""

    eps: float = 0.0

    def __post_init__(self) -> None:
        check_domain("Uniform eps", self.eps, 0.0, 0.5, open_high=True)

    def __call__(self, key: Array, shape: tuple[int, ...]) -> Array:
        return _clip(jax.random.uniform(key, shape), self.eps)


@pytree_dataclass
class LogitNormal:
    """t = sigmoid(mean + std * n), n ~ N(0, 1) (Esser et al. 2024, rectified-flow transformers)."""

    mean: float = 0.0
    std: float = 1.0
    eps: float = 0.0

    def __post_init__(self) -> None:
        check_domain("LogitNormal std", self.std, 0.0, open_low=True)
        check_domain("LogitNormal eps", self.eps, 0.0, 0.5, open_high=True)

    def __call__(self, key: Array, shape: tuple[int, ...]) -> Array:
        return _clip(jax.nn.sigmoid(self.mean + self.std * jax.random.normal(key, shape)), self.eps)


@pytree_dataclass
class EDMLogNormal:
    """The "skewed" sampler of the Guide's CIFAR-10 recipe: an EDM noise level
    sigma = exp(p_mean + p_std * n) (Karras et al. 2022) mapped to t = 1 / (1 + sigma), clipped
    to [eps, 1]. Under CondOT, sigma is the noise-to-signal ratio (1 - t) / t."""

    p_mean: float = -1.2
    p_std: float = 1.2
    eps: float = 1e-4

    def __post_init__(self) -> None:
        check_domain("EDMLogNormal p_std", self.p_std, 0.0, open_low=True)
        check_domain("EDMLogNormal eps", self.eps, 0.0, 1.0, open_high=True)

    def __call__(self, key: Array, shape: tuple[int, ...]) -> Array:
        sigma = jnp.exp(self.p_mean + self.p_std * jax.random.normal(key, shape))
        return jnp.clip(1.0 / (1.0 + sigma), self.eps, 1.0)


@pytree_dataclass
class TimePairs:
    """`(s, e)`, each of `shape`, with s <= e: two draws of `sampler` sorted, and e = s for a
    fraction `1 - ratio` of them (MeanFlow's sampler; its logit-normal(-0.4, 1) at t = 1 noise
    is (0.4, 1) here)."""

    sampler: Any = LogitNormal(mean=0.4, std=1.0)
    ratio: float = 0.25

    def __post_init__(self) -> None:
        check_domain("TimePairs ratio", self.ratio, 0.0, 1.0)

    def __call__(self, key: Array, shape: tuple[int, ...]) -> tuple[Array, Array]:
        k_times, k_equal = jax.random.split(key)
        a, b = self.sampler(k_times, (2, *shape))
        s, e = jnp.minimum(a, b), jnp.maximum(a, b)
        return s, jnp.where(jax.random.uniform(k_equal, shape) >= self.ratio, s, e)


TIME_SAMPLERS = {"uniform": Uniform, "logit_normal": LogitNormal, "edm": EDMLogNormal}

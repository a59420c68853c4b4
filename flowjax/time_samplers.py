"""Distributions of the training time t in [0, 1] (t = 0 noise, t = 1 data), and of the time
pairs (s, e) of two-time (average-velocity) models.

Each sampler is a pytree dataclass called as `sampler(key, shape) -> t` with values clipped to
`[eps, 1 - eps]` (no clipping at the default eps = 0); `TimePairs(...)(key, shape) -> (s, e)`.
"""

from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_choice, check_domain, pytree_dataclass, static_field


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


PAIRINGS = ("sort", "max")


@pytree_dataclass
class TimePairs:
    """`(s, e)`, each of `shape`, with s <= e, from a draw `a` of `sampler` and a draw `b` of
    `end_sampler` (None: two draws of `sampler`), with e = s for a fraction `1 - ratio`:

    - `pairing` "sort": `s, e = min(a, b), max(a, b)`, then e = s on that fraction (MeanFlow's
      sampler, py-meanflow's `tr_sampler` v0);
    - "max": `s = a`; e = s on that fraction, else b; then `e = max(s, e)` (its v1).

    MeanFlow's convention (t = 1 at the noise, the pair r <= t) maps onto ours by s = 1 - t,
    e = 1 - r, so a logit-normal (m, std) of its t is (-m, std) of s here and one of its r is
    (-m, std) of e: the paper's (-0.4, 1.0) for both is the default (0.4, 1.0); py-meanflow's
    `cifar10_v1.sh`, t ~ (-0.6, 1.6) and r ~ (-4.0, 1.6), is `sampler` (0.6, 1.6) and
    `end_sampler` (4.0, 1.6) with pairing "max" (its min(t, r) is our max(s, e))."""

    sampler: Any = LogitNormal(mean=0.4, std=1.0)
    ratio: float = 0.25
    end_sampler: Any = None
    pairing: str = static_field(default="sort")

    def __post_init__(self) -> None:
        check_domain("TimePairs ratio", self.ratio, 0.0, 1.0)
        check_choice(self.pairing, PAIRINGS, "TimePairs pairing")

    def __call__(self, key: Array, shape: tuple[int, ...]) -> tuple[Array, Array]:
        k_times, k_equal = jax.random.split(key)
        if self.end_sampler is None:
            a, b = self.sampler(k_times, (2, *shape))
        else:
            k_start, k_end = jax.random.split(k_times)
            a, b = self.sampler(k_start, shape), self.end_sampler(k_end, shape)
        equal = jax.random.uniform(k_equal, shape) >= self.ratio
        if self.pairing == "max":
            return a, jnp.maximum(a, jnp.where(equal, a, b))
        s = jnp.minimum(a, b)
        return s, jnp.where(equal, s, jnp.maximum(a, b))


TIME_SAMPLERS = {"uniform": Uniform, "logit_normal": LogitNormal, "edm": EDMLogNormal}

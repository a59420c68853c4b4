"""Source distributions: where a flow starts at t = 0 (the `flowjax.contracts.Source` contract).

Each source is a pytree dataclass with `sample(key, shape, dtype) -> [B, *event]` and
`log_prob(x) -> [B]` (log-density for continuous sources, log-mass for token sources).
`SOURCES` builds a registered source for a run's data: `SOURCES[name](data_spec)`.
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_domain, pytree_dataclass, static_field
from flowjax.contracts import DataSpec, Source
from flowjax.manifolds.base import Manifold


def _event_sum(a: Array) -> Array:
    return jnp.sum(a.reshape(a.shape[0], -1), axis=1)


@pytree_dataclass
class Gaussian:
    """N(0, scale^2 I) over the event (scale = 1: the standard source of Gaussian paths; the
    variance-exploding path starts from its sigma_max)."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        check_domain("Gaussian scale", self.scale, 0.0, open_low=True)

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        return (self.scale * jax.random.normal(key, shape, dtype)).astype(dtype)

    def log_prob(self, x: Array) -> Array:
        d = math.prod(x.shape[1:])
        z = x.astype(jnp.float32) / self.scale
        return -0.5 * _event_sum(jnp.square(z)) - d * (
            jnp.log(self.scale) + 0.5 * math.log(2 * math.pi)
        )


@pytree_dataclass
class MaskToken:
    """Every token is the mask token `mask` (the masked source of discrete flow matching; the
    mask is usually an extra token, `vocab_size`, beyond the data's vocabulary)."""

    mask: int = static_field()

    def __post_init__(self) -> None:
        check_domain("MaskToken mask", self.mask, 0.0)

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.int32) -> Array:
        del key
        return jnp.full(shape, self.mask, dtype)

    def log_prob(self, x: Array) -> Array:
        masked = jnp.all((x == self.mask).reshape(x.shape[0], -1), axis=1)
        return jnp.where(masked, 0.0, -jnp.inf)


@pytree_dataclass
class UniformTokens:
    """Each token uniform over `[0, vocab_size)`, independently."""

    vocab_size: int = static_field()

    def __post_init__(self) -> None:
        check_domain("UniformTokens vocab_size", self.vocab_size, 1.0)

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.int32) -> Array:
        return jax.random.randint(key, shape, 0, self.vocab_size, dtype)

    def log_prob(self, x: Array) -> Array:
        inside = jnp.all(((x >= 0) & (x < self.vocab_size)).reshape(x.shape[0], -1), axis=1)
        d = math.prod(x.shape[1:])
        return jnp.where(inside, -d * math.log(self.vocab_size), -jnp.inf)


@pytree_dataclass
class UniformSimplex:
    """Each vector along the last axis uniform on the simplex of `num_categories` (Dir(1,
    ..., 1)): the start of Dirichlet flow matching. Samples `[B, *event, K]`."""

    num_categories: int = static_field()

    def __post_init__(self) -> None:
        check_domain("UniformSimplex num_categories", self.num_categories, 2.0)

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        if shape[-1] != self.num_categories:
            raise ValueError(f"the last axis must be the {self.num_categories} categories")
        e = jax.random.exponential(key, shape, dtype)  # Dir(1) = normalized Exp(1) draws
        return e / jnp.sum(e, axis=-1, keepdims=True)

    def log_prob(self, x: Array) -> Array:
        inside = jnp.all((x >= 0).reshape(x.shape[0], -1), axis=1)
        vectors = math.prod(x.shape[1:-1])
        return jnp.where(inside, vectors * math.lgamma(self.num_categories), -jnp.inf)


@pytree_dataclass
class ManifoldUniform:
    """The uniform law of a compact `manifold` (one with `uniform` and `log_volume`) for each
    point along the last axis: samples `[B, *event, ambient_dim]`, log-density `-log_volume`
    per point (`-log 4 pi` on S^2, `-d log 2 pi` on T^d)."""

    manifold: Manifold

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        if shape[-1] != self.manifold.ambient_dim:
            raise ValueError(
                f"the last axis must be the manifold's {self.manifold.ambient_dim} coordinates, "
                f"got shape {shape}"
            )
        return self.manifold.uniform(key, shape[:-1]).astype(dtype)

    def log_prob(self, x: Array) -> Array:
        points = math.prod(x.shape[1:-1])
        return jnp.full(x.shape[:1], -points * self.manifold.log_volume)


@pytree_dataclass
class WrappedNormal:
    """`exp_mean(v)` on `manifold` for each point along the last axis, v ~ N(0, scale^2 I) in
    the tangent space at `mean` (`[ambient_dim]`, a point of the manifold): samples `[B,
    *event, ambient_dim]`; log-density by `manifold.log_wrapped_normal`, summed per sample."""

    manifold: Manifold
    mean: Array
    scale: float = 1.0

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        mean = jnp.broadcast_to(jnp.asarray(self.mean, dtype), shape)
        return self.manifold.expmap(mean, self.scale * self.manifold.tangent_normal(key, mean))

    def log_prob(self, x: Array) -> Array:
        return _event_sum(self.manifold.log_wrapped_normal(self.mean, self.scale, x)[..., None])


STANDARD_NORMAL = Gaussian()


def _tokens(data: DataSpec) -> int:
    if data.vocab_size is None:
        raise ValueError(f"a token source needs token data with a vocab_size, got {data}")
    return data.vocab_size


def _continuous(data: DataSpec) -> Gaussian:
    if not data.is_float:
        raise ValueError(f"a Gaussian source needs continuous data, got dtype {data.dtype}")
    return STANDARD_NORMAL


SOURCES: dict[str, Callable[[DataSpec], Source]] = {
    "gaussian": _continuous,
    "mask": lambda data: MaskToken(_tokens(data)),
    "uniform_tokens": lambda data: UniformTokens(_tokens(data)),
}

"""Euclidean space R^d as a manifold: straight lines, the flat metric."""

import math

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass, static_field
from flowjax.manifolds.base import safe_norm


@pytree_dataclass
class Euclidean:
    """R^d, points `[..., d]`; not compact (no `uniform`, no `log_volume`)."""

    d: int = static_field()

    @property
    def dim(self) -> int:
        return self.d

    @property
    def ambient_dim(self) -> int:
        return self.d

    @property
    def origin(self) -> Array:
        return jnp.zeros(self.d)

    def expmap(self, x: Array, u: Array) -> Array:
        return x + u

    def logmap(self, x: Array, y: Array) -> Array:
        return y - x

    def projx(self, x: Array) -> Array:
        return x

    def proju(self, x: Array, u: Array) -> Array:
        return jnp.broadcast_to(u, jnp.broadcast_shapes(x.shape, u.shape))

    def dist(self, x: Array, y: Array) -> Array:
        return safe_norm(y - x)

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        del x
        return jnp.sum(u * v, axis=-1)

    def tangent_normal(self, key: Array, x: Array) -> Array:
        return jax.random.normal(key, x.shape, x.dtype)

    def log_wrapped_normal(self, mean: Array, scale: Array | float, x: Array) -> Array:
        """`[...]` log-density of N(mean, scale^2 I) at x."""
        z = (x - mean) / scale
        return jnp.sum(-0.5 * z * z - jnp.log(scale * math.sqrt(2 * math.pi)), axis=-1)

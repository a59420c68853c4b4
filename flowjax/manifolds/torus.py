"""The flat torus T^d = (R / 2 pi Z)^d: angles in [0, 2 pi), straight lines that wrap."""

import math

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass, static_field
from flowjax.manifolds.base import safe_norm

TAU = 2.0 * math.pi
WRAPS = 3  # windings summed each way by `log_wrapped_normal`


def wrap(a: Array) -> Array:
    """Angles to [-pi, pi)."""
    return jnp.mod(a + math.pi, TAU) - math.pi


@pytree_dataclass
class FlatTorus:
    """T^d, points `[..., d]` of angles in [0, 2 pi); the flat metric; uniform law, log-volume
    `d log 2 pi`. Opposite angles (a difference of exactly pi) take the shorter-way's
    convention of `wrap`, -pi."""

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

    def projx(self, x: Array) -> Array:
        return jnp.mod(x, TAU)

    def proju(self, x: Array, u: Array) -> Array:
        return jnp.broadcast_to(u, jnp.broadcast_shapes(x.shape, u.shape))

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        del x
        return jnp.sum(u * v, axis=-1)

    def expmap(self, x: Array, u: Array) -> Array:
        return jnp.mod(x + u, TAU)

    def logmap(self, x: Array, y: Array) -> Array:
        return wrap(y - x)

    def dist(self, x: Array, y: Array) -> Array:
        return safe_norm(wrap(y - x))

    def uniform(self, key: Array, shape: tuple[int, ...]) -> Array:
        return jax.random.uniform(key, (*shape, self.d), maxval=TAU)

    @property
    def log_volume(self) -> float:
        return self.d * math.log(TAU)

    def tangent_normal(self, key: Array, x: Array) -> Array:
        return jax.random.normal(key, x.shape, x.dtype)

    def log_wrapped_normal(self, mean: Array, scale: Array | float, x: Array) -> Array:
        """`[...]` log-density at `x` of `mean + v` (mod 2 pi), v ~ N(0, scale^2 I_d): per angle
        the Gaussian summed over the windings `2 pi k`, |k| <= `WRAPS`."""
        delta = self.logmap(mean, x)[..., None] + TAU * jnp.arange(-WRAPS, WRAPS + 1)
        log_gauss = -0.5 * (delta / scale) ** 2 - jnp.log(scale * math.sqrt(2 * math.pi))
        return jnp.sum(jax.nn.logsumexp(log_gauss, axis=-1), axis=-1)

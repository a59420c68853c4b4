"""Products of manifolds (e.g. S^2 x T^2 x R^3): coordinates concatenated on the last axis."""

import itertools

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass
from flowjax.manifolds.base import Manifold, safe_norm


@pytree_dataclass
class Product:
    """`factors` side by side: a point `[..., sum of ambient dims]` is the factors' points
    concatenated in order; the metric is the sum of theirs, so `dist` is the root of the
    sum of squared factor distances."""

    factors: tuple[Manifold, ...]

    @property
    def dim(self) -> int:
        return sum(m.dim for m in self.factors)

    @property
    def ambient_dim(self) -> int:
        return sum(m.ambient_dim for m in self.factors)

    @property
    def origin(self) -> Array:
        return jnp.concatenate([m.origin for m in self.factors])

    def split(self, x: Array) -> list[Array]:
        """The factors' coordinates of `x [..., ambient_dim]`."""
        if x.shape[-1] != self.ambient_dim:
            raise ValueError(f"points of {self} have {self.ambient_dim} coordinates, got {x.shape}")
        ends = list(itertools.accumulate(m.ambient_dim for m in self.factors))
        return jnp.split(x, ends[:-1], axis=-1)

    def _each(self, name: str, *arrays: Array) -> list[Array]:
        """Method `name` of every factor on its coordinates of the (broadcast) `arrays`."""
        shape = jnp.broadcast_shapes(*(a.shape for a in arrays))
        parts = zip(*(self.split(jnp.broadcast_to(a, shape)) for a in arrays), strict=True)
        return [getattr(m, name)(*args) for m, args in zip(self.factors, parts, strict=True)]

    def expmap(self, x: Array, u: Array) -> Array:
        return jnp.concatenate(self._each("expmap", x, u), axis=-1)

    def logmap(self, x: Array, y: Array) -> Array:
        return jnp.concatenate(self._each("logmap", x, y), axis=-1)

    def projx(self, x: Array) -> Array:
        return jnp.concatenate(self._each("projx", x), axis=-1)

    def proju(self, x: Array, u: Array) -> Array:
        return jnp.concatenate(self._each("proju", x, u), axis=-1)

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        return sum(self._each("inner", x, u, v))

    def dist(self, x: Array, y: Array) -> Array:
        return safe_norm(jnp.stack(self._each("dist", x, y), axis=-1))

    def log_wrapped_normal(self, mean: Array, scale: Array | float, x: Array) -> Array:
        """The factors' wrapped normals at their parts of mean and x, independent."""
        return sum(
            m.log_wrapped_normal(a, scale, b)
            for m, a, b in zip(self.factors, self.split(mean), self.split(x), strict=True)
        )

    def uniform(self, key: Array, shape: tuple[int, ...]) -> Array:
        keys = jax.random.split(key, len(self.factors))
        return jnp.concatenate(
            [m.uniform(k, shape) for m, k in zip(self.factors, keys, strict=True)], -1
        )

    def tangent_normal(self, key: Array, x: Array) -> Array:
        keys = jax.random.split(key, len(self.factors))
        parts = zip(self.factors, keys, self.split(x), strict=True)
        return jnp.concatenate([m.tangent_normal(k, p) for m, k, p in parts], -1)

    @property
    def log_volume(self) -> float:
        return sum(m.log_volume for m in self.factors)

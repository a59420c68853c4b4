"""The manifold contract and the numerics its formulas share.

A manifold is a frozen dataclass registered as a pytree whose points are arrays `[..., D]` in
its ambient coordinates (`ambient_dim` D; intrinsic dimension `dim`) and whose tangent vectors
at a point have the same shape. Every method broadcasts over the leading axes:

    expmap(x, u) -> y        logmap(x, y) -> u       dist(x, y) -> [...]
    projx(x) -> x            proju(x, u) -> u        inner(x, u, v) -> [...]
    origin -> [D] (a base point)       tangent_normal(key, x) -> u  (N(0, I) in the metric)
    uniform(key, shape) -> [*shape, D] and log_volume (compact manifolds)
    log_wrapped_normal(mean, scale, x) -> [...]  (exp_mean of a tangent Gaussian)

Formulas with a removable singularity (a zero tangent vector, coincident points) are written
so that values, gradients and `jax.jvp` stay finite there.
"""

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax.numpy as jnp

from flowjax._utils import Array

TINY = 1e-30  # below any squared norm that matters in float32; keeps sqrt's gradient finite


def safe_norm(u: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """`||u||` along `axis` with a finite gradient (zero) at u = 0."""
    squared = jnp.sum(u * u, axis=axis, keepdims=keepdims)
    return jnp.where(squared > TINY, jnp.sqrt(jnp.maximum(squared, TINY)), 0.0)


@runtime_checkable
class Manifold(Protocol):
    """Points `[..., ambient_dim]`; see the module docstring for the methods' shapes."""

    @property
    def dim(self) -> int: ...

    @property
    def ambient_dim(self) -> int: ...

    @property
    def origin(self) -> Array: ...

    def expmap(self, x: Array, u: Array) -> Array: ...

    def logmap(self, x: Array, y: Array) -> Array: ...

    def projx(self, x: Array) -> Array: ...

    def proju(self, x: Array, u: Array) -> Array: ...

    def dist(self, x: Array, y: Array) -> Array: ...

    def inner(self, x: Array, u: Array, v: Array) -> Array: ...

    def tangent_normal(self, key: Array, x: Array) -> Array: ...


def tangent_field(v: Callable[..., Array], manifold: Manifold) -> Callable[..., Array]:
    """The field `v` made tangent: at `x` it is evaluated at `projx(x)` and its value
    projected onto the tangent space there (same signature `(params, x, t, **cond)`). Its
    ambient divergence at a point of an embedded manifold is the Riemannian divergence (the
    extension is constant along the normal)."""

    def tangent(params: Any, x: Array, t: Array, **cond: Any) -> Array:
        on = manifold.projx(x)
        return manifold.proju(on, v(params, on, t, **cond))

    return tangent

"""Hyperbolic space H^d in the Lorentz (hyperboloid) model: points `[..., d + 1]` with
`<x, x>_L = -1` and `x_0 > 0`, where `<u, v>_L = -u_0 v_0 + sum_i u_i v_i`; tangent vectors
at x are the u with `<x, u>_L = 0`, on which the Minkowski form is the metric.

Distances use `asinh` of the tangent part's norm rather than `acosh(-<x, y>_L)`, which loses
half the digits for nearby points. Coordinates grow like e^r at distance r from the apex, so in
float32 the identities hold to ~1e-5 within r ~ 3 and degrade beyond (a known limit of the
model); enable float64 (`jax_enable_x64`) for points far out.
"""

import math

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass, static_field
from flowjax.manifolds.base import TINY

SMALL = 1e-6  # below this norm the series of sinh(n) / n and asinh(s) / s are used


def minkowski(u: Array, v: Array) -> Array:
    """`[...]` Minkowski form of `[..., d + 1]` vectors."""
    return jnp.sum(u[..., 1:] * v[..., 1:], axis=-1) - u[..., 0] * v[..., 0]


def _norm(u: Array) -> Array:
    """`[..., 1]` Minkowski norm of tangent vectors (clipped at 0), zero gradient at 0."""
    squared = minkowski(u, u)[..., None]
    return jnp.where(squared > TINY, jnp.sqrt(jnp.maximum(squared, TINY)), 0.0)


@jax.custom_jvp
def onto_hyperboloid(x: Array) -> Array:
    """The point above `x`'s space coordinates, `x_0 = sqrt(1 + |x_{1:}|^2)` (accurate however
    far out), differentiated as the projection along the Minkowski normal, `x / sqrt(-<x,
    x>_L)`: the two agree on the hyperboloid, and a field extended by the latter has the
    Riemannian divergence as its ambient one (`tangent_field`)."""
    space = x[..., 1:]
    return jnp.concatenate([jnp.sqrt(1.0 + jnp.sum(space * space, -1, keepdims=True)), space], -1)


@onto_hyperboloid.defjvp
def _onto_hyperboloid_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    s = jnp.sqrt(jnp.maximum(-minkowski(x, x), SMALL))[..., None]
    return onto_hyperboloid(x), dx / s + minkowski(x, dx)[..., None] * x / s**3


@pytree_dataclass
class Hyperbolic:
    """H^d, points `[..., d + 1]` on the upper sheet of the hyperboloid; not compact (no
    `uniform`, no `log_volume`): a wrapped normal is its source."""

    d: int = static_field()

    @property
    def dim(self) -> int:
        return self.d

    @property
    def ambient_dim(self) -> int:
        return self.d + 1

    @property
    def origin(self) -> Array:
        return jnp.eye(self.d + 1)[0]

    def projx(self, x: Array) -> Array:
        return onto_hyperboloid(x)

    def proju(self, x: Array, u: Array) -> Array:
        return u + minkowski(x, u)[..., None] * x

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        del x
        return minkowski(u, v)

    def expmap(self, x: Array, u: Array) -> Array:
        """`cosh(|u|) x + sinh(|u|) u / |u|`, projected back onto the hyperboloid."""
        n = _norm(u)
        regular = n > SMALL
        sinhc = jnp.where(regular, jnp.sinh(n) / jnp.where(regular, n, 1.0), 1.0 + n * n / 6.0)
        return self.projx(jnp.cosh(n) * x + sinhc * u)

    def _tangent(self, x: Array, y: Array) -> tuple[Array, Array]:
        """(v, |v|_L): y's part tangent at x, `y + <x, y>_L x`, whose norm is sinh(dist);
        written `(y - x) - <y - x, y - x>_L x / 2`, exact (zero) at y = x."""
        e = y - x
        v = e - 0.5 * minkowski(e, e)[..., None] * x
        return v, _norm(v)

    def logmap(self, x: Array, y: Array) -> Array:
        v, s = self._tangent(x, y)
        regular = s > SMALL
        ratio = jnp.where(regular, jnp.arcsinh(s) / jnp.where(regular, s, 1.0), 1.0 - s * s / 6.0)
        return ratio * v

    def dist(self, x: Array, y: Array) -> Array:
        return jnp.arcsinh(self._tangent(x, y)[1][..., 0])

    def transport_from_origin(self, x: Array, v: Array) -> Array:
        """Parallel transport of `v`, tangent at the origin, to x along the geodesic:
        `v + <x, v>_L / (1 + x_0) (o + x)`."""
        coefficient = minkowski(x, v)[..., None] / (1.0 + x[..., :1])
        return v + coefficient * (self.origin + x)

    def tangent_normal(self, key: Array, x: Array) -> Array:
        """A standard normal tangent vector at x: N(0, I_d) at the origin, transported."""
        space = jax.random.normal(key, (*x.shape[:-1], self.d), x.dtype)
        return self.transport_from_origin(x, jnp.pad(space, [(0, 0)] * (x.ndim - 1) + [(1, 0)]))

    def log_wrapped_normal(self, mean: Array, scale: Array | float, x: Array) -> Array:
        """`[...]` log-density (Riemannian volume) at `x` of `exp_mean(v)`, v ~ N(0, scale^2
        I_d): the tangent Gaussian at `log_mean(x)` over the Jacobian `(sinh r / r)^(d - 1)`
        (the exponential map is a diffeomorphism here: one preimage)."""
        r = self.dist(mean, x)
        regular = r > SMALL
        log_sinhc = jnp.where(
            regular, jnp.log(jnp.sinh(r) / jnp.where(regular, r, 1.0)), r * r / 6.0
        )
        log_gauss = -0.5 * (r / scale) ** 2 - self.d * jnp.log(scale * math.sqrt(2 * math.pi))
        return log_gauss - (self.d - 1) * log_sinhc

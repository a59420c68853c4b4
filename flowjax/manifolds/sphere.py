"""The unit sphere S^d in R^(d + 1) with the round metric: great circles.

With `c = <x, y>` and `s = ||y - c x||` (the sine of the angle), the angle is `atan2(s, c)`,
accurate at every separation (arccos loses half the digits near 0 and pi). At the antipode
every direction is a geodesic; `logmap` then takes the tangent direction of the coordinate
axis least aligned with x, so values stay finite and `expmap(x, logmap(x, -x)) = -x`.
"""

import math

import jax
import jax.numpy as jnp

from flowjax._utils import Array, pytree_dataclass, static_field
from flowjax.manifolds.base import safe_norm

SMALL = 1e-6  # below this sine the series of theta / sin(theta) (or the antipode) is used
WRAPS = 3  # preimages of the exponential map summed by `log_wrapped_normal`, on each side


def _sinc(n: Array) -> Array:
    """sin(n) / n with its limit 1 at n = 0 (finite derivatives there)."""
    return jnp.sinc(n / jnp.pi)


@pytree_dataclass
class Sphere:
    """S^d, points `[..., d + 1]` of unit norm; uniform law and log-volume (`-log 4 pi`
    is the uniform log-density on S^2)."""

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
        return x / safe_norm(x, keepdims=True)

    def proju(self, x: Array, u: Array) -> Array:
        return u - jnp.sum(x * u, axis=-1, keepdims=True) * x

    def inner(self, x: Array, u: Array, v: Array) -> Array:
        del x
        return jnp.sum(u * v, axis=-1)

    def expmap(self, x: Array, u: Array) -> Array:
        """`cos(|u|) x + sin(|u|) u / |u|`, projected back onto the sphere."""
        n = safe_norm(u, keepdims=True)
        return self.projx(jnp.cos(n) * x + _sinc(n) * u)

    def _angle(self, x: Array, y: Array) -> tuple[Array, Array, Array]:
        """(theta, c, y - c x): the angle between x and y, their cosine, y's tangent part."""
        c = jnp.sum(x * y, axis=-1, keepdims=True)
        v = y - c * x
        return jnp.arctan2(safe_norm(v, keepdims=True), c), c, v

    def logmap(self, x: Array, y: Array) -> Array:
        theta, c, v = self._angle(x, y)
        s = safe_norm(v, keepdims=True)
        regular = s > SMALL
        ratio = jnp.where(regular, theta / jnp.where(regular, s, 1.0), 1.0 + theta**2 / 6.0)
        # the antipode: pi along the tangent part of the axis least aligned with x
        axis = jax.nn.one_hot(jnp.argmin(jnp.abs(x), axis=-1), x.shape[-1], dtype=x.dtype)
        w = self.proju(x, axis)
        antipodal = jnp.pi * w / safe_norm(w, keepdims=True)
        return jnp.where(regular | (c > 0), ratio * v, antipodal)

    def dist(self, x: Array, y: Array) -> Array:
        return self._angle(x, y)[0][..., 0]

    def uniform(self, key: Array, shape: tuple[int, ...]) -> Array:
        """`[*shape, d + 1]` uniform points (normalized Gaussians)."""
        return self.projx(jax.random.normal(key, (*shape, self.d + 1)))

    @property
    def log_volume(self) -> float:
        """log of the area 2 pi^((d+1)/2) / Gamma((d+1)/2)."""
        k = (self.d + 1) / 2.0
        return math.log(2.0) + k * math.log(math.pi) - math.lgamma(k)

    def tangent_normal(self, key: Array, x: Array) -> Array:
        """An ambient standard normal projected on the tangent space: standard there."""
        return self.proju(x, jax.random.normal(key, x.shape, x.dtype))

    def log_wrapped_normal(self, mean: Array, scale: Array | float, x: Array) -> Array:
        """`[...]` log-density (area measure) at `x` of `exp_mean(v)`, v ~ N(0, scale^2 I_d) in
        the tangent space at `mean`: the Gaussian at every preimage of x on the great circle
        through mean and x (radii r + 2 pi k and 2 pi k - r, `WRAPS` of each), divided by the
        exponential map's Jacobian `(sin rho / rho)^(d - 1)`."""
        r = self.dist(mean, x)[..., None]
        k = jnp.arange(WRAPS, dtype=r.dtype)
        rho = jnp.concatenate([r + 2 * jnp.pi * k, 2 * jnp.pi * (k + 1) - r], axis=-1)
        sine = jnp.maximum(jnp.abs(jnp.sin(r)), 1e-12)
        log_jacobian = (self.d - 1) * (jnp.log(jnp.where(rho > 0, rho, 1.0)) - jnp.log(sine))
        log_jacobian = jnp.where(rho > 0, log_jacobian, 0.0)  # rho = 0: the identity
        log_gauss = -0.5 * (rho / scale) ** 2 - self.d * jnp.log(scale * math.sqrt(2 * math.pi))
        return jax.nn.logsumexp(log_gauss + log_jacobian, axis=-1)

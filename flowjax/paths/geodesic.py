"""Geodesic paths of Riemannian flow matching (Chen & Lipman 2024) on a manifold:

    x_t = exp_{x0}(kappa_t log_{x0}(x1)),

kappa_t a scheduler's alpha_t (kappa_t = t: the constant-speed geodesic); the velocity target
`dx_t` is the time derivative by `jax.jvp`, a tangent vector at x_t.
"""

import jax
import jax.numpy as jnp

from flowjax._utils import Array, batch_time, check_same_shape, expand_time, pytree_dataclass
from flowjax.contracts import PathSample
from flowjax.manifolds.base import Manifold
from flowjax.paths.schedulers import CondOT, Scheduler


@pytree_dataclass
class GeodesicPath:
    """The geodesic path on `manifold` with kappa_t = `scheduler.alpha(t)` (default t).

    Shapes: `x0, x1, x_t, dx_t: [B, *event, ambient_dim]`, `t: [B]` or a scalar.
    """

    manifold: Manifold
    scheduler: Scheduler = CondOT()

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        del key
        check_same_shape(x0, x1, "x0,x1")
        u = self.manifold.logmap(x0, x1)

        def at(t: Array) -> Array:
            return self.manifold.expmap(x0, expand_time(self.scheduler.alpha(t), x1) * u)

        t = batch_time(t, x1).astype(x1.dtype)
        return PathSample(*jax.jvp(at, (t,), (jnp.ones_like(t),)))

"""Premetric paths of Riemannian flow matching on general geometries (Chen & Lipman 2024, Sec.
3.2): for a premetric d of the manifold (a mesh's spectral distance, or any `dist`), x_t is
the flow from x0 of

    u_t(x | x1) = -dkappa_t d(x0, x1) grad_x d(x, x1) / ||grad_x d(x, x1)||^2,

with kappa_t a scheduler's alpha_t, so that d(x_t, x1) = (1 - kappa_t) d(x0, x1) shrinks to 0
at t = 1 (the paper's kappa is our 1 - kappa). The flow has no closed form: it is simulated
(projected Euler) without the network. With the geodesic distance it is the geodesic path.
"""

import jax
import jax.numpy as jnp

from flowjax._utils import (
    Array,
    batch_time,
    check_same_shape,
    expand_time,
    pytree_dataclass,
    static_field,
)
from flowjax.contracts import PathSample
from flowjax.paths.schedulers import CondOT, Scheduler

TINY_GRADIENT = 1e-20  # floor of ||grad d||^2 (zero at x = x1, where the velocity is zero)


@pytree_dataclass
class PremetricPath:
    """The premetric path of `manifold.dist` with kappa_t = `scheduler.alpha(t)`, simulated by
    projected Euler steps (distance gradients only, no network call): `steps` from 0 to each
    sample's t (`sample`), or one trajectory through a whole time grid (`trajectory`, the RFM
    code's training: every grid point is a training pair).

    `manifold` needs `dist`, `projx`, `proju` (e.g. `flowjax.manifolds.TriangleMesh`).
    Shapes: `x0, x1, x_t, dx_t: [B, *event, ambient_dim]`, `t: [B]` or a scalar.
    """

    manifold: object
    scheduler: Scheduler = CondOT()
    steps: int = static_field(default=100)

    def velocity(self, x: Array, x1: Array, d0: Array, t: Array) -> Array:
        """`u_t(x | x1)` `[B, *event, ambient_dim]` at points x, for `d0 = d(x0, x1)
        [B, *event]` and `t [B]`."""
        g = jax.grad(lambda z: jnp.sum(self.manifold.dist(z, x1)))(x)
        g = self.manifold.proju(x, g)
        squared = jnp.maximum(jnp.sum(g * g, axis=-1, keepdims=True), TINY_GRADIENT)
        rate = expand_time(self.scheduler.d_alpha(t), x1)
        return jax.lax.stop_gradient(-rate * d0[..., None] * g / squared)

    def _euler(self, x0: Array, x1: Array, ts: Array) -> tuple[Array, Array]:
        """The states `[T, B, ...]` at the grid `ts [T, B]` (ts[0] the start of x0) and the
        final state, by projected Euler steps between consecutive grid times."""
        d0 = self.manifold.dist(x0, x1)

        def step(x: Array, times: tuple[Array, Array]) -> tuple[Array, Array]:
            t, t_next = times
            u = self.velocity(x, x1, d0, t)
            return self.manifold.projx(x + expand_time(t_next - t, x1) * u), x

        last, states = jax.lax.scan(step, x0, (ts[:-1], ts[1:]))
        return jax.lax.stop_gradient(states), jax.lax.stop_gradient(last)

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        del key
        check_same_shape(x0, x1, "x0,x1")
        t = batch_time(t, x1).astype(x1.dtype)
        ts = jnp.linspace(0.0, 1.0, self.steps + 1, dtype=t.dtype)[:, None] * t
        _, x_t = self._euler(x0, x1, ts)
        return PathSample(x_t, self.velocity(x_t, x1, self.manifold.dist(x0, x1), t))

    def trajectory(self, x0: Array, x1: Array, ts: Array) -> tuple[Array, PathSample]:
        """The path through the increasing grid `ts [T]` (ts[0] = 0): times `[T, B]` and
        `PathSample` `[T, B, *event, ambient_dim]`, by T - 1 Euler steps."""
        check_same_shape(x0, x1, "x0,x1")
        times = jnp.broadcast_to(ts[:, None], (len(ts), x1.shape[0])).astype(x1.dtype)
        states, last = self._euler(x0, x1, times)
        x_t = jnp.concatenate([states, last[None]])
        d0 = self.manifold.dist(x0, x1)
        dx_t = jax.vmap(lambda x, t: self.velocity(x, x1, d0, t))(x_t, times)
        return times, PathSample(x_t, dx_t)

"""Sampling on a manifold with fixed steps: the tangent-projected field and, after every step,
the new state projected onto the manifold (Meta's `RiemannianODESolver` behaviour: Euler,
midpoint, RK4, ...), or geodesic Euler steps `x <- exp_x(h v(x, t))`."""

from collections.abc import Callable, Mapping
from typing import Any

from flowjax._utils import Array, check_choice
from flowjax.manifolds.base import Manifold, tangent_field
from flowjax.solvers.fixed import fixed_step
from flowjax.solvers.ode import Solution

STEPS = ("project", "geodesic")


def manifold_sample(
    v: Callable[..., Array],
    params: Any,
    x0: Array,
    *,
    manifold: Manifold,
    method: str = "euler",
    step: str = "project",
    num_steps: int = 100,
    ts: Array | None = None,
    cond: Mapping[str, Any] | None = None,
    save_trajectory: bool = False,
) -> Solution:
    """Push points `x0 [B, *event, ambient_dim]` of `manifold` from t = 0 to 1 along `v`.

    Args:
      v: a velocity field `v(params, x, t, **cond)`; it is made tangent (`tangent_field`).
      method: a `flowjax.solvers.TABLEAUS` method; step: "project" (the Runge-Kutta result
        projected onto the manifold after every step) or "geodesic" (method "euler" only: the
        step follows the geodesic from x with the initial velocity h v(x, t)).
      num_steps, ts, cond, save_trajectory: as `flowjax.solvers.fixed_step`.

    Returns:
      `Solution` on the manifold, with exact stats (stages x steps network calls per sample).
    """
    check_choice(step, STEPS, "step")
    if step == "geodesic" and method != "euler":
        raise ValueError(f"step='geodesic' takes Euler steps: method='euler', got {method!r}")

    def project(i: Array, t: Array, t_next: Array, x: Array, x_next: Array) -> Array:
        del i, t, t_next
        if step == "geodesic":
            return manifold.expmap(x, x_next - x)
        return manifold.projx(x_next)

    field = tangent_field(v, manifold)
    return fixed_step(
        field,
        params,
        manifold.projx(x0),
        method=method,
        num_steps=num_steps,
        ts=ts,
        cond=cond,
        hook=project,
        save_trajectory=save_trajectory,
    )

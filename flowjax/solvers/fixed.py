"""Fixed-step explicit Runge--Kutta sampling on `jax.lax.scan`, with a hook after every step.

`fixed_step` integrates `dx/dt = v(params, x, t, **cond)` over a time grid `ts`; after each step
a `hook(i, t, t_next, x, x_next)` may replace the new state. Samplers that act between steps
(projection onto a manifold, exponential-map steps, stochastic corrections, guidance) are hooks.
The numbers equal `flowjax.solvers.sample` with the same fixed-step method on a uniform grid.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowjax._utils import Array, call_field, check_choice, check_time
from flowjax.solvers.ode import METHODS, Solution, SolveStats

Tableau = tuple[tuple[tuple[float, ...], ...], tuple[float, ...], tuple[float, ...]]
Hook = Callable[[Array, Array, Array, Array, Array], Array]

# method -> explicit Butcher tableau (a: rows below the diagonal, b: weights, c: nodes), as in
# diffrax.Euler, diffrax.Midpoint, diffrax.Heun and ode.RK4. A step costs len(b) field calls,
# which is ode.METHODS' count per step (tests/test_fixed_step.py counts the calls).
TABLEAUS: dict[str, Tableau] = {
    "euler": ((), (1.0,), (0.0,)),
    "midpoint": (((0.5,),), (0.0, 1.0), (0.0, 0.5)),
    "heun": (((1.0,),), (0.5, 0.5), (0.0, 1.0)),
    "rk4": (
        ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
        (1 / 6, 1 / 3, 1 / 3, 1 / 6),
        (0.0, 0.5, 0.5, 1.0),
    ),
}


def rk_step(
    f: Callable[[Array, Array], Array], tableau: Tableau, t: Array, dt: Array, x: Array
) -> Array:
    """One explicit Runge--Kutta step of `dx/dt = f(x, t)` from `t` to `t + dt`:
    `k_i = dt f(x + sum_j a_ij k_j, t + c_i dt)`, `x_next = x + sum_i b_i k_i`; the `k_i` keep
    the dtype of `x`, whatever that of the times."""
    a, b, c = tableau
    ks: list[Array] = []
    for a_i, c_i in zip(((), *a), c, strict=True):
        x_i = x + sum(a_ij * k for a_ij, k in zip(a_i, ks, strict=True) if a_ij)
        ks.append((dt * f(x_i, t + c_i * dt)).astype(x.dtype))
    return x + sum(b_i * k for b_i, k in zip(b, ks, strict=True) if b_i)


def time_grid(ts: Array | None, t0: float, t1: float, num_steps: int) -> Array:
    """The time grid `[T]`: `ts`, or `num_steps` uniform steps from `t0` to `t1` (in [0, 1])."""
    for name, value in (("ts", ts), ("t0", t0), ("t1", t1)):
        check_time(value, name)
    if ts is None:
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        for name, value in (("t0", t0), ("t1", t1)):
            if jnp.ndim(value) != 0:
                raise ValueError(f"{name} must be a scalar time, got shape {jnp.shape(value)}")
        concrete = not any(isinstance(s, jax.core.Tracer) for s in (t0, t1))
        if concrete and float(t0) == float(t1):
            raise ValueError(f"t0 and t1 must differ, got t0 = t1 = {float(t0)}")
        return jnp.linspace(t0, t1, num_steps + 1)
    if jnp.ndim(ts) != 1 or jnp.shape(ts)[0] < 2:
        raise ValueError(
            f"ts must be a 1-D time grid of at least 2 points, got shape {jnp.shape(ts)}"
        )
    if not isinstance(ts, jax.core.Tracer):
        steps = np.diff(np.asarray(ts))
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise ValueError(f"ts must be strictly increasing or decreasing, got {np.asarray(ts)}")
    return jnp.asarray(ts)


def exact_stats(batch_size: int, nfe: int, num_steps: int) -> SolveStats:
    """The stats of a fixed-step solve: every sample gets `nfe` evaluations in `nfe` batched
    calls over `num_steps` steps, none rejected."""
    batch = (batch_size,)
    return SolveStats(
        nfe=jnp.full(batch, nfe, jnp.int32),
        nfe_batch=jnp.asarray(nfe, jnp.int32),
        num_steps=jnp.full(batch, num_steps, jnp.int32),
        num_rejected=jnp.zeros(batch, jnp.int32),
        max_steps_reached=jnp.zeros(batch, bool),
        success=jnp.ones(batch, bool),
    )


def fixed_step(
    v: Callable[..., Array],
    params: Any,
    x0: Array,
    *,
    method: str = "euler",
    num_steps: int = 100,
    t0: float = 0.0,
    t1: float = 1.0,
    ts: Array | None = None,
    cond: Mapping[str, Any] | None = None,
    hook: Hook | None = None,
    save_trajectory: bool = False,
) -> Solution:
    """Push `x0: [B, *event]` through `dx/dt = v(params, x, t, **cond)` with fixed steps.

    Args:
      v: velocity field `v(params, x: [B, *event], t: [B], **cond) -> [B, *event]`.
      method: "euler", "midpoint", "heun" or "rk4" (see `TABLEAUS`).
      num_steps, t0, t1: `num_steps` uniform steps from `t0` to `t1` (either direction); all
        three are ignored when `ts` is given. `num_steps` must be a Python int.
      ts: optional time grid `[T]`, `T >= 2`, strictly monotone in either direction and possibly
        non-uniform; it takes `T - 1` steps from `ts[0]` to `ts[-1]`. Its values are checked
        when they are concrete (not traced). Times are in x0's dtype, or float32 if narrower.
      cond: keyword arguments (pytrees of `[B, ...]` leaves) passed to `v` at every call.
      hook: `hook(i, t, t_next, x, x_next) -> x_next`, called after every step with the step
        index `i` (int32 scalar, traced), the step's start and end times `t`, `t_next` (scalars),
        the state before the step `x` and the Runge--Kutta result `x_next` (both `[B, *event]`);
        its return value (`[B, *event]`, same dtype) is the state the next step starts from and
        the one saved. Default: the identity. For example
          projected sampler:  `lambda i, t, tn, x, xn: manifold.projx(xn)`
          geodesic Euler:     `lambda i, t, tn, x, xn: manifold.expmap(x, xn - x)`
          stochastic step:    `lambda i, t, tn, x, xn: xn + s * jnp.sqrt(abs(tn - t))
                               * jax.random.normal(jax.random.fold_in(key, i), xn.shape)`
      save_trajectory: if True, `Solution.ts` is the grid `[T]` and `Solution.ys` the states at
        every grid point `[T, B, *event]` (`ys[0] = x0`, `ys[-1] = y`); else both are None.

    Returns:
      `Solution` with `y: [B, *event]` at the last grid time and exact `stats`: each sample gets
      `nfe = stages * steps` field evaluations, made as `nfe_batch` batched calls; no step is
      rejected. Pure: composes with `jax.jit`, `jax.vmap` and `jax.grad` (through `params`,
      `x0`, `cond` and `ts`).
    """
    check_choice(method, TABLEAUS, "method")
    x0 = jnp.asarray(x0)
    if x0.ndim < 2:
        raise ValueError(f"x0 must have shape [B, *event], got shape {x0.shape}")
    x0 = x0.astype(jnp.result_type(x0, float))  # a floating state
    ts = time_grid(ts, t0, t1, num_steps).astype(jnp.promote_types(x0.dtype, jnp.float32))
    n = ts.shape[0] - 1

    def f(x: Array, t: Array) -> Array:
        return call_field(v, params, x, t, cond)

    def step(x: Array, inputs: tuple[Array, Array, Array]) -> tuple[Array, Array | None]:
        i, t, t_next = inputs
        x_next = rk_step(f, TABLEAUS[method], t, t_next - t, x)
        if hook is not None:
            x_next = hook(i, t, t_next, x, x_next)
        return x_next, x_next if save_trajectory else None

    y, xs = jax.lax.scan(step, x0, (jnp.arange(n, dtype=jnp.int32), ts[:-1], ts[1:]))
    stats = exact_stats(x0.shape[0], METHODS[method][1] * n, n)
    if not save_trajectory:
        return Solution(y=y, ts=None, ys=None, stats=stats, method=method)
    return Solution(y=y, ts=ts, ys=jnp.concatenate([x0[None], xs]), stats=stats, method=method)

"""ODE integration of (augmented) flow fields on Diffrax, with exact NFE accounting.

`integrate` solves `dy/dt = f(t, y, cond)` for a batched pytree state `y` (every leaf `[B, ...]`)
in one of two batch modes:

- "joint": the batch is one ODE state with one shared step size (error norm over the whole
  batch), as torchdiffeq and Meta's flow_matching do; NFE numbers are comparable with papers.
- "per_sample": `jax.vmap` over samples; each adapts its own steps. The batched loop runs until
  the slowest sample finishes, so the number of batched field calls is set by that sample.

`sample` is `integrate` applied to a velocity field `v(params, x, t, **cond)`.
"""

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from flowjax._utils import (
    Array,
    call_field,
    check_choice,
    check_time,
    pytree_dataclass,
    static_field,
)


class RK4(diffrax.AbstractERK):
    """The classical 4th-order Runge--Kutta method (fixed steps only; 4 stages)."""

    tableau = diffrax.ButcherTableau(
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        c=np.array([0.5, 0.5, 1.0]),
    )
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms: Any) -> int:
        del terms
        return 4


# method -> (diffrax solver, field evaluations per attempted step, evaluations before the
# first step). Fixed-step methods take `num_steps` uniform steps. The adaptive ones are FSAL
# (first same as last: a step's last stage is the next step's first), so an attempted step
# costs one evaluation fewer than its stages, plus one evaluation at the start; the PID
# controller's initial step-size probe reuses it. tests/test_solvers.py counts the calls.
METHODS: dict[str, tuple[type, int, int]] = {
    "euler": (diffrax.Euler, 1, 0),
    "midpoint": (diffrax.Midpoint, 2, 0),
    "heun": (diffrax.Heun, 2, 0),
    "rk4": (RK4, 4, 0),
    "dopri5": (diffrax.Dopri5, 6, 1),
    "tsit5": (diffrax.Tsit5, 6, 1),
    "dopri8": (diffrax.Dopri8, 13, 1),
}
FIXED_STEP = ("euler", "midpoint", "heun", "rk4")
BATCH_MODES = ("joint", "per_sample")
OPTIONS = (
    "method",
    "t0",
    "t1",
    "num_steps",
    "rtol",
    "atol",
    "save_at",
    "batch_mode",
    "max_steps",
    "adjoint",
)


def check_options(options: Mapping[str, Any], caller: str) -> None:
    """Raise a ValueError naming any keyword that `integrate` does not take."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown keyword arguments {unknown} for {caller}; expected {OPTIONS}")


@pytree_dataclass
class SolveStats:
    """Counts of one solve. Per-sample fields are `[B]`; in joint mode all samples share them.

    nfe: field evaluations each sample received.
    nfe_batch: batched field calls made (the cost of the solve, in network calls).
    num_steps: attempted steps (accepted + rejected); num_rejected: rejected steps.
    max_steps_reached: True where the solver stopped at `max_steps` before the final time.
    success: True where the solve reached the final time without error.
    """

    nfe: Array
    nfe_batch: Array
    num_steps: Array
    num_rejected: Array
    max_steps_reached: Array
    success: Array


@pytree_dataclass
class Solution:
    """Final state `y` (pytree of `[B, ...]`), saved trajectory `ys` (`[T, B, ...]` at times
    `ts`, or None) and `stats`."""

    y: Any
    ts: Array | None
    ys: Any
    stats: SolveStats
    method: str = static_field()


def _validate(
    method: str,
    batch_mode: str,
    t0: float,
    t1: float,
    num_steps: int,
    rtol: float,
    atol: float,
    max_steps: int,
    save_at: Array | None,
) -> None:
    check_choice(method, METHODS, "method")
    check_choice(batch_mode, BATCH_MODES, "batch_mode")
    if method in FIXED_STEP and (not isinstance(num_steps, int) or num_steps < 1):
        raise ValueError(f"num_steps must be a positive int for method {method!r}, got {num_steps}")
    if method not in FIXED_STEP and not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps must be a positive int, got {max_steps}")
    for name, value in (("t0", t0), ("t1", t1)):
        if jnp.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar time, got shape {jnp.shape(value)}")
    if save_at is not None and jnp.ndim(save_at) != 1:
        raise ValueError(f"save_at must be a 1-D time grid, got shape {jnp.shape(save_at)}")
    if any(isinstance(a, jax.core.Tracer) for a in (t0, t1, save_at)):
        return  # the checks below need concrete times
    if float(t0) == float(t1):
        raise ValueError(f"t0 and t1 must differ, got t0 = t1 = {float(t0)}")
    if save_at is not None:
        grid = np.asarray(save_at) * np.sign(float(t1) - float(t0))
        lo, hi = sorted((float(t0), float(t1)))
        if np.any(np.diff(grid) < 0) or np.min(save_at) < lo or np.max(save_at) > hi:
            raise ValueError(
                f"save_at must run monotonically from t0={float(t0)} to t1={float(t1)}"
            )


def _stats(sol: diffrax.Solution, method: str, batch: int) -> SolveStats:
    _, per_step, initial = METHODS[method]
    num_steps = jnp.asarray(sol.stats["num_steps"])
    nfe = per_step * num_steps + initial
    return SolveStats(
        nfe=jnp.broadcast_to(nfe, (batch,)),
        nfe_batch=jnp.max(nfe),
        num_steps=jnp.broadcast_to(num_steps, (batch,)),
        num_rejected=jnp.broadcast_to(jnp.asarray(sol.stats["num_rejected_steps"]), (batch,)),
        max_steps_reached=jnp.broadcast_to(
            sol.result == diffrax.RESULTS.max_steps_reached, (batch,)
        ),
        success=jnp.broadcast_to(sol.result == diffrax.RESULTS.successful, (batch,)),
    )


def _warn_on_failure(stats: SolveStats) -> None:
    def warn(failed: Array, hit_max: Array) -> None:
        if failed:
            warnings.warn(
                f"ODE solve failed for {int(failed)} sample(s) ({int(hit_max)} hit max_steps); "
                "see Solution.stats and raise max_steps or loosen rtol/atol",
                RuntimeWarning,
                stacklevel=2,
            )

    jax.debug.callback(
        warn, jnp.sum(~stats.success), jnp.sum(stats.max_steps_reached), ordered=False
    )


def integrate(
    f: Callable[[Array, Any, Any], Any],
    y0: Any,
    *,
    cond: Any = None,
    method: str = "dopri5",
    t0: float = 0.0,
    t1: float = 1.0,
    num_steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    save_at: Array | None = None,
    batch_mode: str = "joint",
    max_steps: int = 10_000,
    adjoint: diffrax.AbstractAdjoint | None = None,
) -> Solution:
    """Solve `dy/dt = f(t, y, cond)` from `t0` to `t1` (either direction).

    Args:
      f: batched vector field; `t` is a scalar, `y` and `cond` pytrees of `[B, ...]` leaves.
      method: "euler", "midpoint", "heun", "rk4" (fixed, `num_steps` uniform steps) or
        "dopri5", "tsit5", "dopri8" (adaptive, `rtol`/`atol`).
      save_at: optional 1-D time grid (from t0 towards t1) at which to save the state.
      batch_mode: "joint" or "per_sample" (see the module docstring).
      max_steps: step budget; reaching it is reported in `stats` and warned about, not raised.
    """
    _validate(method, batch_mode, t0, t1, num_steps, rtol, atol, max_steps, save_at)
    batch = jax.tree.leaves(y0)[0].shape[0]
    solver = METHODS[method][0]()
    if method in FIXED_STEP:
        controller = diffrax.StepTo(ts=jnp.linspace(t0, t1, num_steps + 1))
    else:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
    saveat = diffrax.SaveAt(t1=True, ts=None if save_at is None else jnp.asarray(save_at))

    def solve(field, y, c):  # noqa: ANN001
        return diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            solver,
            t0=t0,
            t1=t1,
            dt0=None,
            y0=y,
            args=c,
            saveat=saveat,
            stepsize_controller=controller,
            max_steps=max_steps,
            throw=False,
            adjoint=adjoint or diffrax.RecursiveCheckpointAdjoint(),
        )

    if batch_mode == "joint":
        sol = solve(f, y0, cond)
        ys = sol.ys  # [T + 1, B, ...]
    else:
        add, drop = (lambda a: a[None]), (lambda a: a[0])

        def f_one(t, y, c):  # noqa: ANN001
            return jax.tree.map(drop, f(t, jax.tree.map(add, y), jax.tree.map(add, c)))

        sol = eqx.filter_vmap(lambda y, c: solve(f_one, y, c))(y0, cond)
        ys = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), sol.ys)  # [T + 1, B, ...]
    stats = _stats(sol, method, batch)
    _warn_on_failure(stats)
    final = jax.tree.map(lambda a: a[-1], ys)
    traj = None if save_at is None else jax.tree.map(lambda a: a[:-1], ys)
    ts = None if save_at is None else jnp.asarray(save_at)
    return Solution(y=final, ts=ts, ys=traj, stats=stats, method=method)


def sample(
    v: Callable[..., Array],
    params: Any,
    x0: Array,
    *,
    cond: Mapping[str, Any] | None = None,
    **solver_options: Any,
) -> Solution:
    """Push `x0: [B, *event]` through the ODE `dx/dt = v(params, x, t, **cond)`.

    `solver_options` are those of `integrate` (method, t0, t1, num_steps, rtol, atol, save_at,
    batch_mode, max_steps, adjoint); `Solution.y` is the final state `[B, *event]`.
    """
    x0 = jnp.asarray(x0)
    if x0.ndim < 2:
        raise ValueError(f"x0 must have shape [B, *event], got shape {x0.shape}")
    check_options(solver_options, "sample")
    for name in ("t0", "t1", "save_at"):
        check_time(solver_options.get(name), name)

    def field(t, x, c):  # noqa: ANN001
        return call_field(v, params, x, t, c)

    return integrate(field, x0, cond=dict(cond or {}), **solver_options)

"""Few-step sampling with a flow map: a network of two times `u(x, s, e)` (the average
velocity from s to e, `flowjax.losses.meanflow`) jumps `x <- x + (e - s) u(x, s, e)` between
consecutive points of a time grid, one network call per step, or jumps to the data and draws
the path afresh at the next time (re-noising, the consistency models' few-step sampler)."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array
from flowjax.solvers.fixed import exact_stats, time_grid
from flowjax.solvers.ode import Solution


def _jump(
    u: Callable[..., Array], params: Any, x: Array, s: Array, e: Array, cond: Mapping[str, Any]
) -> Array:
    """`X(x, s, e) = x + (e - s) u(x, s, e)` `[B, *event]` for scalar times s and e."""
    batch = jnp.ones(x.shape[:1], x.dtype)
    return x + (e - s) * u(params, x, (s * batch, e * batch), **cond)


def flow_map_sample(
    u: Callable[..., Array],
    params: Any,
    x0: Array,
    *,
    num_steps: int = 1,
    ts: Array | None = None,
    cond: Mapping[str, Any] | None = None,
) -> Solution:
    """Push `x0 [B, *event]` from t = 0 to 1 (or along the grid `ts [T]`) by `num_steps`
    flow-map jumps; `Solution` with exact stats (one batched call per step)."""
    grid = time_grid(ts, 0.0, 1.0, num_steps)
    cond = dict(cond or {})

    def jump(x: Array, times: tuple[Array, Array]) -> tuple[Array, None]:
        return _jump(u, params, x, *times, cond), None

    y, _ = jax.lax.scan(jump, x0, (grid[:-1], grid[1:]))
    steps = len(grid) - 1
    return Solution(y, None, None, exact_stats(x0.shape[0], steps, steps), "flow_map")


def renoised_flow_map_sample(
    u: Callable[..., Array],
    params: Any,
    x0: Array,
    key: Array,
    *,
    noise: Callable[[Array], Array] | None = None,
    num_steps: int = 1,
    ts: Array | None = None,
    cond: Mapping[str, Any] | None = None,
) -> Solution:
    """Push `x0 [B, *event]` from t = 0 to 1 as consistency models sample in several steps
    (SoFlow's two-step sampler): from each time `t_i` of the grid (`ts [T]` ending at 1, or
    `num_steps` uniform steps) but the last, jump to the data, `x1 = X(x, t_i, 1)`, and draw
    the straight path afresh at the next time, `x = (1 - t_{i+1}) eps + t_{i+1} x1` with `eps =
    noise(key_i)` (a standard normal like `x0` without `noise`); the last step is a plain jump.
    One batched call per step (exact stats); one step is `flow_map_sample`'s."""
    grid = time_grid(ts, 0.0, 1.0, num_steps)
    if not isinstance(grid, jax.core.Tracer) and float(grid[-1]) != 1.0:
        raise ValueError(f"a re-noised grid must end at the data, t = 1; got {float(grid[-1])}")
    cond = dict(cond or {})
    if noise is None:
        noise = lambda k: jax.random.normal(k, x0.shape, x0.dtype)  # noqa: E731

    def step(x: Array, inputs: tuple[Array, Array, Array]) -> tuple[Array, None]:
        t, t_next, k = inputs
        x1 = _jump(u, params, x, t, jnp.ones_like(t), cond)
        return (1.0 - t_next) * noise(k) + t_next * x1, None

    steps = len(grid) - 1
    keys = jax.random.split(key, steps - 1)
    x, _ = jax.lax.scan(step, x0, (grid[:-2], grid[1:-1], keys))
    y = _jump(u, params, x, grid[-2], grid[-1], cond)
    return Solution(y, None, None, exact_stats(x0.shape[0], steps, steps), "renoised_flow_map")

"""Few-step sampling with a flow map: a network of two times `u(x, s, e)` (the average
velocity from s to e, `flowjax.losses.meanflow`) jumps `x <- x + (e - s) u(x, s, e)` between
consecutive points of a time grid, one network call per step."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array
from flowjax.solvers.fixed import exact_stats, time_grid
from flowjax.solvers.ode import Solution


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
    batch = jnp.ones(x0.shape[:1], x0.dtype)

    def jump(x: Array, times: tuple[Array, Array]) -> tuple[Array, None]:
        s, e = times
        return x + (e - s) * u(params, x, (s * batch, e * batch), **cond), None

    y, _ = jax.lax.scan(jump, x0, (grid[:-1], grid[1:]))
    steps = len(grid) - 1
    return Solution(y, None, None, exact_stats(x0.shape[0], steps, steps), "flow_map")

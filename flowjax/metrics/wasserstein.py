"""Wasserstein distances and path energy between sample sets."""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import solvers
from flowjax._utils import Array
from flowjax.ot import Cost, cost_matrix


def _squared_distances_host(x: np.ndarray, y: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """float64 `[n, m]` squared distances, computed in row chunks to bound temporaries."""
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    y = y.reshape(y.shape[0], -1).astype(np.float64)
    out = np.empty((x.shape[0], y.shape[0]))
    yy = np.sum(y * y, axis=1)
    for s in range(0, x.shape[0], chunk):
        xs = x[s : s + chunk]
        out[s : s + chunk] = np.maximum(
            np.sum(xs * xs, 1)[:, None] + yy[None] - 2.0 * xs @ y.T, 0.0
        )
    return out


def _cost_host(x: np.ndarray, y: np.ndarray, cost: Cost, chunk: int = 2048) -> np.ndarray:
    """float64 `[n, m]` matrix of `cost`, evaluated on row chunks of `x` to bound temporaries."""
    out = np.empty((x.shape[0], y.shape[0]))
    for s in range(0, x.shape[0], chunk):
        out[s : s + chunk] = np.asarray(cost_matrix(cost, x[s : s + chunk], y), np.float64)
    return out


def wasserstein2(x: Array | np.ndarray, y: Array | np.ndarray, cost: Cost | None = None) -> float:
    """Exact 2-Wasserstein distance between two empirical measures (uniform weights, any sizes):
    the square root of the optimal transport cost, by POT's network simplex on the host in
    float64. 10k x 10k points need ~0.8 GB and tens of seconds.

    `cost(x, y)` maps host (numpy float64) arrays `[n, *event]`, `[m, *event]` to the `[n, m]`
    matrix of squared ground distances, e.g. squared geodesic distances on a manifold (numpy or
    jax output, converted to float64; called on row chunks of `x`). Default: squared Euclidean.
    """
    import ot

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    c = _squared_distances_host(x, y) if cost is None else _cost_host(x, y, cost)
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return math.sqrt(max(ot.emd2(a, b, c, numItermax=10**9), 0.0))


def path_energy(v: Callable, params: Any, x0: Array, num_steps: int = 100, **solver: Any) -> Array:
    """`E_x0 integral_0^1 ||v_t(x_t)||^2 dt` along the flow's trajectories from `x0`: the
    squared norms at the `num_steps + 1` points of a uniform time grid, by the trapezoid rule."""
    grid = jnp.linspace(0.0, 1.0, num_steps + 1)
    sol = solvers.sample(
        v, params, x0, save_at=grid, **{"method": "euler", "num_steps": num_steps, **solver}
    )
    speeds = jax.vmap(
        lambda x, t: jnp.sum(
            jnp.square(v(params, x, jnp.full(x.shape[:1], t))).reshape(x.shape[0], -1), 1
        )
    )(sol.ys, grid)
    return jnp.mean(jnp.trapezoid(speeds, grid, axis=0))


def normalized_path_energy(energy: float, w2: float) -> float:
    """NPE = |E integral ||v||^2 dt - W2^2(q0, q1)| / W2^2(q0, q1) (Tong et al. 2024): zero for
    the optimal transport map, whose straight paths have energy W2^2."""
    return abs(energy - w2**2) / w2**2

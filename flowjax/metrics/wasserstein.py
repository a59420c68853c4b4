"""Wasserstein distances and path energy between sample sets."""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import solvers
from flowjax._utils import Array


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


def wasserstein2(x: Array | np.ndarray, y: Array | np.ndarray) -> float:
    """Exact 2-Wasserstein distance between two empirical measures (uniform weights, any sizes):
    the square root of the optimal transport cost under squared Euclidean distance, by POT's
    network simplex on the host in float64. 10k x 10k points need ~0.8 GB and tens of seconds."""
    import ot

    x, y = np.asarray(x), np.asarray(y)
    cost = _squared_distances_host(x, y)
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return math.sqrt(max(ot.emd2(a, b, cost, numItermax=10**9), 0.0))


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

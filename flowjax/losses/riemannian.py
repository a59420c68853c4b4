"""The Riemannian flow matching loss (Chen & Lipman 2024): the squared error of the velocity
in the manifold's metric, `||v_theta(x_t, t) - dx_t||_g^2` at x_t, on a geodesic path (one
time per pair) or a premetric path (a simulated trajectory per pair, every point of its time
grid a training pair, as the RFM code trains on meshes)."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_cond
from flowjax.contracts import Source
from flowjax.couplings import Coupling, independent
from flowjax.manifolds.base import tangent_field
from flowjax.paths.geodesic import GeodesicPath
from flowjax.paths.premetric import PremetricPath
from flowjax.time_samplers import Uniform


def rfm_loss(
    v: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    path: GeodesicPath,
    source: Source,
    cond: Mapping[str, Any] | None = None,
    time_sampler: Callable[[Array, tuple[int, ...]], Array] | None = None,
    coupling: Coupling = independent,
) -> tuple[Array, dict[str, Array]]:
    """Mean over the batch of `||v - dx_t||_g^2` (summed over the event) for data points `x1
    [B, *event, ambient_dim]` on `path.manifold`, x0 from `source` paired with x1 by
    `coupling` (e.g. minibatch OT with `ot.geodesic_cost`), t from `time_sampler` (uniform by
    default); `v` is made tangent at x_t first (`tangent_field`).

    Returns the loss and metrics `{"velocity_norm": mean ||dx_t||_g^2}`."""
    check_cond(cond, x1)
    k_time, k_source = jax.random.split(key)
    k_coupling = jax.random.fold_in(key, 2)
    t = (time_sampler or Uniform())(k_time, x1.shape[:1])
    x0 = source.sample(k_source, x1.shape, x1.dtype)
    x0, x1, cond = coupling(k_coupling, x0, x1, **(cond or {}))
    x_t, dx_t = path.sample(x0, x1, t)
    return _metric_error(v, params, path.manifold, x_t, t, dx_t, cond)


def premetric_rfm_loss(
    v: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    path: PremetricPath,
    source: Source,
    times: int = 32,
    t_max: float = 1.0 - 1e-5,
    cond: Mapping[str, Any] | None = None,
    coupling: Coupling = independent,
) -> tuple[Array, dict[str, Array]]:
    """`rfm_loss` on a premetric path: each pair (x0 from `source`, paired with x1 by
    `coupling`) is simulated through a stratified grid of `times` + 2 points, 0, one uniform
    time in each of `times` equal cells of [0, t_max], and t_max (a common grid for the
    batch); the mean is over all `(times + 2) * B` points. Same metrics as `rfm_loss`."""
    check_cond(cond, x1)
    k_time, k_source = jax.random.split(key)
    x0 = source.sample(k_source, x1.shape, x1.dtype)
    x0, x1, cond = coupling(jax.random.fold_in(key, 2), x0, x1, **(cond or {}))
    cells = (jnp.arange(times) + jax.random.uniform(k_time, (times,))) * (t_max / times)
    grid = jnp.concatenate([jnp.zeros(1), cells, jnp.full((1,), t_max)])
    t, (x_t, dx_t) = path.trajectory(x0, x1, grid)
    t, x_t, dx_t = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), (t, x_t, dx_t))
    cond = {k: jnp.tile(c, (len(grid),) + (1,) * (c.ndim - 1)) for k, c in cond.items()}
    return _metric_error(v, params, path.manifold, x_t, t, dx_t, cond)


def _metric_error(
    v: Callable[..., Array],
    params: Any,
    manifold: Any,
    x_t: Array,
    t: Array,
    dx_t: Array,
    cond: Mapping[str, Any],
) -> tuple[Array, dict[str, Array]]:
    """The batch mean of `||v(x_t, t) - dx_t||_g^2` (v made tangent, summed over the event) and
    `{"velocity_norm": mean ||dx_t||_g^2}`."""
    error = tangent_field(v, manifold)(params, x_t, t, **cond) - dx_t
    axes = tuple(range(1, x_t.ndim - 1))
    squared = jnp.sum(manifold.inner(x_t, error, error), axis=axes)
    speed = jnp.sum(manifold.inner(x_t, dx_t, dx_t), axis=axes)
    return jnp.mean(squared), {"velocity_norm": jnp.mean(speed)}

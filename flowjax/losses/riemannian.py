"""The Riemannian flow matching loss (Chen & Lipman 2024): the squared error of the velocity
in the manifold's metric, `||v_theta(x_t, t) - dx_t||_g^2` at x_t, on a geodesic path."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_cond
from flowjax.contracts import Source
from flowjax.couplings import Coupling, independent
from flowjax.manifolds.base import tangent_field
from flowjax.paths.geodesic import GeodesicPath
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
    error = tangent_field(v, path.manifold)(params, x_t, t, **cond) - dx_t
    axes = tuple(range(1, x1.ndim - 1))
    squared = jnp.sum(path.manifold.inner(x_t, error, error), axis=axes)
    speed = jnp.sum(path.manifold.inner(x_t, dx_t, dx_t), axis=axes)
    return jnp.mean(squared), {"velocity_norm": jnp.mean(speed)}

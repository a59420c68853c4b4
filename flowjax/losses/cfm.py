"""The conditional Flow Matching regression loss (Lipman et al. 2023, eq. 9 and its variants)."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_choice, check_cond, check_same_shape
from flowjax.contracts import Source
from flowjax.couplings import independent
from flowjax.paths.affine import AffinePath
from flowjax.paths.noisy import NoisyPath
from flowjax.sources import STANDARD_NORMAL
from flowjax.time_samplers import Uniform

LOSS_TARGETS = ("velocity", "x1", "x0", "epsilon")


def cfm_loss(
    v: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    path: AffinePath | NoisyPath,
    cond: Mapping[str, Any] | None = None,
    parameterization: str = "velocity",
    time_sampler: Callable[[Array, tuple[int, ...]], Array] | None = None,
    weighting: Callable[[Array], Array] | None = None,
    coupling: Callable[..., tuple[Array, Array, dict]] = independent,
    source: Source = STANDARD_NORMAL,
    x0: Array | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Conditional FM loss `E_t w(t) ||f(x_t, t) - target||^2` (mean over batch and event).

    Args:
      v: model `v(params, x, t, **cond) -> [B, *event]` predicting `parameterization`
        ("velocity": dx_t; "x1": the data point; "x0"/"epsilon": the source sample).
      key: PRNG key for the source sample, the coupling, the times and the path's noise.
      path: an `AffinePath`, or a `NoisyPath` (I-CFM, SB-CFM, VP-CFM with sigma > 0).
      x1: data batch `[B, *event]`.
      cond: conditioning pytree passed to `v` as keywords (and to the coupling, which keeps it
        aligned with `x1`).
      time_sampler: `(key, shape) -> t`, uniform by default.
      weighting: `t [B] -> w [B]` (None: w = 1).
      coupling: `(key, x0, x1, **cond) -> (x0, x1, cond)`, independent by default.
      source: the distribution of x0 in the path's formula (standard normal noise for the
        Gaussian paths), sampled unless `x0` is given.

    Returns:
      The scalar loss and auxiliary metrics (unweighted mse, rms of target and prediction).
    """
    check_choice(parameterization, LOSS_TARGETS, "parameterization")
    k_source, k_coupling, k_time = jax.random.split(key, 3)
    k_path = jax.random.fold_in(key, 3)
    if x0 is None:
        x0 = source.sample(k_source, x1.shape, x1.dtype)
    check_same_shape(x0, x1, "x0,x1")
    check_cond(cond, x1)
    x0, x1, cond = coupling(k_coupling, x0, x1, **(cond or {}))
    t = (time_sampler or Uniform())(k_time, x1.shape[:1])
    x_t, dx_t = path.sample(x0, x1, t, key=k_path)
    target = {"velocity": dx_t, "x1": x1, "x0": x0, "epsilon": x0}[parameterization]
    pred = v(params, x_t, t, **cond)
    check_same_shape(pred, target, "prediction,target")
    axes = tuple(range(1, x1.ndim))
    error = jnp.mean(jnp.square(pred - target).astype(jnp.float32), axis=axes)
    w = jnp.ones_like(t) if weighting is None else weighting(t)
    loss = jnp.mean(w * error)
    aux = {
        "mse": jnp.mean(error),
        "target_rms": jnp.sqrt(jnp.mean(jnp.square(target))),
        "pred_rms": jnp.sqrt(jnp.mean(jnp.square(pred))),
    }
    return loss, aux

"""Re-timing a trained velocity field to another scheduler (the Guide's "scheduler change").

A field trained on scheduler (alpha, sigma) also generates the path of any other scheduler
(alpha', sigma') with the same endpoints: with t_r = snr^-1(snr'(r)) and
s_r = sigma'_r / sigma_{t_r} (= alpha'_r / alpha_{t_r}), the new path is x'_r = s_r x_{t_r}
and its velocity is

    v'_r(x) = (ds_r / dr) / s_r * x + s_r * (dt_r / dr) * v_{t_r}(x / s_r).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, batch_time, expand_time
from flowjax.paths.schedulers import Scheduler


def change_scheduler(
    v: Callable[..., Array], trained: Scheduler, target: Scheduler, eps: float = 1e-6
) -> Callable[..., Array]:
    """Return `v'(params, x, r, **cond)` that follows `target`'s path with `v` trained on
    `trained`'s. Times are clipped to [eps, 1 - eps], where both SNRs are finite and positive."""

    def time_and_scale(r: Array) -> tuple[Array, Array]:
        t = trained.snr_inverse(target.snr(r))
        use_sigma = trained.sigma(t) > trained.alpha(t)  # the better-conditioned ratio
        s = jnp.where(
            use_sigma, target.sigma(r) / trained.sigma(t), target.alpha(r) / trained.alpha(t)
        )
        return t, s

    def velocity(params: Any, x: Array, r: Array, **cond: Any) -> Array:
        r = jnp.clip(batch_time(r, x), eps, 1.0 - eps)
        (t, s), (dt, ds) = jax.jvp(time_and_scale, (r,), (jnp.ones_like(r),))
        s_, ds_, dt_ = (expand_time(a, x) for a in (s, ds, dt))
        return (ds_ / s_) * x + s_ * dt_ * v(params, x / s_, t, **cond)

    return velocity

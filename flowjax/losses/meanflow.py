"""The MeanFlow objective (Geng et al. 2025): a network of two times learns the average
velocity of the flow, trained by the MeanFlow identity with `jax.jvp`.

Our convention: t = 0 is the source (noise), t = 1 the data, and `u(x, s, e)` is the average
velocity from time s, where the state is x, to time e (sampling goes forward, e > s):

    x_e = x_s + (e - s) u(x_s, s, e),     u(x_s, s, e) = 1 / (e - s) int_s^e v(x_tau, tau) dtau.

Differentiating `(e - s) u = int_s^e v` in s along the flow gives the identity

    u(x_s, s, e) = v(x_s, s) + (e - s) d/ds u(x_s, s, e),  d/ds u = (dx u) v + ds u,

the total derivative a `jax.jvp` of the network along the tangent `(v, 1, 0)` in `(x, s, e)`.
The paper writes t = 1 at the noise, `z_t = (1 - t) x + t eps`, and `u(z_t, r, t)` from its t
back to r < t; with its `t_p = 1 - s`, `r_p = 1 - e`, its velocity and average velocity are
the negatives of ours, and its target `v - (t_p - r_p) (v dz u + dt u)` is this one
(`tests/test_meanflow.py` checks the two formulas on the same inputs).

Modular MeanFlow (You et al. 2025) lets a fraction `modulation` (its lambda) of the gradient
through the derivative term, `SG_lambda(z) = lambda z + (1 - lambda) stop_gradient(z)`: 0 is
MeanFlow, 1 the full gradient of `||u - v - (e - s) d/ds u||^2` (backpropagated through the jvp).
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_cond, expand_time
from flowjax.contracts import Source
from flowjax.time_samplers import TimePairs

MEANFLOW_TIMES = TimePairs()  # the paper's: logit-normal (0.4, 1) here, a quarter distinct


def average_velocity_target(
    u: Callable[..., Array],
    params: Any,
    x: Array,
    s: Array,
    e: Array,
    v: Array,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, Array]:
    """`(u(x, s, e), v + (e - s) d/ds u)` `[B, *event]` each: the network's output and the
    MeanFlow target (not yet stopped) for states `x` moving at velocity `v` at times `s, e
    [B]`, by one `jax.jvp` along `(v, 1, 0)`."""
    cond = dict(cond or {})

    def along(x: Array, s: Array) -> Array:
        return u(params, x, (s, e), **cond)

    out, derivative = jax.jvp(along, (x, s), (v, jnp.ones_like(s)))
    return out, v + expand_time(e - s, x) * derivative


def meanflow_loss(
    u: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    times: TimePairs = MEANFLOW_TIMES,
    power: float = 1.0,
    eps: float = 1e-3,
    guided_velocity: Callable[[Array, Array, Array], Array] | None = None,
    modulation: Array | float = 0.0,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """The MeanFlow loss on data `x1 [B, *event]`: times (s, e) from `times` (a fraction
    `times.ratio` distinct), `x_s = (1 - s) x0 + s x1` (x0 from `source`), the conditional
    velocity `v = x1 - x0` (or `guided_velocity(x_s, s, v)`, the target of guidance folded
    into training), the squared error to the target (stopped but for a fraction `modulation`
    of its gradient) summed over the event, weighted adaptively by `adaptive_weight` (`power =
    0`: the plain squared error), averaged over the batch.

    Returns the loss and metrics `{"error": mean unweighted squared error, "fm_fraction":
    share of the batch with s = e}`."""
    check_cond(cond, x1)
    k_source, k_times = jax.random.split(key)
    x0 = source.sample(k_source, x1.shape, x1.dtype)
    s, e = times(k_times, x1.shape[:1])
    x_s = straight(x0, x1, s)
    v = x1 - x0
    if guided_velocity is not None:
        v = jax.lax.stop_gradient(guided_velocity(x_s, s, v))
    out, target = average_velocity_target(u, params, x_s, s, e, v, cond)
    target = partial_stop_gradient(target, modulation)
    error = squared_error(out, target)
    loss = jnp.mean(adaptive_weight(error, power, eps) * error)
    return loss, {"error": jnp.mean(error), "fm_fraction": jnp.mean(s == e)}


def partial_stop_gradient(z: Array, fraction: Array | float) -> Array:
    """`fraction z + (1 - fraction) stop_gradient(z)`: the value of `z`, a fraction of its
    gradient. A concrete 0 stops it outright, so no backward pass runs through `z` (a zero
    factor would still differentiate all of it)."""
    if isinstance(fraction, int | float) and fraction == 0:
        return jax.lax.stop_gradient(z)
    return fraction * z + (1.0 - fraction) * jax.lax.stop_gradient(z)


def straight(x0: Array, x1: Array, t: Array) -> Array:
    """The straight path `(1 - t) x0 + t x1` at times `t [B]`: `[B, *event]`."""
    return expand_time(1.0 - t, x1) * x0 + expand_time(t, x1) * x1


def squared_error(a: Array, b: Array) -> Array:
    """`sum over the event of (a - b)^2`: `[B]` from `[B, *event]` each."""
    return jnp.sum((a - b) ** 2, axis=tuple(range(1, a.ndim)))


def adaptive_weight(error: Array, power: float, eps: float) -> Array:
    """MeanFlow's adaptive loss weight `stop_gradient(1 / (error + eps)^power)` `[B]`."""
    return jax.lax.stop_gradient(1.0 / (error + eps) ** power)


def instantaneous(u: Callable[..., Array]) -> Callable[..., Array]:
    """The velocity field `v(params, x, t) = u(params, x, (t, t))` of an average-velocity
    network, for the ODE samplers, likelihoods and guidance of the core."""

    def v(params: Any, x: Array, t: Array, **cond: Any) -> Array:
        return u(params, x, (t, t), **cond)

    return v

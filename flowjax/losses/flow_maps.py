"""Flow-map objectives beside MeanFlow: SplitMeanFlow, shortcut models, AlphaFlow, SoFlow,
Terminal Velocity Matching and Consistency Flow Matching.

The convention is `flowjax.losses.meanflow`'s: t = 0 is the source (noise), t = 1 the data, and
a two-time network `u(x, s, e)` is the average velocity from time s, where the state is x, to
e >= s, so that the flow map is `X(x, s, e) = x + (e - s) u(x, s, e)`. A paper that writes t = 1
at the noise (SplitMeanFlow, AlphaFlow, SoFlow, TVM) moves from its t_p to its r_p < t_p (or
s_p < t_p): here `s = 1 - t_p`, `e = 1 - r_p`, and its velocities are the negatives of ours.
Shortcut models and Consistency FM already write t = 0 at the noise; a shortcut model's
`s(x, t, d)` is our `u(x, t, t + d)`.

Each loss draws the source `x0`, its times and the straight path `x_t = (1 - t) x0 + t x1` with
the conditional velocity `v = x1 - x0` (or `velocity(x_t, t, v)`, the target of guidance
folded into training); a fraction `1 - ratio` of the batch (its first rows) is trained by flow
matching, `u(x_t, t, t) -> v`; targets are stopped; every loss returns `(loss, metrics)`.
`teacher` is the parameters the targets are computed with (the EMA for shortcut models, the
online parameters, stopped, for the others as their code does).
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

from flowjax._utils import Array, check_cond, expand_time
from flowjax.contracts import Source
from flowjax.losses.meanflow import (
    adaptive_weight,
    average_velocity_target,
    squared_error,
    straight,
)
from flowjax.time_samplers import LogitNormal, TimePairs

Velocity = Callable[[Array, Array, Array], Array]  # (x_t, t, v) -> the target velocity
HALF_DISTINCT = TimePairs(ratio=0.5)  # MeanFlow's logit-normal, half the batch distinct
# SoFlow's CIFAR-10 times in our convention: flow matching, consistency start and end
SOFLOW_TIMES = (LogitNormal(0.9, 1.6), LogitNormal(0.9, 1.6), LogitNormal(4.0, 1.6))


def split_target(
    u: Callable[..., Array],
    params: Any,
    x: Array,
    s: Array,
    e: Array,
    fraction: Array | float,
    first: Array,
    cond: Mapping[str, Any] | None = None,
) -> Array:
    """The average velocity over [s, e] composed from `first`, the one over [s, m] with
    `m = s + fraction (e - s)`, and the network's over [m, e] from where `first` lands:
    `fraction first + (1 - fraction) u(x + (m - s) first, m, e)` `[B, *event]`. With `first =
    u(x, s, m)` it is SplitMeanFlow's interval-splitting identity (at `fraction = 1/2` the
    shortcut models' self-consistency); with `first = v` AlphaFlow's target."""
    m = s + fraction * (e - s)
    landed = x + expand_time(m - s, x) * first
    second = u(params, landed, (m, e), **dict(cond or {}))
    return (
        expand_time(fraction * jnp.ones_like(s), x) * first
        + expand_time((1.0 - fraction) * jnp.ones_like(s), x) * second
    )


def terminal_velocity(
    u: Callable[..., Array],
    params: Any,
    x: Array,
    s: Array,
    e: Array,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, Array]:
    """`(X, dX/de)` `[B, *event]` each: the flow map `X(x, s, e) = x + (e - s) u(x, s, e)` and
    its derivative in the terminal time (one `jax.jvp` along `(0, 0, 1)`), which TVM matches
    to the velocity at `X`."""
    cond = dict(cond or {})

    def flow_map(e: Array) -> Array:
        return x + expand_time(e - s, x) * u(params, x, (s, e), **cond)

    return jax.jvp(flow_map, (e,), (jnp.ones_like(e),))


def _draw(key: Array, x1: Array, source: Source, t: Array) -> tuple[Array, Array, Array]:
    """`(x0, x_t, v = x1 - x0)` on the straight path at times `t [B]`."""
    x0 = source.sample(key, x1.shape, x1.dtype)
    return x0, straight(x0, x1, t), x1 - x0


def _guide(velocity: Velocity | None, x: Array, t: Array, v: Array) -> Array:
    return v if velocity is None else jax.lax.stop_gradient(velocity(x, t, v))


def _rows(tree: Any, start: int, stop: int | None = None) -> Any:
    return jax.tree.map(lambda a: a[start:stop], tree)


def _rows_safe(u: Callable[..., Array]) -> Callable[..., Array]:
    """`u` that answers zero rows with zero rows (a batch split may leave a part empty)."""

    def call(params: Any, x: Array, times: Any, **cond: Any) -> Array:
        return jnp.zeros_like(x) if x.shape[0] == 0 else u(params, x, times, **cond)

    return call


def _flow_matching(
    u: Callable[..., Array], params: Any, x: Array, t: Array, v: Array, cond: Mapping
) -> Array:
    """`||u(x, t, t) - v||^2` `[n]`: the flow-matching rows of a batch."""
    return squared_error(u(params, x, (t, t), **cond), v)


def _fm_rows(batch: int, ratio: float) -> int:
    """How many rows of a batch of `batch` flow matching trains (a fraction `1 - ratio`)."""
    return batch - round(batch * ratio)


def split_meanflow_loss(
    u: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    times: TimePairs = HALF_DISTINCT,
    velocity: Velocity | None = None,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """SplitMeanFlow (Guo et al. 2025) on `x1 [B, *event]`, no jvp: times (s, e) from
    `times` (its `ratio` of the batch distinct, the rest flow matching), `fraction ~ U(0, 1)`,
    and `u(x_s, s, e)` regressed on the stopped `split_target` with `first = u(x_s, s, m)`."""
    check_cond(cond, x1)
    cond, u = dict(cond or {}), _rows_safe(u)
    k_source, k_times, k_split = jax.random.split(key, 3)
    s, e = times(k_times, x1.shape[:1])
    n = _fm_rows(x1.shape[0], times.ratio)
    e = e.at[:n].set(s[:n])  # the first rows: flow matching, whatever the draw
    _, x, v = _draw(k_source, x1, source, s)
    v = _guide(velocity, x, s, v)
    fraction = jax.random.uniform(k_split, s.shape)
    fm = _flow_matching(u, params, x[:n], s[:n], v[:n], _rows(cond, 0, n))
    xs, ss, es, fs, cs = _rows((x, s, e, fraction, cond), n)
    m = ss + fs * (es - ss)
    first = u(params, xs, (ss, m), **cs)
    target = jax.lax.stop_gradient(split_target(u, params, xs, ss, es, fs, first, cs))
    split = squared_error(u(params, xs, (ss, es), **cs), target)
    errors = jnp.concatenate([fm, split])
    return jnp.mean(errors), {"error": jnp.mean(errors), "fm_fraction": jnp.mean(s == e)}


def shortcut_loss(
    u: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    teacher: Any,
    ratio: float = 0.125,
    levels: int = 7,
    velocity: Velocity | None = None,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Shortcut models (Frans et al. 2024) on `x1 [B, *event]`: a fraction `1 - ratio` of the
    batch trains `u(x_t, t, t)` (their d = 0) by flow matching at `t ~ U{0, 1/2^levels, ...}`;
    the rest, at step sizes `d = 2^-k`, k spread evenly over `0 .. levels - 1`, and times `t`
    on the grid of `d` with `t + d <= 1`, regress `u(x_t, t, t + d)` on the mean of two
    `teacher` steps of `d / 2` (`split_target` at fraction 1/2); the half steps of the finest
    level, `2^-levels`, are taken with `u(x, t, t)`, as the paper's code treats its finest
    step as flow matching. Labels, if any, are kept on the self-consistency rows."""
    check_cond(cond, x1)
    cond, u = dict(cond or {}), _rows_safe(u)
    batch = x1.shape[0]
    n = _fm_rows(batch, ratio)
    k_source, k_fm, k_grid = jax.random.split(key, 3)
    finest = 2**levels
    t_fm = jax.random.randint(k_fm, (n,), 0, finest) / finest
    k = jnp.arange(batch - n) % levels
    d = 2.0 ** (-k)
    t_sc = jnp.floor(jax.random.uniform(k_grid, d.shape) / d) * d
    t = jnp.concatenate([t_fm, t_sc]).astype(x1.dtype)
    _, x, v = _draw(k_source, x1, source, t)
    v = _guide(velocity, x, t, v)
    fm = _flow_matching(u, params, x[:n], t[:n], v[:n], _rows(cond, 0, n))
    xs, cs = x[n:], _rows(cond, n)
    half = jnp.where(k == levels - 1, 0.0, d / 2)  # the finest level's halves: u(x, t, t)

    def step(x: Array, start: Array) -> Array:
        return u(teacher, x, (start, start + half), **cs)

    first = step(xs, t_sc)
    second = step(xs + expand_time(d / 2, xs) * first, t_sc + d / 2)
    target = jax.lax.stop_gradient((first + second) / 2)
    sc = squared_error(u(params, xs, (t_sc, t_sc + d), **cs), target)
    errors = jnp.concatenate([fm, sc])
    return jnp.mean(errors), {"error": jnp.mean(errors), "fm_fraction": jnp.asarray(n / batch)}


def alpha_flow_loss(
    u: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    alpha: Array | float,
    times: TimePairs = HALF_DISTINCT,
    power: float = 1.0,
    eps: float = 1e-3,
    velocity: Velocity | None = None,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """AlphaFlow's alpha-Flow objective (Zhang et al. 2025) on `x1 [B, *event]` at `alpha` in
    [0, 1] (a curriculum from 1, trajectory flow matching, to 0, MeanFlow): times (s, e) from
    `times` (the first `1 - ratio` of the batch flow matching), `u(x_s, s, e)` regressed on
    the stopped `split_target` with `first = v` over the fraction `alpha` of the interval; at
    `alpha = 0` on MeanFlow's jvp target. Errors weighted by `adaptive_weight`, the distinct
    rows also by `alpha` while it is positive (the paper's 1/alpha scaling, normalized)."""
    check_cond(cond, x1)
    cond = dict(cond or {})
    k_source, k_times = jax.random.split(key)
    s, e = times(k_times, x1.shape[:1])
    n = _fm_rows(x1.shape[0], times.ratio)
    e = e.at[:n].set(s[:n])
    _, x, v = _draw(k_source, x1, source, s)
    v = _guide(velocity, x, s, v)
    alpha = jnp.asarray(alpha, x1.dtype)
    out = u(params, x, (s, e), **cond)

    def alpha_target() -> Array:
        return split_target(u, params, x, s, e, alpha, v, cond)

    def meanflow_target() -> Array:
        return average_velocity_target(u, params, x, s, e, v, cond)[1]

    target = jax.lax.cond(alpha > 0, alpha_target, meanflow_target)
    target = jnp.where(expand_time(s == e, x), v, jax.lax.stop_gradient(target))
    error = squared_error(out, target)
    scale = jnp.where((s < e) & (alpha > 0), alpha, 1.0)
    loss = jnp.mean(scale * adaptive_weight(error, power, eps) * error)
    return loss, {"error": jnp.mean(error), "fm_fraction": jnp.mean(s == e), "alpha": alpha}


def soflow_loss(
    u: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    rho: Array | float,
    ratio: float = 1.0,
    times: tuple[LogitNormal, LogitNormal, LogitNormal] = SOFLOW_TIMES,
    power: float = 0.75,
    eps: float = 1e-3,
    velocity: Velocity | None = None,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """SoFlow's solution-flow loss (Luo et al. 2025) on `x1 [B, *event]`, no jvp: the first
    `1 - ratio` of the batch trains `u(x_t, t, t) -> v` at `t ~ times[0]`, the rest the
    solution consistency of the flow map `X(x, a, b)` from `a ~ times[1]` to `b ~ times[2]`
    (b > a): from `x_c = x_a + (c - a) v` at `c = a + rho (b - a)`, both must land at the same
    point, `dq = stop_gradient((X(x_a, a, b) - X(x_c, c, b)) / (c - a))`, trained through the
    surrogate `w mean(u(x_a, a, b) dq)` whose gradient is that of `w (c - a) / (b - a)
    mean(dq^2) / 2` (the paper's code). As there, squared errors and the inner product are
    means over the event (the sums of the other losses over D = prod(event), the scale its
    `eps` is set on); both parts weighted adaptively (`power`, `eps`), averaged over the batch;
    `rho` follows a schedule from 1 (trajectory flow matching) towards 0. The paper's
    logit-normal means at t = 1 noise are the negatives of these."""
    check_cond(cond, x1)
    cond, u = dict(cond or {}), _rows_safe(u)
    batch = x1.shape[0]
    n = _fm_rows(batch, ratio)
    k_source, k_fm, k_a, k_b = jax.random.split(key, 4)
    fm_times, start_times, end_times = times
    gap = 1e-4
    a = jnp.minimum(start_times(k_a, (batch - n,)), 1.0 - gap)
    b = jnp.maximum(end_times(k_b, (batch - n,)), a + gap)
    c = jnp.maximum(a + rho * (b - a), a + gap)
    t = jnp.concatenate([fm_times(k_fm, (n,)), a])
    _, x, v = _draw(k_source, x1, source, t)
    v = _guide(velocity, x, t, v)
    size = math.prod(x1.shape[1:])
    fm = _flow_matching(u, params, x[:n], t[:n], v[:n], _rows(cond, 0, n)) / size
    xa, va, cs = x[n:], v[n:], _rows(cond, n)
    xc = xa + expand_time(c - a, xa) * va
    out = u(params, xa, (a, b), **cs)
    ahead = xc + expand_time(b - c, xc) * u(params, xc, (c, b), **cs)
    landed = xa + expand_time(b - a, xa) * out
    dq = jax.lax.stop_gradient((landed - ahead) / expand_time(c - a, xa))
    error = squared_error(dq, jnp.zeros_like(dq)) / size
    inner = jnp.sum(out * dq, axis=tuple(range(1, x1.ndim))) / size
    surrogate = adaptive_weight(error, power, eps) * inner
    loss = (jnp.sum(adaptive_weight(fm, power, eps) * fm) + jnp.sum(surrogate)) / batch
    return loss, {
        "error": jnp.mean(jnp.concatenate([fm, error])),
        "fm_fraction": jnp.asarray(n / batch),
        "rho": jnp.asarray(rho, x1.dtype),
    }


def _gap_and_end(key: Array, shape: tuple[int, ...]) -> tuple[Array, Array]:
    """TVM's times in the paper's convention: a gap `~ LN(-0.8, 1)` and the terminal time
    `~ LN(-0.4, 1)` truncated to `[0, 1 - gap]` (by the inverse CDF)."""
    k_gap, k_end = jax.random.split(key)
    gap = LogitNormal(-0.8, 1.0)(k_gap, shape)
    limit = ndtr(jax.scipy.special.logit(1.0 - gap) + 0.4)
    end = jax.nn.sigmoid(-0.4 + ndtri(jax.random.uniform(k_end, shape) * limit))
    return gap, jnp.clip(end, 0.0, 1.0 - gap)


def terminal_velocity_loss(
    u: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    teacher: Any,
    velocity: Velocity | None = None,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Terminal Velocity Matching (Zhou et al. 2025) on `x1 [B, *event]`: the derivative of
    the flow map in its terminal time must be the velocity there, `dX(x_s, s, e)/de -> u(X, e,
    e)` (the `teacher`'s, at the stopped `X`), the gradient flowing through the jvp; plus flow
    matching `u(x_t, t, t) -> v` at an independent `t`. Times as the paper's: gap `e - s ~
    LN(-0.8, 1)`, its terminal time `~ LN(-0.4, 1)` truncated, mapped to ours (`e = 1 -
    terminal`, `s = e - gap`); flow matching at `1 - LN(-0.4, 1)`. No adaptive weighting. As
    the gap closes the terminal term vanishes (`dX/de = u(x, s, s)` at e = s), leaving flow
    matching."""
    check_cond(cond, x1)
    cond = dict(cond or {})
    batch = x1.shape[0]
    k_source, k_fm_source, k_times, k_fm = jax.random.split(key, 4)
    gap, terminal = _gap_and_end(k_times, (batch,))
    e = (1.0 - terminal).astype(x1.dtype)
    s = jnp.maximum(e - gap, 0.0).astype(x1.dtype)
    x = straight(source.sample(k_source, x1.shape, x1.dtype), x1, s)
    landed, d_landed = terminal_velocity(u, params, x, s, e, cond)
    target = u(teacher, jax.lax.stop_gradient(landed), (e, e), **cond)
    terminal_error = jnp.where(e > s, squared_error(d_landed, jax.lax.stop_gradient(target)), 0.0)
    t = 1.0 - LogitNormal(-0.4, 1.0)(k_fm, (batch,)).astype(x1.dtype)
    _, x_t, v_t = _draw(k_fm_source, x1, source, t)
    fm = _flow_matching(u, params, x_t, t, _guide(velocity, x_t, t, v_t), cond)
    loss = jnp.mean(terminal_error + fm)
    return loss, {"error": jnp.mean(terminal_error), "fm_error": jnp.mean(fm)}


def consistency_fm_loss(
    v: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    source: Source,
    teacher: Any,
    segments: int = 2,
    delta: float = 1e-3,
    alpha: float = 1e-5,
    eps: float = 1e-3,
    cond: Mapping[str, Any] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """Consistency Flow Matching (Yang et al. 2024) of a one-time velocity `v(x, t)` on `x1
    [B, *event]`: [0, 1] cut into `segments`, `t ~ U(eps, 1)`, `r = min(t + delta, 1)` on the
    same straight path; within t's segment, ending at `b`, the endpoints `x_t + (b - t) v(x_t,
    t)` and `x_r + (b - r) v_r` must agree, and (weight `alpha`, where `b - t > 1.01 delta`)
    so must the velocities; `v_r` is the stopped `teacher`'s. Half the squared errors, summed
    over the event, averaged over the batch (the paper's code). Sampled by one Euler step per
    segment."""
    check_cond(cond, x1)
    cond = dict(cond or {})
    k_source, k_t = jax.random.split(key)
    t = jax.random.uniform(k_t, x1.shape[:1], x1.dtype, eps, 1.0)
    r = jnp.minimum(t + delta, 1.0)
    end = jnp.minimum(jnp.floor(t * segments) + 1.0, segments) / segments
    x0 = source.sample(k_source, x1.shape, x1.dtype)
    x_t, x_r = straight(x0, x1, t), straight(x0, x1, r)
    v_t = v(params, x_t, t, **cond)
    v_r = jax.lax.stop_gradient(v(teacher, x_r, r, **cond))
    f_t = x_t + expand_time(end - t, x_t) * v_t
    f_r = x_r + expand_time(end - r, x_r) * v_r
    mask = end - t > 1.01 * delta
    endpoint = squared_error(f_t, f_r) / 2
    agreement = jnp.where(mask, squared_error(v_t, v_r) / 2, 0.0)
    loss = jnp.mean(endpoint + alpha * agreement)
    return loss, {"error": jnp.mean(endpoint), "velocity_error": jnp.mean(agreement)}

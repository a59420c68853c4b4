"""CTMC Euler sampling of discrete flow matching on a mixture path (Gat et al. 2024, Alg. 1).

The network is a posterior field `field(params, x_t, t, **cond) -> logits [B, *event, V]`.
Under the mixture path's rate `u_t(x) = lambda_t (p_{1|t}(x) - delta_{x_t}(x))`, `lambda_t =
kappa'_t / (1 - kappa_t)`, each token is redrawn from the posterior at rate lambda_t (a
redraw may land where it is). A step of size h from t redraws each token with probability
`1 - exp(-h lambda_t)` (`jump="euler"`; or the path's exact probability, `jump="path"`): to
first order in h it moves to `x != x_t` with probability `h u_t(x)`. The step that ends at
t = 1 redraws every token (an infinite rate), so the sample is `x1 ~ p_{1|t}` there and lies
in the vocabulary (never a mask). One batched network call per step.
"""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, batch_time, call_field, check_choice, check_domain
from flowjax.guidance import NULL_LABEL, both_halves
from flowjax.paths.mixture import MetricPath, MixturePath
from flowjax.solvers.fixed import exact_stats, time_grid
from flowjax.solvers.ode import Solution

JUMPS = ("euler", "path", "confident")
DRAWS = ("cdf", "gumbel")


def _jump_probability(path: MixturePath, jump: str, t: Array, t_next: Array) -> Array:
    """The probability `[B]` that a token is redrawn on the step from `t` to `t_next` (`[B]`)."""
    kappa, kappa_next = path.kappa(t), path.kappa(t_next)
    if jump in ("path", "confident"):  # the path's own: P(x1 reached in (t, t_next] | not before)
        return jnp.where(t_next >= 1.0, 1.0, (kappa_next - kappa) / (1.0 - kappa))
    rate = jnp.where(t_next >= 1.0, jnp.inf, path.jump_coefficient(t))
    return -jnp.expm1(-(t_next - t) * rate)  # 1 - exp(-h lambda_t), accurate for small h


def _per_token(a: Array, x: Array) -> Array:
    """`a [B]` shaped `[B, 1, ..., 1]` to broadcast with the tokens `x [B, *event]`."""
    return a.reshape(a.shape + (1,) * (x.ndim - 1))


def _categorical(key: Array, weights: Array, draw: str) -> Array:
    """Indices `[...]` drawn in proportion to `weights [..., V]` (>= 0, not all zero): "cdf",
    one uniform per draw against the float32 cumulative sum (a zero weight is never drawn;
    weights below about 1e-7 of the total are lost to rounding, the reason Meta's solver draws
    in float64), or "gumbel", Gumbel-max on the log-weights (exact for any weight; V uniforms
    per draw, which dominate a sampling step's time on CPU)."""
    if draw == "gumbel":
        return jax.random.categorical(key, jnp.log(weights))
    cdf = jnp.cumsum(weights.astype(jnp.float32), axis=-1)
    level = jax.random.uniform(key, weights.shape[:-1]) * cdf[..., -1]
    index = jnp.sum(cdf <= level[..., None], axis=-1)  # the first i with level < cdf[i]
    last = weights.shape[-1] - 1 - jnp.argmax(weights[..., ::-1] > 0, axis=-1)
    return jnp.minimum(index, last)  # level rounded up to the total: the last positive weight


def _redraw(key: Array, x: Array, probs: Array, probability: Array, draw: str) -> Array:
    """Tokens `x [B, *event]` redrawn from `probs [B, *event, V]` with `probability [B]`."""
    k_event, k_draw = jax.random.split(key)
    redraw = jax.random.uniform(k_event, x.shape) < _per_token(probability, x)
    return jnp.where(redraw, _categorical(k_draw, probs, draw), x).astype(x.dtype)


def _unmask_confident(
    key: Array, x: Array, probs: Array, fraction: Array, mask: int, draw: str
) -> Array:
    """Unmask, in each sequence, the `round(fraction * masked)` masked tokens whose draw from
    `probs` is the most probable (MaskGIT's order); other tokens stay as they are."""
    draw = _categorical(key, probs, draw).astype(x.dtype)
    b = x.shape[0]
    is_mask = (x == mask).reshape(b, -1)
    confidence = jnp.take_along_axis(probs, draw[..., None], -1)[..., 0].reshape(b, -1)
    confidence = jnp.where(is_mask, confidence, -1.0)
    count = jnp.round(fraction * is_mask.sum(-1)).astype(jnp.int32)
    rank = jnp.argsort(jnp.argsort(-confidence, axis=-1), axis=-1)
    unmask = (rank < count[:, None]) & is_mask
    return jnp.where(unmask.reshape(x.shape), draw, x)


def _move(key: Array, x: Array, forward: Array, back: Array, mask: int, draw: str) -> Array:
    """One Euler step of a CTMC given, per token, the step's integrated rates `forward [B,
    *event, V]` to each vocabulary value (ignored at the token's own) and `back [B, *event]`
    to the mask: leave with probability `1 - exp(-total)`, land in proportion to the rates."""
    k_event, k_draw = jax.random.split(key)
    forward = jnp.where(jax.nn.one_hot(x, forward.shape[-1], dtype=bool), 0.0, forward)
    rates = jnp.concatenate([forward, back[..., None]], axis=-1)
    leave = jax.random.uniform(k_event, x.shape) < -jnp.expm1(-rates.sum(-1))
    target = _categorical(k_draw, rates, draw)
    target = jnp.where(target == forward.shape[-1], mask, target)
    return jnp.where(leave, target, x).astype(x.dtype)


def ctmc_euler(
    field: Callable[..., Array],
    params: Any,
    key: Array,
    x0: Array,
    *,
    path: MixturePath | MetricPath,
    num_steps: int = 100,
    ts: Array | None = None,
    temperature: float = 1.0,
    jump: str = "euler",
    draw: str = "cdf",
    rate_guidance: float | None = None,
    corrector: float | Callable[[Array], Array] = 0.0,
    mask: int | None = None,
    cond: Mapping[str, Any] | None = None,
    save_trajectory: bool = False,
) -> Solution:
    """Sample tokens from `x0 [B, *event]` (source tokens, e.g. all masks) at t = 0 to t = 1.

    Args:
      field: posterior field `field(params, x_t, t [B], **cond) -> logits [B, *event, V]`.
      path: the `MixturePath` the field was trained on, or a `MetricPath` (then the step
        follows the path's marginal rate `path.rate`, `jump` is "euler" and the other
        options keep their defaults).
      num_steps: uniform steps on [0, 1] (a Python int); ignored when `ts` is given.
      ts: an increasing time grid `[T]` in [0, 1] (non-uniform allowed), `T - 1` steps.
      temperature: the posterior's logits are divided by it (1: the model; < 1: sharper).
      jump: the redraw probability of a step: "euler", `1 - exp(-h lambda_t)` with the rate
        frozen at the step's start (Gat et al.'s Euler step); "path", the mixture path's exact
        `(kappa_{t+h} - kappa_t) / (1 - kappa_t)`, which removes the error of freezing a rate
        that diverges at t = 1 (on one token with the exact posterior it is exact at any step
        count; Euler's error there decays slower than 1 / num_steps); "confident", for a
        mask source (`mask=`): unmask the expected number of tokens of each sequence, `round(
        (kappa_{t+h} - kappa_t) / (1 - kappa_t) * masked)`, choosing those whose draw is the
        most probable (MaskGIT's order; deterministic given the draws).
      draw: how a token is drawn from its posterior or rates: "cdf" (one uniform per token
        against the float32 cumulative sum; never a zero-probability token) or "gumbel"
        (Gumbel-max on log-probabilities: keeps masses below float32's resolution of the
        total, at V uniforms per token).
      rate_guidance: classifier-free guidance scale w in *rate* space: the step follows
        `(1 - w) u(. | null) + w u(. | y)` (labels `cond["y"]`, the null class
        `guidance.NULL_LABEL`; one doubled network call per step); for the mixture path that
        is the posterior `(1 - w) p(. | null) + w p(. | y)` off the current token, negative
        rates (w > 1) clipped to zero. Guidance in log-probability space is
        `guidance.guided(field, w)` as the field instead.
      corrector: beta_t >= 0 (a number or a function of t [B]) of the divergence-free
        corrector of Gat et al. for a mask source: the forward rate times 1 + beta_t plus
        beta_t times the backward rate `kappa'_t / kappa_t` of remasking an unmasked token,
        which leaves the path's marginals unchanged and lets the sampler revise tokens.
      mask: the mask token (`MaskToken.mask`, at least V); needed by the corrector.
      cond: conditioning passed to `field` at every call (labels `y [B]`, ...).
      save_trajectory: `Solution.ys [T, B, *event]` of the states at the grid times.

    Returns:
      `Solution` with tokens `y [B, *event]` and exact stats (one network call per step).
    """
    check_domain("temperature", temperature, 0.0, open_low=True)
    check_choice(jump, JUMPS, "jump")
    check_choice(draw, DRAWS, "draw")
    beta = corrector if callable(corrector) else lambda t: jnp.full_like(t, corrector)
    if not callable(corrector):
        check_domain("corrector", corrector, 0.0)
    if jump == "confident" and (mask is None or rate_guidance is not None or corrector != 0):
        raise ValueError('jump="confident" unmasks: it needs mask= and no rate guidance/corrector')
    if (callable(corrector) or corrector > 0) and mask is None:
        raise ValueError("the corrector remasks tokens: pass mask= (the MaskToken's mask)")
    if rate_guidance is not None and "y" not in (cond or {}):
        raise ValueError('rate_guidance needs the labels as cond["y"]')
    plain = rate_guidance is None and not callable(corrector) and corrector == 0
    general = isinstance(path, MetricPath)
    if general and not (plain and jump == "euler"):
        raise ValueError("a MetricPath is sampled by its rate: jump='euler', no guidance/corrector")
    masked = -1 if mask is None else mask  # -1: no token is a mask (no remasking)
    x0 = jnp.asarray(x0)
    if x0.ndim < 2 or not jnp.issubdtype(x0.dtype, jnp.integer):
        raise ValueError(f"x0 must be integer tokens [B, *event], got {x0.dtype} {x0.shape}")
    ts = time_grid(ts, 0.0, 1.0, num_steps).astype(jnp.float32)
    n = ts.shape[0] - 1

    def posterior(x: Array, t: Array) -> Array:
        """The (guided) posterior probabilities `[B, *event, V]` at `x`, `t`."""
        if rate_guidance is None:
            outs = [call_field(field, params, x, t, cond)]
        else:
            outs = list(both_halves(field, params, x, t, dict(cond or {}), NULL_LABEL))
        for logits in outs:
            if logits.shape[:-1] != x.shape:
                raise ValueError(
                    "the posterior field must return logits [B, *event, V] = "
                    f"{list(x.shape)} + [V], got shape {logits.shape}"
                )
        probs = [jax.nn.softmax(a.astype(jnp.float32) / temperature, axis=-1) for a in outs]
        if rate_guidance is None:
            return probs[0]
        conditional, unconditional = probs
        return jnp.maximum(unconditional + rate_guidance * (conditional - unconditional), 0.0)

    def step(x: Array, inputs: tuple[Array, Array, Array]) -> tuple[Array, Array | None]:
        k, t, t_next = inputs[0], batch_time(inputs[1], x), batch_time(inputs[2], x)
        probs = posterior(x, t)
        if plain and not general:
            probability = _jump_probability(path, jump, t, t_next)
            if jump == "confident":
                x_next = _unmask_confident(k, x, probs, probability, masked, draw)
            else:
                x_next = _redraw(k, x, probs, probability, draw)
            return x_next, x_next if save_trajectory else None

        def moved() -> Array:
            if general:
                rate = _per_token(t_next - t, x)[..., None] * path.rate(probs, x, t)
                return _move(k, x, jnp.maximum(rate, 0.0), jnp.zeros(x.shape), masked, draw)
            # the step's integrated forward rate (-log(1 - probability) = h lambda for Euler)
            probability = _jump_probability(path, jump, t, t_next)
            scale = -jnp.log1p(-jnp.minimum(probability, 1.0 - 1e-7))
            b = beta(t)
            remask = b * (t_next - t) * path.d_kappa(t) / path.kappa(t)
            back = jnp.where(x == masked, 0.0, _per_token(remask, x))
            forward = _per_token((1.0 + b) * scale, x)[..., None]
            return _move(k, x, forward * probs, back, masked, draw)

        def final() -> Array:  # an infinite rate: every token redrawn from the posterior
            return _redraw(k, x, probs, jnp.ones_like(t), draw)

        x_next = jax.lax.cond(inputs[2] >= 1.0, final, moved)
        return x_next, x_next if save_trajectory else None

    keys = jax.random.split(key, n)
    y, xs = jax.lax.scan(step, x0, (keys, ts[:-1], ts[1:]))
    stats = exact_stats(x0.shape[0], n, n)
    ys = jnp.concatenate([x0[None], xs]) if save_trajectory else None
    return Solution(y=y, ts=ts if save_trajectory else None, ys=ys, stats=stats, method=jump)

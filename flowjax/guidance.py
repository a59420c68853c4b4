"""Classifier-free guidance for flow matching (Ho & Salimans 2022; Guided Flows, Zheng et al.
2023): train one network on labels that are sometimes dropped to a null class, then follow the
guided field `v_w = (1 - w) v(x, t, null) + w v(x, t, y)` (w = 1: conditional, w = 0:
unconditional, w > 1: guided). On a posterior field of discrete flow matching (logits
`[B, *event, V]`) the same combination is guidance in log-probability space: logits are
log-probabilities up to a per-token constant, so the guided posterior is
`p(. | null)^(1 - w) p(. | y)^w`, renormalized (`solvers.ctmc_euler` samples it).

The null class is the label `NULL_LABEL` (-1): our models (`flowjax.models`) read it, like
`y=None`, as the extra row `num_classes` of their label table (a label equal to `num_classes`
selects that row too), so that dropping and guiding need not know the number of classes."""

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, batch_time, batch_times

NULL_LABEL = -1  # the null class of classifier-free guidance, as our models read labels


def drop_labels(
    key: Array, y: Array, p: float, null_label: int = NULL_LABEL, *, whole_batch: bool = False
) -> Array:
    """Labels `y: [B]` with each one (or, `whole_batch`, all of them at once, as in Meta's
    image example) replaced by `null_label` (default `NULL_LABEL`) with probability `p`."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label dropout p must be in [0, 1], got {p}")
    shape = () if whole_batch else y.shape
    return jnp.where(jax.random.bernoulli(key, p, shape), null_label, y)


def training_conditioning(
    key: Array, batch: Mapping[str, Array], p: float, *, whole_batch: bool = False
) -> dict[str, Array]:
    """The conditioning of a training batch (all of it but "x1"), its labels "y" dropped to
    the null class with probability `p` (`drop_labels`; nothing drawn when `p` is 0)."""
    cond = {k: v for k, v in batch.items() if k != "x1"}
    if p and "y" in cond:
        cond["y"] = drop_labels(jax.random.fold_in(key, 7), cond["y"], p, whole_batch=whole_batch)
    return cond


def guided(
    v: Callable[..., Array],
    w: float | Array,
    null_label: int = NULL_LABEL,
    *,
    interval: tuple[float, float] = (0.0, 1.0),
    label: str = "y",
) -> Callable[..., Array]:
    """The guided field `v_w(params, x, t, **cond)` of a class-conditional `v`.

    Each evaluation is one network call on the doubled batch `[x; x]` with labels
    `[y; null_label]` (default `NULL_LABEL`, which our models read as the null class). Outside
    `interval` (t < lo or t > hi) the field is the conditional one (w = 1); with a scalar t
    that case skips the unconditional half (one call on `x` alone).
    `w` may be a traced array (vmap over guidance scales). A Python `w` of 1 (or 0 on the
    whole interval) needs one half only: the field is then one call on `x` alone. Works with
    every sampler and with `log_likelihood`: pass `cond={"y": labels}`. A two-time field's
    `t = (r, t)` is guided where r lies in the interval.
    """
    lo, hi = interval
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"interval must satisfy 0 <= lo <= hi <= 1, got {interval}")
    if isinstance(w, int | float) and (w == 1 or (w == 0 and interval == (0.0, 1.0))):
        return _single(v, null_label if w == 0 else None, label)

    def both(params: Any, x: Array, t: Array, y: Array, cond: dict) -> tuple[Array, Array]:
        return both_halves(v, params, x, t, {label: y, **cond}, null_label, label)

    def v_w(params: Any, x: Array, t: Any, **cond: Any) -> Array:
        y = _labels(cond, label)
        del cond[label]
        start = jnp.asarray(t[0] if isinstance(t, tuple) else t)  # (r, t): the interval's r
        inside = (start >= lo) & (start <= hi)
        if start.ndim == 0 and (lo, hi) != (0.0, 1.0):
            return jax.lax.cond(
                inside,
                lambda: _combine(*both(params, x, t, y, cond), w),
                lambda: v(params, x, t, **{label: y}, **cond),
            )
        conditional, unconditional = both(params, x, t, y, cond)
        scale = jnp.where(batch_time(inside, x), w, 1.0)
        return _combine(conditional, unconditional, scale)

    return v_w


def both_halves(
    v: Callable[..., Array],
    params: Any,
    x: Array,
    t: Any,
    cond: dict[str, Any],
    null_label: int = NULL_LABEL,
    label: str = "y",
) -> tuple[Array, Array]:
    """`(v(x, t, y), v(x, t, null))` in one network call on the doubled batch `[x; x]` with
    labels `[y; null_label]` (`y = cond[label]`; the rest of `cond` is doubled alike)."""
    y = _labels(cond, label)
    rest = {k: a for k, a in cond.items() if k != label}
    b = x.shape[0]
    twice = lambda a: jnp.concatenate([a, a])  # noqa: E731
    out = v(
        params,
        twice(x),
        jax.tree.map(twice, batch_times(t, x)),
        **{label: jnp.concatenate([y, jnp.full_like(y, null_label)])},
        **jax.tree.map(twice, rest),
    )
    return out[:b], out[b:]


def _single(v: Callable[..., Array], null_label: int | None, label: str) -> Callable[..., Array]:
    """The conditional field (`null_label` None) or the unconditional one, one call each."""

    def v_w(params: Any, x: Array, t: Array | float, **cond: Any) -> Array:
        y = _labels(cond, label)
        if null_label is not None:
            cond[label] = jnp.full_like(y, null_label)
        return v(params, x, t, **cond)

    return v_w


def _labels(cond: dict, label: str) -> Array:
    if label not in cond:
        raise ValueError(f"guided field needs the labels as cond[{label!r}]")
    return cond[label]


def _combine(conditional: Array, unconditional: Array, w: Array | float) -> Array:
    w = jnp.asarray(w, conditional.dtype)
    w = w.reshape(w.shape + (1,) * (conditional.ndim - w.ndim))
    return unconditional + w * (conditional - unconditional)

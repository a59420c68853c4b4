"""Small shared helpers: pytree dataclasses, time broadcasting and argument checks."""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is part of the pytree's static structure (a choice, not a number)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def pytree_dataclass[T: type](cls: T) -> T:
    """Make `cls` a frozen dataclass registered as a pytree.

    Fields made with `static_field` are metadata (hashed, part of the treedef); all other fields
    are leaves, so numbers such as `sigma_min` can be traced, vmapped and differentiated.
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    fields = dataclasses.fields(cls)
    data = [f.name for f in fields if not f.metadata.get("static")]
    meta = [f.name for f in fields if f.metadata.get("static")]
    return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def batch_time(t: Array | float, x: Array, name: str = "t") -> Array:
    """Validate `t` (scalar or `[B]`) against `x: [B, *event]` and return it as `[B]`."""
    t = jnp.asarray(t)
    if x.ndim < 1:
        raise ValueError(f"x must be batched with shape [B, *event], got shape {x.shape}")
    if t.ndim == 0:
        return jnp.broadcast_to(t, x.shape[:1])
    if t.shape != x.shape[:1]:
        raise ValueError(
            f"{name} must be a scalar or have shape [B] = {x.shape[:1]} to match x of shape "
            f"{x.shape}, got shape {t.shape}"
        )
    return t


def batch_times(t: Any, x: Array) -> Array | tuple[Array, ...]:
    """`batch_time` of one time, or of each time of a tuple (the `(r, t)` of two-time models)."""
    return tuple(batch_time(s, x) for s in t) if isinstance(t, tuple) else batch_time(t, x)


def expand_time(t: Array, x: Array) -> Array:
    """Reshape `t: [B]` (or a scalar) to `[B, 1, ..., 1]`, to broadcast with `x: [B, *event]`."""
    t = batch_time(t, x)
    return t.reshape(t.shape + (1,) * (x.ndim - 1))


def check_same_shape(a: Array, b: Array, names: str) -> None:
    """Raise a ValueError naming both arguments unless `a` and `b` have the same shape."""
    if a.shape != b.shape:
        first, second = names.split(",")
        raise ValueError(
            f"{first} and {second} must have the same shape, got {a.shape} and {b.shape}"
        )


def check_choice(value: str, choices: Mapping[str, Any] | tuple[str, ...], name: str) -> None:
    """Raise a ValueError naming the argument unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")


def check_cond(cond: Mapping | None, x: Array) -> None:
    """Raise a ValueError unless every conditioning array is batched like `x: [B, ...]`."""
    for name, value in (cond or {}).items():
        for leaf in jax.tree.leaves(value):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != x.shape[0]:
                raise ValueError(
                    f"conditioning {name!r} must be batched like x: shape [B, ...] with "
                    f"B = {x.shape[0]} (x: {x.shape}), got {jnp.shape(leaf)}"
                )


def call_field(
    v: Callable[..., Array], params: Any, x: Array, t: Array, cond: Mapping | None
) -> Array:
    """Evaluate a velocity field `v(params, x, t, **cond)`, with `t` broadcast to `[B]` and
    the conditioning checked to be batched like `x`."""
    check_cond(cond, x)
    return v(params, x, batch_time(t, x), **(cond or {}))


def check_domain(
    name: str,
    value: Any,
    low: float = -np.inf,
    high: float = np.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """Raise a ValueError naming `name` unless the concrete `value` lies in the interval
    (`[low, high]`, either end open); traced values (and non-numbers: pytree placeholders)
    pass unchecked."""
    if value is None or isinstance(value, jax.core.Tracer):
        return
    try:
        v = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return
    above = v > low if open_low else v >= low
    below = v < high if open_high else v <= high
    if not np.all(above & below):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value}")


def check_time(t: Any, name: str = "t") -> None:
    """Times of a flow lie in [0, 1] (checked when concrete)."""
    check_domain(name, t, 0.0, 1.0)

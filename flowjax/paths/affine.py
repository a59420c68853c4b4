"""Affine Gaussian probability paths and conversions between model parameterizations.

`x_t = alpha_t x_1 + sigma_t x_0` with `x_0` from the source (N(0, I) for the score) and `x_1`
from the data. Every prediction a model can make is a linear combination `p_t x_1 + q_t x_0`:

    velocity dx_t : (d_alpha_t, d_sigma_t)     x1 : (1, 0)
    x0 / epsilon  : (0, 1)                      score of p_t : (0, -1 / sigma_t)

Knowing `x_t = alpha_t x_1 + sigma_t x_0` as well, any prediction determines `x_1` and `x_0`
(a 2x2 solve), hence every other one: `AffinePath.convert` is that single formula.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

from flowjax._utils import (
    Array,
    check_choice,
    check_same_shape,
    check_time,
    expand_time,
    pytree_dataclass,
)
from flowjax.contracts import PathSample
from flowjax.paths.schedulers import Coefficients, Scheduler

PARAMETERIZATIONS = ("velocity", "x1", "x0", "epsilon", "score")


def _components(kind: str, c: Coefficients) -> tuple[Any, Any]:
    """(p, q) with prediction = p * x1 + q * x0 (broadcastable arrays or numbers)."""
    check_choice(kind, PARAMETERIZATIONS, "parameterization")
    return {
        "velocity": (c.d_alpha, c.d_sigma),
        "x1": (1.0, 0.0),
        "x0": (0.0, 1.0),
        "epsilon": (0.0, 1.0),
        "score": (0.0, -1.0 / c.sigma),
    }[kind]


@pytree_dataclass
class AffinePath:
    """The conditional path `x_t = alpha_t x_1 + sigma_t x_0` of a scheduler.

    Shapes: `x0, x1, x_t: [B, *event]`, `t: [B]` or a scalar.
    """

    scheduler: Scheduler

    def coefficients(self, t: Array, x: Array) -> Coefficients:
        """Scheduler coefficients at `t`, each shaped `[B, 1, ..., 1]` to broadcast with `x`."""
        return self.scheduler(expand_time(t, x))

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        """`x_t` and the conditional velocity `dx_t = d_alpha_t x_1 + d_sigma_t x_0` (`key` is
        unused: the path is deterministic given its ends)."""
        del key
        check_same_shape(x0, x1, "x0,x1")
        check_time(t)
        c = self.coefficients(t, x1)
        return PathSample(c.alpha * x1 + c.sigma * x0, c.d_alpha * x1 + c.d_sigma * x0)

    def convert(self, pred: Array, x_t: Array, t: Array, *, src: str, dst: str) -> Array:
        """Turn a `src` prediction at `(x_t, t)` into a `dst` prediction.

        `src`, `dst` are among "velocity", "x1", "x0" (= "epsilon") and "score".
        """
        check_same_shape(pred, x_t, "pred,x_t")
        c = self.coefficients(t, x_t)
        p_a, q_a = _components(src, c)
        p_b, q_b = _components(dst, c)
        det = p_a * c.sigma - q_a * c.alpha
        return ((p_b * c.sigma - q_b * c.alpha) * pred + (q_b * p_a - p_b * q_a) * x_t) / det

    def conversion_scale(self, t: Array, *, src: str, dst: str, floor: float = 0.0) -> Array:
        """`|d dst / d src|: [B]`, the factor by which `convert` scales a `src` prediction (and
        its error) at `t: [B]`, with the 2x2 determinant floored at `floor` in magnitude (it
        vanishes where the conversion is singular, e.g. x1 -> velocity at sigma_t = 0)."""
        c = self.scheduler(t)
        p_a, q_a = _components(src, c)
        p_b, q_b = _components(dst, c)
        det = jnp.maximum(jnp.abs(p_a * c.sigma - q_a * c.alpha), floor)
        return jnp.abs(p_b * c.sigma - q_b * c.alpha) / det

    # Named conversions: `path.velocity_from_x1(x1, x_t, t)` and so on.
    velocity_from_x1 = functools.partialmethod(convert, src="x1", dst="velocity")
    x1_from_velocity = functools.partialmethod(convert, src="velocity", dst="x1")
    velocity_from_epsilon = functools.partialmethod(convert, src="epsilon", dst="velocity")
    epsilon_from_velocity = functools.partialmethod(convert, src="velocity", dst="epsilon")
    velocity_from_score = functools.partialmethod(convert, src="score", dst="velocity")
    score_from_velocity = functools.partialmethod(convert, src="velocity", dst="score")


def as_velocity(f: Callable[..., Array], path: AffinePath, parameterization: str) -> Callable:
    """Wrap a model `f(params, x, t, **cond)` that predicts `parameterization` into a velocity
    field with the same signature (for sampling and likelihoods)."""
    check_choice(parameterization, PARAMETERIZATIONS, "parameterization")

    def velocity(params: Any, x: Array, t: Array, **cond: Any) -> Array:
        return path.convert(f(params, x, t, **cond), x, t, src=parameterization, dst="velocity")

    return velocity

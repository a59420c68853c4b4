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
from flowjax.paths.mixture import MixturePath
from flowjax.solvers.fixed import exact_stats, time_grid
from flowjax.solvers.ode import Solution

JUMPS = ("euler", "path")


def _jump_probability(path: MixturePath, jump: str, t: Array, t_next: Array) -> Array:
    """The probability `[B]` that a token is redrawn on the step from `t` to `t_next` (`[B]`)."""
    kappa, kappa_next = path.kappa(t), path.kappa(t_next)
    if jump == "path":  # the path's own: P(x1 reached in (t, t_next] | not before)
        return jnp.where(t_next >= 1.0, 1.0, (kappa_next - kappa) / (1.0 - kappa))
    rate = jnp.where(t_next >= 1.0, jnp.inf, path.jump_coefficient(t))
    return -jnp.expm1(-(t_next - t) * rate)  # 1 - exp(-h lambda_t), accurate for small h


def _redraw(key: Array, x: Array, logits: Array, probability: Array, temperature: float) -> Array:
    """Tokens `x [B, *event]` redrawn from the posterior's logits with `probability [B]`."""
    k_event, k_draw = jax.random.split(key)
    probability = probability.reshape(probability.shape + (1,) * (x.ndim - 1))
    redraw = jax.random.uniform(k_event, x.shape) < probability
    draw = jax.random.categorical(k_draw, logits.astype(jnp.float32) / temperature)
    return jnp.where(redraw, draw, x).astype(x.dtype)


def ctmc_euler(
    field: Callable[..., Array],
    params: Any,
    key: Array,
    x0: Array,
    *,
    path: MixturePath,
    num_steps: int = 100,
    ts: Array | None = None,
    temperature: float = 1.0,
    jump: str = "euler",
    cond: Mapping[str, Any] | None = None,
    save_trajectory: bool = False,
) -> Solution:
    """Sample tokens from `x0 [B, *event]` (source tokens, e.g. all masks) at t = 0 to t = 1.

    Args:
      field: posterior field `field(params, x_t, t [B], **cond) -> logits [B, *event, V]`.
      path: the `MixturePath` the field was trained on.
      num_steps: uniform steps on [0, 1] (a Python int); ignored when `ts` is given.
      ts: an increasing time grid `[T]` in [0, 1] (non-uniform allowed), `T - 1` steps.
      temperature: the posterior's logits are divided by it (1: the model; < 1: sharper).
      jump: the redraw probability of a step: "euler", `1 - exp(-h lambda_t)` with the rate
        frozen at the step's start (Gat et al.'s Euler step); "path", the mixture path's exact
        `(kappa_{t+h} - kappa_t) / (1 - kappa_t)`, which removes the error of freezing a rate
        that diverges at t = 1 (on one token with the exact posterior it is exact at any step
        count; Euler's error there decays slower than 1 / num_steps).
      cond: conditioning passed to `field` at every call (labels `y [B]`, ...).
      save_trajectory: `Solution.ys [T, B, *event]` of the states at the grid times.

    Returns:
      `Solution` with tokens `y [B, *event]` and exact stats (one network call per step).
    """
    check_domain("temperature", temperature, 0.0, open_low=True)
    check_choice(jump, JUMPS, "jump")
    x0 = jnp.asarray(x0)
    if x0.ndim < 2 or not jnp.issubdtype(x0.dtype, jnp.integer):
        raise ValueError(f"x0 must be integer tokens [B, *event], got {x0.dtype} {x0.shape}")
    ts = time_grid(ts, 0.0, 1.0, num_steps).astype(jnp.float32)
    n = ts.shape[0] - 1

    def step(x: Array, inputs: tuple[Array, Array, Array]) -> tuple[Array, Array | None]:
        k, t, t_next = inputs
        logits = call_field(field, params, x, t, cond)
        if logits.shape[:-1] != x.shape:
            raise ValueError(
                f"the posterior field must return logits [B, *event, V] = {list(x.shape)} + [V],"
                f" got shape {logits.shape}"
            )
        probability = _jump_probability(path, jump, batch_time(t, x), batch_time(t_next, x))
        x_next = _redraw(k, x, logits, probability, temperature)
        return x_next, x_next if save_trajectory else None

    keys = jax.random.split(key, n)
    y, xs = jax.lax.scan(step, x0, (keys, ts[:-1], ts[1:]))
    stats = exact_stats(x0.shape[0], n, n)
    ys = jnp.concatenate([x0[None], xs]) if save_trajectory else None
    return Solution(y=y, ts=ts if save_trajectory else None, ys=ys, stats=stats, method=jump)

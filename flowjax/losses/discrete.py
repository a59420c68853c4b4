"""Discrete flow matching losses on mixture paths (Gat et al. 2024) and their ELBO.

The network is a *posterior* field `field(params, x_t, t, **cond) -> logits [B, *event, V]` of
`p_{1|t}(x1^i | x_t)`, the tokens `x [B, *event]` integers. Per token, with the jump rate
`lambda_t = kappa'_t / (1 - kappa_t)` and `delta = [x_t^i == x1^i]`, the generalized KL between
the conditional rate and the model's (Shaul et al. 2024, eq. for the mixture path) is

    D = lambda_t (delta - p(x_t^i) - (1 - delta) log p(x1^i))   >= 0,

with `p = p_{1|t}(. | x_t)` (zero on a mask token beyond the vocabulary). Its integral over
t in [0, 1], summed over tokens, bounds the negative log-likelihood of x1 under the model's
CTMC started from the same source (the initial laws agree, so no other term appears): that is
`dfm_elbo`. With a mask source and kappa_t = t it is the masked-diffusion (MDLM / MD4)
bound, `int 1/(1 - t) sum_{masked i} -log p(x1^i) dt` for a network that keeps unmasked tokens.
On other paths (a `MetricPath`) the generalized KL is that of the rates, `rate_generalized_kl`.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, check_choice, check_cond, check_same_shape, expand_time
from flowjax.contracts import Source
from flowjax.paths.mixture import MetricPath, MixturePath
from flowjax.time_samplers import Uniform

DISCRETE_LOSSES = ("cross_entropy", "generalized_kl")


def _log_prob_at(log_p: Array, x: Array) -> Array:
    """`log_p [..., V]` at the tokens `x [...]`; -inf for tokens outside `[0, V)` (a mask)."""
    picked = jnp.take_along_axis(
        log_p, x[..., None].astype(jnp.int32), -1, mode="fill", fill_value=-jnp.inf
    )
    return picked[..., 0]


def _check_logits(logits: Array, x1: Array) -> None:
    if logits.shape[:-1] != x1.shape:
        raise ValueError(
            f"the posterior field must return logits [B, *event, V] = {list(x1.shape)} + [V], "
            f"got shape {logits.shape}"
        )


def generalized_kl(logits: Array, x_t: Array, x1: Array, jump: Array) -> Array:
    """Per-token generalized KL `D [B, *event]` of the mixture path (module docstring), from
    `logits [B, *event, V]` of `p_{1|t}` at `x_t`, the data `x1`, and `jump`, lambda_t `[B]`."""
    _check_logits(logits, x1)
    check_same_shape(x_t, x1, "x_t,x1")
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    delta = (x_t == x1).astype(jnp.float32)
    log_p_x1 = jnp.where(delta > 0, 0.0, _log_prob_at(log_p, x1))  # no -inf * 0
    return expand_time(jump, x1) * (delta - jnp.exp(_log_prob_at(log_p, x_t)) - log_p_x1)


def rate_generalized_kl(model_rate: Array, conditional_rate: Array, x_t: Array) -> Array:
    """Per-token generalized KL `D [B, *event]` between CTMC rates `[B, *event, V]` off the
    current tokens `x_t [B, *event]` (Shaul et al. 2024, the ELBO's integrand for any path):

        D = sum_{x != x_t} u_theta(x) - u(x) + u(x) log(u(x) / u_theta(x))   >= 0,

    `u` the conditional rate `u_t(. | x_t, x1)`, `u_theta` the model's (0 log 0 = 0). On a
    mixture path it is `generalized_kl`."""
    check_same_shape(model_rate, conditional_rate, "model_rate,conditional_rate")
    u, u_theta = conditional_rate.astype(jnp.float32), model_rate.astype(jnp.float32)
    off = ~jax.nn.one_hot(x_t, u.shape[-1], dtype=bool)
    moves = off & (u > 0)  # no log(0) in the value or its gradient
    log_ratio = jnp.log(jnp.where(moves, u, 1.0)) - jnp.log(jnp.where(moves, u_theta, 1.0))
    return jnp.sum(jnp.where(off, u_theta - u + jnp.where(moves, u * log_ratio, 0.0), 0.0), -1)


def path_generalized_kl(
    path: MixturePath | MetricPath, logits: Array, x_t: Array, x1: Array, t: Array
) -> Array:
    """The generalized KL `[B, *event]` of the posterior `logits [B, *event, V]` at `x_t` for
    data `x1` at times `t [B]` on `path`: the mixture path's closed form, otherwise the
    rates' (`rate_generalized_kl` of `path.rate` and `path.conditional_rate`)."""
    if isinstance(path, MixturePath):
        return generalized_kl(logits, x_t, x1, path.jump_coefficient(t))
    _check_logits(logits, x1)
    posterior = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    model = path.rate(posterior, x_t, t)
    return rate_generalized_kl(model, path.conditional_rate(x_t, x1, t), x_t)


def _posterior_at_path_sample(
    field: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    t: Array,
    path: MixturePath | MetricPath,
    source: Source,
    cond: Mapping[str, Any] | None,
) -> tuple[Array, Array]:
    """(x_t, logits) for x0 from `source` and x_t on `path` at times `t [B]`."""
    k_source, k_path = jax.random.split(key)
    x0 = source.sample(k_source, x1.shape, x1.dtype)
    x_t = path.sample(x0, x1, t, key=k_path).x_t
    logits = field(params, x_t, t, **(cond or {}))
    _check_logits(logits, x1)
    return x_t, logits


def dfm_loss(
    field: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    path: MixturePath | MetricPath,
    source: Source,
    loss: str = "cross_entropy",
    cond: Mapping[str, Any] | None = None,
    time_sampler: Callable[[Array, tuple[int, ...]], Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """The discrete FM loss at `t ~ time_sampler` (uniform by default), mean over tokens.

    Args:
      field: the posterior field `field(params, x_t, t, **cond) -> logits [B, *event, V]`.
      x1: data tokens `[B, *event]`.
      path: a `MixturePath` or a `MetricPath`; source: the x0 distribution (`MaskToken`,
        `UniformTokens`, ...; a `MetricPath` starts from the uniform one).
      loss: "cross_entropy" (`-log p_{1|t}(x1 | x_t)`, every token) or "generalized_kl" (the
        path's, `path_generalized_kl`, which weighs tokens by their rates and is the ELBO's
        integrand).

    Returns:
      The scalar loss and metrics: `cross_entropy` (nats per token) and `accuracy` (argmax
      of the posterior equals x1) over every token.
    """
    check_choice(loss, DISCRETE_LOSSES, "loss")
    check_cond(cond, x1)
    k_time, k_path = jax.random.split(key)
    t = (time_sampler or Uniform())(k_time, x1.shape[:1])
    x_t, logits = _posterior_at_path_sample(field, params, k_path, x1, t, path, source, cond)
    cross_entropy, correct = token_cross_entropy(logits, x1)
    if loss == "cross_entropy":
        value = jnp.mean(cross_entropy)
    else:
        value = jnp.mean(path_generalized_kl(path, logits, x_t, x1, t))
    return value, {"cross_entropy": jnp.mean(cross_entropy), "accuracy": jnp.mean(correct)}


def token_cross_entropy(logits: Array, x1: Array) -> tuple[Array, Array]:
    """Per token, `-log softmax(logits)[x1]` (float32) and whether the argmax is x1 (0 or 1):
    logits `[B, *event, V]`, tokens `x1 [B, *event]` -> two `[B, *event]` arrays."""
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    correct = (jnp.argmax(logits, axis=-1) == x1).astype(jnp.float32)
    return -_log_prob_at(log_p, x1), correct


def path_cross_entropy(
    field: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    sample_x_t: Callable[[Array, Array, Array], Array],
    num_times: int,
    cond: Mapping[str, Any] | None = None,
) -> dict[str, Array]:
    """The posterior's held-out cross-entropy (nats per token) and accuracy along a path of
    continuous states, on the midpoints of `num_times` uniform times: `sample_x_t(key, x1, t)`
    draws `x_t` for tokens `x1 [B, *event]` at times `t [B]`; `num_times` network calls."""
    check_cond(cond, x1)

    def at(i: Array) -> tuple[Array, Array]:
        t = jnp.full(x1.shape[:1], (i + 0.5) / num_times)
        x_t = sample_x_t(jax.random.fold_in(key, i), x1, t)
        nll, correct = token_cross_entropy(field(params, x_t, t, **(cond or {})), x1)
        return jnp.mean(nll), jnp.mean(correct)

    nll, correct = jax.lax.map(at, jnp.arange(num_times))
    return {"cross_entropy": jnp.mean(nll), "accuracy": jnp.mean(correct)}


def dfm_elbo(
    field: Callable[..., Array],
    params: Any,
    key: Array,
    x1: Array,
    *,
    path: MixturePath | MetricPath,
    source: Source,
    num_times: int = 100,
    cond: Mapping[str, Any] | None = None,
) -> Array:
    """The ELBO bound on `-log p_theta(x1)` in nats per sequence `[B]` (`bits_per_token`): the
    time integral of the path's generalized KL (`path_generalized_kl`, summed over tokens), the
    model's CTMC started from the path's source (a `MetricPath`'s: the uniform law).

    The time integral is the midpoint rule on `num_times` points `(i + 1/2) / num_times`, one
    path sample (x0, x_t) at each: unbiased in the path samples; in t the error is O(1 /
    num_times^2) for the smooth expected integrand (a uniform random t would make the variance
    infinite: the jump rate 1 / (1 - kappa_t) weighs an event of probability 1 - kappa_t).
    `num_times` batched network calls.
    """
    if num_times < 1:
        raise ValueError(f"num_times must be at least 1, got {num_times}")
    check_cond(cond, x1)
    axes = tuple(range(1, x1.ndim))

    def at(k: Array, i: Array) -> Array:
        t = jnp.full(x1.shape[:1], (i + 0.5) / num_times)
        x_t, logits = _posterior_at_path_sample(field, params, k, x1, t, path, source, cond)
        return jnp.sum(path_generalized_kl(path, logits, x_t, x1, t), axis=axes)

    keys = jax.random.split(key, num_times)
    terms = jax.lax.map(lambda a: at(*a), (keys, jnp.arange(num_times)))
    return jnp.mean(terms, axis=0)


def bits_per_token(nats: Array, event_shape: tuple[int, ...]) -> Array:
    """Nats per sequence -> bits per token."""
    return nats / (math.log(2.0) * math.prod(event_shape))

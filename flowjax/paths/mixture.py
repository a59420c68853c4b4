"""Mixture paths of discrete flow matching (Gat et al. 2024), token by token:

    p_t(x^i | x0, x1) = (1 - kappa_t) delta_{x0^i} + kappa_t delta_{x1^i}.

Tokens are integer arrays `[B, *event]`; posteriors `p_{1|t}` and CTMC rates `u_t` are
`[B, *event, V]` over a vocabulary of V tokens (a mask token may lie beyond it: the network
never predicts it). kappa_t is a scheduler's alpha_t: `CondOT()` gives kappa_t = t,
`Polynomial(n)` t^n, `Cosine()` sin(pi t / 2); any `Scheduler` subclass that defines `alpha`
works, its derivative by `jax.jvp`.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from flowjax._utils import Array, batch_time, check_same_shape, expand_time, pytree_dataclass
from flowjax.contracts import PathSample
from flowjax.paths.schedulers import Scheduler


def _one_hot(x: Array, vocab_size: int) -> Array:
    """`x [B, *event]` -> `[B, *event, V]` float32 (tokens outside `[0, V)`: all zeros)."""
    return jax.nn.one_hot(x, vocab_size, dtype=jnp.float32)


@pytree_dataclass
class MixturePath:
    """The mixture path of `scheduler` (kappa_t = `scheduler.alpha(t)`, increasing from 0 to 1).

    Shapes: `x0, x1, x_t: [B, *event]` integer tokens, `t: [B]` or a scalar.
    """

    scheduler: Scheduler

    def kappa(self, t: Array) -> Array:
        return self.scheduler.alpha(t)

    def d_kappa(self, t: Array) -> Array:
        return self.scheduler.d_alpha(t)

    def jump_coefficient(self, t: Array) -> Array:
        """kappa'_t / (1 - kappa_t): how fast a token not yet at x1 jumps (inf at t = 1)."""
        return self.d_kappa(t) / (1.0 - self.kappa(t))

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        """`x_t`: each token is x1's with probability kappa_t, else x0's (independently; `key`
        draws the choice). A discrete path has no velocity: `dx_t` is None."""
        if key is None:
            raise ValueError("MixturePath.sample needs a key: the path is random given its ends")
        check_same_shape(x0, x1, "x0,x1")
        kappa = expand_time(self.kappa(batch_time(t, x1)), x1)
        return PathSample(jnp.where(jax.random.uniform(key, x1.shape) < kappa, x1, x0), None)

    def rate(self, posterior: Array, x_t: Array, t: Array) -> Array:
        """The CTMC rate `u_t(x | x_t) = kappa'/(1 - kappa) (p_{1|t}(x | x_t) - delta_{x_t}(x))`
        of the marginal path, from the posterior `p_{1|t}` `[B, *event, V]`; each token's rates
        sum to zero (off its current value: the posterior's mass there, times the jump rate)."""
        jump = expand_time(self.jump_coefficient(batch_time(t, x_t)), posterior)
        return jump * (posterior - _one_hot(x_t, posterior.shape[-1]))

    def posterior(self, rate: Array, x_t: Array, t: Array) -> Array:
        """The inverse of `rate`: `p_{1|t} = delta_{x_t} + u_t (1 - kappa) / kappa'` (t < 1)."""
        jump = expand_time(self.jump_coefficient(batch_time(t, x_t)), rate)
        return _one_hot(x_t, rate.shape[-1]) + rate / jump


def carry_unmasked(field: Callable[..., Array], mask: int) -> Callable[..., Array]:
    """The posterior field of a mask source with its known part imposed: a token that is not
    the mask is x1's (on the mixture path from masks it can only have jumped there), so its
    posterior is the point mass there (logits 0 at it, -inf elsewhere); the network predicts
    the masked tokens only (MDLM's "carry-over" parameterization)."""

    def carried(params: Any, x_t: Array, t: Array, **cond: Any) -> Array:
        logits = field(params, x_t, t, **cond)
        known = jnp.where(_one_hot(x_t, logits.shape[-1]) > 0, 0.0, -jnp.inf)
        return jnp.where((x_t == mask)[..., None], logits, known.astype(logits.dtype))

    return carried


@pytree_dataclass
class MetricPath:
    """The metric-induced path of Shaul et al. 2024 ("Flow Matching with General Discrete
    Paths: A Kinetic-Optimal Perspective", sec. 5), token by token:

        p_t(x | x1) = softmax_x(-beta_t d(x, x1)),

    over a vocabulary of V tokens with a premetric `distance [V, V]` (`d(x, x) = 0`, e.g. the
    distance between token embeddings or positions), `beta_t = c (t / (1 - t))^a` from 0
    (uniform source) to inf (x1). Its kinetic-optimal conditional rate is

        u_t(x | z, x1) = p_t(x | x1) beta'_t [d(z, x1) - d(x, x1)]_+    (x != z),

    which moves mass only toward tokens closer to x1.
    """

    distance: Array
    c: float = 1.0
    a: float = 1.0

    def beta(self, t: Array) -> Array:
        t = jnp.asarray(t, jnp.float32)
        return self.c * (t / (1.0 - t)) ** self.a

    def d_beta(self, t: Array) -> Array:
        t = jnp.asarray(t, jnp.float32)
        return jax.jvp(self.beta, (t,), (jnp.ones_like(t),))[1]

    def probabilities(self, x1: Array, t: Array) -> Array:
        """`p_t(. | x1)` `[B, *event, V]` for tokens `x1 [B, *event]`."""
        beta = expand_time(self.beta(batch_time(t, x1)), x1)[..., None]
        return jax.nn.softmax(-beta * self.distance[x1], axis=-1)

    def sample(self, x0: Array, x1: Array, t: Array, key: Array | None = None) -> PathSample:
        """`x_t ~ p_t(. | x1)` per token (the source x0 is the uniform law at t = 0 and is not
        needed); no velocity."""
        if key is None:
            raise ValueError("MetricPath.sample needs a key: the path is random given x1")
        check_same_shape(x0, x1, "x0,x1")
        logits = jnp.log(self.probabilities(x1, t))
        return PathSample(jax.random.categorical(key, logits).astype(x1.dtype), None)

    def conditional_rate(self, x_t: Array, x1: Array, t: Array) -> Array:
        """`u_t(. | x_t, x1)` `[B, *event, V]`: off x_t the kinetic-optimal rate; at x_t minus
        the sum of the others (each token's rates sum to zero)."""
        d = self.distance
        gain = jnp.maximum(d[x_t, x1][..., None] - d[x1], 0.0)
        d_beta = expand_time(self.d_beta(batch_time(t, x1)), x1)[..., None]
        off = self.probabilities(x1, t) * d_beta * gain
        here = _one_hot(x_t, d.shape[0])
        off = jnp.where(here > 0, 0.0, off)
        return off - here * off.sum(-1, keepdims=True)

    def rate(self, posterior: Array, x_t: Array, t: Array) -> Array:
        """The marginal rate `u_t(x | x_t) = sum_{x1} p_{1|t}(x1 | x_t) u_t(x | x_t, x1)` from
        the posterior `[B, *event, V]` (V x V work per token)."""
        v = self.distance.shape[0]
        every = jnp.broadcast_to(jnp.arange(v), (*x_t.shape, v))  # each candidate x1
        rates = jax.vmap(self.conditional_rate, in_axes=(None, -1, None), out_axes=-2)(
            x_t, every, t
        )  # [B, *event, x1, x]
        return jnp.einsum("...a,...ax->...x", posterior, rates)

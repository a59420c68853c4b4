"""Negative log-likelihood of 8-bit data in bits per dimension, with uniform dequantization."""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from flowjax._utils import Array


def dequantize(key: Array, x: Array, low: float = -1.0, high: float = 1.0) -> Array:
    """Map integers `x` in {0, ..., 255} to `low + (high - low) * (x + u) / 256`, u ~ U[0, 1)."""
    u = jax.random.uniform(key, x.shape)
    return low + (high - low) * (x.astype(jnp.float32) + u) / 256.0


def bits_per_dim(
    log_likelihood: Callable[[Array, Array], Array],
    key: Array,
    x: Array,
    *,
    num_draws: int = 1,
    low: float = -1.0,
    high: float = 1.0,
) -> Array:
    """Bits/dim `[B]` of 8-bit data `x: [B, *event]` (values 0..255), averaged over `num_draws`
    dequantizations (the variational bound of Theis et al. 2016; Lipman et al. report K = 1, 50).

    `log_likelihood(key, y) -> [B]` is the model's log-density of the dequantized data in model
    space `y` in [low, high)^D; the change of variables from [0, 256)^D adds D log((high-low)/256).
    """
    if not (isinstance(num_draws, int) and num_draws >= 1):
        raise ValueError(f"num_draws must be a positive int, got {num_draws}")
    dim = math.prod(x.shape[1:])
    log_jacobian = dim * math.log((high - low) / 256.0)

    def one_draw(k: Array) -> Array:
        k_noise, k_model = jax.random.split(k)
        y = dequantize(k_noise, x, low, high)
        return -(log_likelihood(k_model, y) + log_jacobian) / (dim * math.log(2.0))

    return jnp.mean(jax.lax.map(one_draw, jax.random.split(key, num_draws)), axis=0)

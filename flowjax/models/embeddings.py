"""Embeddings of the flow time t in [0, 1] (shared by the MLP and, later, the image models)."""

import math

import jax.numpy as jnp

from flowjax._utils import Array


def sinusoidal_embedding(
    t: Array, dim: int, max_period: float = 10_000.0, scale: float = 1_000.0
) -> Array:
    """Transformer / ADM sinusoidal features of `scale * t`: `t [B] -> [B, dim]` (dim even)."""
    if dim % 2:
        raise ValueError(f"dim must be even for a sinusoidal embedding, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = scale * jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)

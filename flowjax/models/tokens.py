"""A multilayer perceptron on token sequences: the posterior network of discrete flow matching
for short sequences and discretized low-dimensional data."""

import itertools
import math
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import nnx

from flowjax._utils import Array, batch_time, check_choice
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding
from flowjax.models.mlp import ACTIVATIONS


class TokenMLP(nnx.Module):
    """`logits(x, t, y=None)`: tokens `x [B, *event]` in `[0, vocab_size]` (`vocab_size` is the
    mask token), `t [B]` (or scalar), labels `y [B]` -> logits `[B, *event, vocab_size]`.

    Each token is embedded (`embed_dim` features, a row for the mask), the embeddings of a
    sequence are concatenated with the sinusoidal embedding of t (`time_dim`) and, with
    `num_classes`, of the label (`NULL_LABEL` = -1 or `num_classes`: the null class), then
    `depth` hidden layers of `width` units and a linear layer to every token's logits.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        vocab_size: int,
        width: int = 512,
        depth: int = 3,
        embed_dim: int = 32,
        activation: str = "silu",
        time_dim: int = 64,
        num_classes: int | None = None,
        class_dim: int = 64,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        check_choice(activation, ACTIVATIONS, "activation")
        if min(vocab_size, width, depth, embed_dim) < 1:
            raise ValueError(
                "vocab_size, width, depth and embed_dim must be positive, got "
                f"{vocab_size}, {width}, {depth}, {embed_dim}"
            )
        self.event_shape = tuple(event_shape)
        self.vocab_size, self.num_classes, self.activation = vocab_size, num_classes, activation
        length = math.prod(self.event_shape)
        self.embed = nnx.Embed(vocab_size + 1, embed_dim, dtype=dtype, rngs=rngs)
        self.time_embed = TimeEmbedding("sinusoidal", dim=time_dim, dtype=dtype, rngs=rngs)
        c_features = 0
        if num_classes is not None:
            self.class_embed = LabelEmbedding(num_classes, class_dim, dtype=dtype, rngs=rngs)
            c_features = class_dim
        sizes = [length * embed_dim + self.time_embed.out_features + c_features]
        sizes += [width] * depth
        linear = lambda i, o: nnx.Linear(i, o, dtype=dtype, rngs=rngs)  # noqa: E731
        self.hidden = nnx.List([linear(i, o) for i, o in itertools.pairwise(sizes)])
        self.out = linear(width, length * vocab_size)

    def __call__(self, x: Array, t: Array | float, y: Array | None = None) -> Array:
        if x.shape[1:] != self.event_shape or not jnp.issubdtype(x.dtype, jnp.integer):
            raise ValueError(
                f"x must be integer tokens [B, *{list(self.event_shape)}], got {x.dtype} {x.shape}"
            )
        b = x.shape[0]
        tokens = jnp.clip(x, 0, self.vocab_size).reshape(b, -1)
        embedded = self.embed(tokens)
        features = [embedded.reshape(b, -1), self.time_embed(batch_time(t, x))]
        if self.num_classes is not None:
            features.append(self.class_embed(y, b))
        elif y is not None:
            raise ValueError("y was given but the TokenMLP was built without num_classes")
        h = jnp.concatenate([f.astype(embedded.dtype) for f in features], axis=-1)
        act = ACTIVATIONS[self.activation]
        for layer in self.hidden:
            h = act(layer(h))
        return self.out(h).reshape(*x.shape, self.vocab_size)

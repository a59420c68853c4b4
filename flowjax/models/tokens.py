"""Networks on tokens, `logits(x, t, y=None)`: the posterior networks of discrete flow
matching. `TokenMLP` for short sequences and discretized low-dimensional data, `TokenTransformer`
for text (bidirectional, or causal: the autoregressive baseline).

Tokens `x [B, *event]` are integers in `[0, vocab_size]`: token `vocab_size` is the mask (and
the start token of the autoregressive baseline), with its own embedding row.
"""

import itertools
import math
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import nnx

from flowjax._utils import Array, batch_time, check_choice
from flowjax.models.dit import DiTBlock, FinalLayer
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding
from flowjax.models.mlp import ACTIVATIONS

POSITIONS = ("rotary", "learned")


def _check_tokens(x: Array, event_shape: tuple[int, ...]) -> None:
    if x.shape[1:] != event_shape or not jnp.issubdtype(x.dtype, jnp.integer):
        raise ValueError(
            f"x must be integer tokens [B, *{list(event_shape)}], got {x.dtype} {x.shape}"
        )


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
        _check_tokens(x, self.event_shape)
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


class TokenTransformer(nnx.Module):
    """`logits(x, t, y=None)`: tokens `x [B, *event]` in `[0, vocab_size]`, `t [B]` (or
    scalar), labels `y [B]` -> float32 logits `[B, *event, vocab_size]`.

    A sample's tokens, flattened (row-major) to a sequence, are embedded (`width` features, a
    row for the mask), placed by `positions` ("rotary": rotary embeddings in every attention;
    "learned": a learned table added to the embeddings), and pass `depth` DiT blocks whose
    adaLN-Zero modulation comes from `c = TimeEmbedding(t)` (+ `LabelEmbedding(y)` with
    `num_classes`; the null class as in `DiT`); a final adaLN layer gives the logits.
    Attention is bidirectional, or with `causal` position n sees positions <= n only (the
    autoregressive baseline, which is fed the sequence shifted right). `dtype` is the compute
    dtype (parameters float32; layer norms and logits float32). `PRESETS`: nanoGPT's
    `shakespeare_char` sizes ("nanogpt_cpu": 4 x 128, 4 heads; "nanogpt": 6 x 384, 6 heads) and
    MD4's text8 model ("md4_text8": 12 x 768, 12 heads).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "nanogpt_cpu": dict(depth=4, width=128, heads=4),
        "nanogpt": dict(depth=6, width=384, heads=6),
        "md4_text8": dict(depth=12, width=768, heads=12),
    }

    def __init__(
        self,
        event_shape: tuple[int, ...],
        *,
        vocab_size: int,
        depth: int = 6,
        width: int = 384,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        positions: str = "rotary",
        causal: bool = False,
        num_classes: int | None = None,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        check_choice(positions, POSITIONS, "positions")
        if min(vocab_size, depth, width, heads) < 1 or width % heads or (width // heads) % 2:
            raise ValueError(
                "vocab_size, depth, width and heads must be positive and width / heads even, got "
                f"{vocab_size}, {depth}, {width}, {heads}"
            )
        self.event_shape, self.vocab_size = tuple(event_shape), vocab_size
        self.num_classes, self.causal = num_classes, causal
        self.dtype = dtype or jnp.float32
        length = math.prod(self.event_shape)
        self.embed = nnx.Embed(vocab_size + 1, width, dtype=dtype, rngs=rngs)
        self.learned_positions = positions == "learned"
        if self.learned_positions:
            init = nnx.initializers.normal(0.02)
            self.positions = nnx.Param(init(rngs.params(), (length, width), jnp.float32))
        self.time_embed = TimeEmbedding(dim=256, width=width, dtype=dtype, rngs=rngs)
        if num_classes is not None:
            self.label_embed = LabelEmbedding(num_classes, width, dtype=dtype, rngs=rngs)
        block = lambda: DiTBlock(  # noqa: E731
            width,
            heads,
            mlp_ratio,
            causal=causal,
            rotary=positions == "rotary",
            dtype=dtype,
            rngs=rngs,
        )
        self.blocks = nnx.List([block() for _ in range(depth)])
        self.final = FinalLayer(width, vocab_size, dtype=dtype, rngs=rngs)

    def __call__(self, x: Array, t: Array | float, y: Array | None = None) -> Array:
        _check_tokens(x, self.event_shape)
        b = x.shape[0]
        h = self.embed(jnp.clip(x, 0, self.vocab_size).reshape(b, -1))
        if self.learned_positions:
            h = h + self.positions[...].astype(h.dtype)
        c = self.time_embed(batch_time(t, x))
        if self.num_classes is not None:
            c = c + self.label_embed(y, b)
        elif y is not None:
            raise ValueError("y was given but the TokenTransformer was built without num_classes")
        c = c.astype(self.dtype)
        for block in self.blocks:
            h = block(h, c)
        logits = self.final(h, c).astype(jnp.float32)
        return logits.reshape(*x.shape, self.vocab_size)

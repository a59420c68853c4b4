"""The Diffusion Transformer (Peebles & Xie 2023) as a velocity field: patchify NHWC images,
transformer blocks conditioned on (t, y) through adaLN-Zero, unpatchify.

Sizes of the paper: `DIT_SIZES["S"]` (12 blocks, width 384, 6 heads), `"B"` (12, 768, 12),
`"L"` (24, 1024, 16), `"XL"` (28, 1152, 16); "S/2" means patch size 2 (`DiT.PRESETS`).
"""

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax._utils import Array, batch_time
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding

DIT_SIZES = {
    "S": {"depth": 12, "width": 384, "heads": 6},
    "B": {"depth": 12, "width": 768, "heads": 12},
    "L": {"depth": 24, "width": 1024, "heads": 16},
    "XL": {"depth": 28, "width": 1152, "heads": 16},
}


def sincos_positions(grid: int, width: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embeddings `[grid * grid, width]` (half the features
    encode the row, half the column; width divisible by 4)."""
    if width % 4:
        raise ValueError(f"width must be divisible by 4, got {width}")
    quarter = width // 4
    freqs = 1.0 / 10_000 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def encode(pos: np.ndarray) -> np.ndarray:
        args = pos.reshape(-1, 1) * freqs[None]
        return np.concatenate([np.sin(args), np.cos(args)], axis=1)

    return np.concatenate([encode(rows), encode(cols)], axis=1).astype(np.float32)


def _modulate(x: Array, shift: Array, scale: Array) -> Array:
    return x * (1.0 + scale[:, None]) + shift[:, None]


class DiTBlock(nnx.Module):
    """Pre-norm attention and MLP, each with adaLN-Zero shift, scale and gate from `c`."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, *, dtype, rngs: nnx.Rngs):  # noqa: ANN001
        linear = lambda i, o, **kw: nnx.Linear(i, o, dtype=dtype, rngs=rngs, **kw)  # noqa: E731
        self.heads = heads
        self.norm1 = nnx.LayerNorm(width, epsilon=1e-6, use_bias=False, use_scale=False, rngs=rngs)
        self.qkv = linear(width, 3 * width)
        self.proj = linear(width, width)
        self.norm2 = nnx.LayerNorm(width, epsilon=1e-6, use_bias=False, use_scale=False, rngs=rngs)
        hidden = int(width * mlp_ratio)
        self.fc1, self.fc2 = linear(width, hidden), linear(hidden, width)
        zeros = nnx.initializers.zeros_init()
        self.ada = linear(width, 6 * width, kernel_init=zeros, bias_init=zeros)

    def __call__(self, x: Array, c: Array) -> Array:
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(self.ada(jax.nn.silu(c)), 6, -1)
        b, n, d = x.shape
        h = _modulate(self.norm1(x.astype(jnp.float32)).astype(x.dtype), shift1, scale1)
        q, k, v = jnp.split(self.qkv(h).reshape(b, n, 3 * self.heads, d // self.heads), 3, 2)
        attn = jax.nn.dot_product_attention(q, k, v).reshape(b, n, d)
        x = x + gate1[:, None] * self.proj(attn)
        h = _modulate(self.norm2(x.astype(jnp.float32)).astype(x.dtype), shift2, scale2)
        return x + gate2[:, None] * self.fc2(jax.nn.gelu(self.fc1(h), approximate=True))


class DiT(nnx.Module):
    """`v(x, t, y=None)`: `x [B, H, W, C]`, `t [B]` (or scalar), labels `y [B]` -> `[B, H, W, C]`.

    `size` is one of `DIT_SIZES` (or pass depth / width / heads). The conditioning `c` is
    `TimeEmbedding` (sinusoidal features of `1000 t`, 256 of them, -> Linear -> SiLU -> Linear
    to `width`) plus, with `num_classes`, `LabelEmbedding`; label `NULL_LABEL` = -1 (or
    `num_classes`, or `y=None`) is the null class of classifier-free guidance. `dtype` is the
    compute dtype (e.g. bfloat16; parameters stay float32, layer norms run in float32).
    `PRESETS` are the paper's models, "S/2" ... "XL/8": `dict(size=..., patch=...)`.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        f"{size}/{patch}": dict(size=size, patch=patch) for size in DIT_SIZES for patch in (2, 4, 8)
    }

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        size: str = "S",
        patch: int = 2,
        num_classes: int | None = None,
        mlp_ratio: float = 4.0,
        depth: int | None = None,
        width: int | None = None,
        heads: int | None = None,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        if size not in DIT_SIZES:
            raise ValueError(f"unknown DiT size {size!r}; expected one of {list(DIT_SIZES)}")
        spec = DIT_SIZES[size]
        depth, width, heads = depth or spec["depth"], width or spec["width"], heads or spec["heads"]
        h, w, channels = image_shape
        if h != w or h % patch:
            raise ValueError(
                f"image must be square with a side divisible by patch {patch}, got {image_shape}"
            )
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.image_shape, self.patch, self.num_classes = tuple(image_shape), patch, num_classes
        self.dtype = dtype or jnp.float32
        linear = lambda i, o, **kw: nnx.Linear(i, o, dtype=dtype, rngs=rngs, **kw)  # noqa: E731
        zeros = nnx.initializers.zeros_init()
        self.embed = linear(patch * patch * channels, width)
        self.width = width
        self.time_embed = TimeEmbedding(dim=256, width=width, dtype=dtype, rngs=rngs)
        if num_classes is not None:
            self.label_embed = LabelEmbedding(num_classes, width, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List(
            [DiTBlock(width, heads, mlp_ratio, dtype=dtype, rngs=rngs) for _ in range(depth)]
        )
        self.final_norm = nnx.LayerNorm(
            width, epsilon=1e-6, use_bias=False, use_scale=False, rngs=rngs
        )
        self.final_ada = linear(width, 2 * width, kernel_init=zeros, bias_init=zeros)
        self.out = linear(width, patch * patch * channels, kernel_init=zeros, bias_init=zeros)

    def _patchify(self, x: Array) -> Array:
        b, h, w, c = x.shape
        p = self.patch
        x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(b, (h // p) * (w // p), p * p * c)

    def _unpatchify(self, x: Array) -> Array:
        h, w, c = self.image_shape
        p = self.patch
        x = x.reshape(x.shape[0], h // p, w // p, p, p, c).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(x.shape[0], h, w, c)

    def __call__(self, x: Array, t: Array | float, y: Array | None = None) -> Array:
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"x must have shape [B, *{list(self.image_shape)}], got {x.shape}")
        t = batch_time(t, x)
        positions = sincos_positions(self.image_shape[0] // self.patch, self.width)
        tokens = self.embed(self._patchify(x.astype(self.dtype))) + positions.astype(self.dtype)
        c = self.time_embed(t)
        if self.num_classes is not None:
            c = c + self.label_embed(y, x.shape[0])
        elif y is not None:
            raise ValueError("y was given but the DiT was built without num_classes")
        for block in self.blocks:
            tokens = block(tokens, c)
        shift, scale = jnp.split(self.final_ada(jax.nn.silu(c)), 2, -1)
        tokens = _modulate(
            self.final_norm(tokens.astype(jnp.float32)).astype(self.dtype), shift, scale
        )
        return self._unpatchify(self.out(tokens)).astype(x.dtype)

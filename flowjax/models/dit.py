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

from flowjax._utils import Array, batch_times
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding, rotary_embedding

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
    """Pre-norm attention and MLP, each with adaLN-Zero shift, scale and gate from `c`:
    `(x [B, N, width], c [B, width]) -> [B, N, width]`. `causal`: position n attends to
    positions <= n only; `rotary`: queries and keys carry rotary position embeddings."""

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float,
        *,
        causal: bool = False,
        rotary: bool = False,
        dtype: jnp.dtype | None,
        rngs: nnx.Rngs,
    ) -> None:
        linear = lambda i, o, **kw: nnx.Linear(i, o, dtype=dtype, rngs=rngs, **kw)  # noqa: E731
        self.heads, self.causal, self.rotary = heads, causal, rotary
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
        if self.rotary:
            q, k = rotary_embedding(q), rotary_embedding(k)
        attn = jax.nn.dot_product_attention(q, k, v, is_causal=self.causal).reshape(b, n, d)
        x = x + gate1[:, None] * self.proj(attn)
        h = _modulate(self.norm2(x.astype(jnp.float32)).astype(x.dtype), shift2, scale2)
        return x + gate2[:, None] * self.fc2(jax.nn.gelu(self.fc1(h), approximate=True))


class FinalLayer(nnx.Module):
    """Layer norm with adaLN-Zero shift and scale from `c`, then a linear layer to `features`
    (zero at initialization): `(x [B, N, width], c [B, width]) -> [B, N, features]`."""

    def __init__(self, width: int, features: int, *, dtype: jnp.dtype | None, rngs: nnx.Rngs):
        zeros = nnx.initializers.zeros_init()
        linear = lambda i, o: nnx.Linear(  # noqa: E731
            i, o, kernel_init=zeros, bias_init=zeros, dtype=dtype, rngs=rngs
        )
        self.norm = nnx.LayerNorm(width, epsilon=1e-6, use_bias=False, use_scale=False, rngs=rngs)
        self.ada, self.out = linear(width, 2 * width), linear(width, features)

    def __call__(self, x: Array, c: Array) -> Array:
        shift, scale = jnp.split(self.ada(jax.nn.silu(c)), 2, -1)
        return self.out(_modulate(self.norm(x.astype(jnp.float32)).astype(x.dtype), shift, scale))


class DiT(nnx.Module):
    """`v(x, t, y=None)`: `x [B, H, W, C]`, `t [B]` (or scalar), labels `y [B]` -> `[B, H, W, C]`.

    `size` is one of `DIT_SIZES` (or pass depth / width / heads). The conditioning `c` is
    `TimeEmbedding` (sinusoidal features of `1000 t`, 256 of them, -> Linear -> SiLU -> Linear
    to `width`; with `times=2` the pair `(r, t)`, each its own branch) plus, with
    `num_classes`, `LabelEmbedding`; label `NULL_LABEL` = -1 (or
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
        times: int = 1,
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
        self.embed = nnx.Linear(patch * patch * channels, width, dtype=dtype, rngs=rngs)
        self.width = width
        self.time_embed = TimeEmbedding(dim=256, width=width, times=times, dtype=dtype, rngs=rngs)
        if num_classes is not None:
            self.label_embed = LabelEmbedding(num_classes, width, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List(
            [DiTBlock(width, heads, mlp_ratio, dtype=dtype, rngs=rngs) for _ in range(depth)]
        )
        self.final = FinalLayer(width, patch * patch * channels, dtype=dtype, rngs=rngs)

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

    def __call__(self, x: Array, t: Any, y: Array | None = None) -> Array:
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"x must have shape [B, *{list(self.image_shape)}], got {x.shape}")
        t = batch_times(t, x)
        positions = sincos_positions(self.image_shape[0] // self.patch, self.width)
        tokens = self.embed(self._patchify(x.astype(self.dtype))) + positions.astype(self.dtype)
        c = self.time_embed(t)
        if self.num_classes is not None:
            c = c + self.label_embed(y, x.shape[0])
        elif y is not None:
            raise ValueError("y was given but the DiT was built without num_classes")
        for block in self.blocks:
            tokens = block(tokens, c)
        return self._unpatchify(self.final(tokens, c)).astype(x.dtype)

"""The ADM UNet (Dhariwal & Nichol 2021) used for images by Lipman et al. 2023 and TorchCFM.

Same architecture, parameter count and attention semantics as TorchCFM's `UNetModelWrapper`
(weights transfer one to one, see `experiments/unet_parity`), written for NHWC images in Flax NNX.
"""

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax._utils import Array, batch_times
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding

NUM_GROUPS = 32  # GroupNorm groups, as in ADM

# ADM / TorchCFM channel multipliers by image size, used when `channel_mult` is None.
DEFAULT_CHANNEL_MULT: dict[int, tuple[float, ...]] = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
    32: (1, 2, 2, 2),
    28: (1, 2, 2),
}

UNET_PRESETS: dict[str, dict[str, Any]] = {
    # Lipman et al. 2023, App. Table 3 (CIFAR-10): 142,861,315 parameters.
    "lipman_cifar10": dict(
        image_shape=(32, 32, 3),
        model_channels=256,
        num_res_blocks=2,
        channel_mult=(1, 2, 2, 2),
        attention_resolutions=(16,),
        num_heads=4,
        num_head_channels=64,
        dropout=0.0,
    ),
    # TorchCFM's examples/images/cifar10 training script: 35,746,307 parameters.
    "torchcfm_cifar10": dict(
        image_shape=(32, 32, 3),
        model_channels=128,
        num_res_blocks=2,
        channel_mult=(1, 2, 2, 2),
        attention_resolutions=(16,),
        num_heads=4,
        num_head_channels=64,
        dropout=0.1,
    ),
    # A small class-conditional MNIST network (ours), for quick runs and tests.
    "mnist": dict(
        image_shape=(28, 28, 1),
        model_channels=32,
        num_res_blocks=1,
        channel_mult=(1, 2, 2),
        attention_resolutions=(14,),
        num_head_channels=32,
        num_classes=10,
    ),
}

# Kernels start as PyTorch's default (uniform, variance 1 / (3 fan_in)); biases at zero.
_kernel_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
_zeros = nnx.initializers.zeros_init()


@dataclasses.dataclass(frozen=True)
class _Make:
    """Layer factory shared by the blocks: compute dtype, parameter dtype and RNGs."""

    dtype: Any
    param_dtype: Any
    rngs: nnx.Rngs

    def conv(
        self, c_in: int, c_out: int, size: int, stride: int = 1, zero: bool = False
    ) -> nnx.Conv:
        pad = ((size // 2, size // 2),) * 2  # PyTorch's symmetric padding (not "SAME")
        return nnx.Conv(
            c_in,
            c_out,
            (size, size),
            strides=stride,
            padding=pad,
            kernel_init=_zeros if zero else _kernel_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )

    def linear(self, d_in: int, d_out: int, zero: bool = False) -> nnx.Linear:
        return nnx.Linear(
            d_in,
            d_out,
            kernel_init=_zeros if zero else _kernel_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )

    def norm(self, channels: int) -> nnx.GroupNorm:
        """GroupNorm(32) computed in float32 (its output is cast back by the caller)."""
        return nnx.GroupNorm(
            channels,
            num_groups=NUM_GROUPS,
            epsilon=1e-5,
            use_fast_variance=False,
            dtype=jnp.float32,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )


def _upsample(h: Array) -> Array:
    """Nearest-neighbour 2x: `[B, H, W, C] -> [B, 2H, 2W, C]`."""
    b, height, width, c = h.shape
    h = jnp.broadcast_to(h[:, :, None, :, None], (b, height, 2, width, 2, c))
    return h.reshape(b, 2 * height, 2 * width, c)


def _downsample(h: Array) -> Array:
    """2x2 average pooling: `[B, H, W, C] -> [B, H/2, W/2, C]`."""
    b, height, width, c = h.shape
    return h.reshape(b, height // 2, 2, width // 2, 2, c).mean(axis=(2, 4))


class ResBlock(nnx.Module):
    """`h [B, H, W, C_in]`, `emb [B, E]` -> `[B, H', W', C_out]` (H' = 2H, H/2 or H by `resample`).

    GroupNorm -> SiLU -> (resample) -> conv, plus the projected embedding (added, or as
    `(1 + scale) * norm(h) + shift` with `use_scale_shift_norm`), GroupNorm -> SiLU -> dropout ->
    zero-initialized conv; the skip is a 1x1 conv when the channel count changes.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_dim: int,
        *,
        dropout: float,
        use_scale_shift_norm: bool,
        resample: str | None,
        make: _Make,
    ) -> None:
        self.norm1, self.conv1 = make.norm(c_in), make.conv(c_in, c_out, 3)
        self.emb_proj = make.linear(emb_dim, 2 * c_out if use_scale_shift_norm else c_out)
        self.norm2, self.conv2 = make.norm(c_out), make.conv(c_out, c_out, 3, zero=True)
        self.dropout = nnx.Dropout(dropout)
        self.skip = make.conv(c_in, c_out, 1) if c_in != c_out else None
        self.use_scale_shift_norm, self.resample = use_scale_shift_norm, resample

    def __call__(self, x: Array, emb: Array, key: Array | None = None) -> Array:
        h = nnx.silu(self.norm1(x)).astype(x.dtype)
        if self.resample is not None:
            resample = _upsample if self.resample == "up" else _downsample
            h, x = resample(h), resample(x)
        h = self.conv1(h)
        e = self.emb_proj(nnx.silu(emb))[:, None, None, :]
        if self.use_scale_shift_norm:
            scale, shift = jnp.split(e, 2, axis=-1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = nnx.silu(h).astype(x.dtype)
        h = self.dropout(h, deterministic=key is None, rngs=key)
        skip = x if self.skip is None else self.skip(x)
        return skip + self.conv2(h)


class AttentionBlock(nnx.Module):
    """Self-attention over the `H * W` positions: `[B, H, W, C] -> [B, H, W, C]` (residual).

    The fused `qkv` projection is laid out per head as `[q | k | v]` (TorchCFM's default
    "legacy" order); `jax.nn.dot_product_attention` lets XLA pick a fused kernel.
    """

    def __init__(self, channels: int, num_heads: int, *, make: _Make) -> None:
        self.norm = make.norm(channels)
        self.qkv = make.linear(channels, 3 * channels)
        self.proj = make.linear(channels, channels, zero=True)
        self.num_heads = num_heads

    def __call__(self, x: Array) -> Array:
        b, height, width, c = x.shape
        h = self.norm(x).astype(x.dtype).reshape(b, height * width, c)
        qkv = self.qkv(h).reshape(b, height * width, self.num_heads, 3, c // self.num_heads)
        q, k, v = qkv[:, :, :, 0], qkv[:, :, :, 1], qkv[:, :, :, 2]
        a = jax.nn.dot_product_attention(q, k, v)  # [B, HW, heads, C / heads]
        return x + self.proj(a.reshape(b, height, width, c))


class Downsample(nnx.Module):
    """Strided 3x3 conv: `[B, H, W, C] -> [B, H/2, W/2, C]`."""

    def __init__(self, channels: int, *, make: _Make) -> None:
        self.conv = make.conv(channels, channels, 3, stride=2)

    def __call__(self, x: Array) -> Array:
        return self.conv(x)


class Upsample(nnx.Module):
    """Nearest 2x, then a 3x3 conv: `[B, H, W, C] -> [B, 2H, 2W, C]`."""

    def __init__(self, channels: int, *, make: _Make) -> None:
        self.conv = make.conv(channels, channels, 3)

    def __call__(self, x: Array) -> Array:
        return self.conv(_upsample(x))


def _parse_resolutions(resolutions: tuple[int, ...] | str) -> tuple[int, ...]:
    if isinstance(resolutions, str):
        return tuple(int(r) for r in resolutions.split(",") if r.strip())
    return tuple(int(r) for r in resolutions)


class UNet(nnx.Module):
    """`v(x, t, y=None, *, key=None)`: `x [B, H, W, C]`, `t [B]` (or scalar), labels `y [B]`
    -> `[B, H, W, C]`.

    The ADM UNet with TorchCFM's `UNetModelWrapper` semantics: `len(channel_mult)` levels of
    `num_res_blocks` residual blocks (`model_channels * mult` channels each), halving the
    resolution between levels (strided conv, or a residual block with `resblock_updown`); a
    middle block (res, attention, res); a mirrored decoder with skip connections. Self-attention
    runs at each of `attention_resolutions`, feature-map heights such as `(16,)` or TorchCFM's
    string "16,8" (downsampling rate `H // res`; unlike TorchCFM, a resolution that no level
    reaches is an error). Heads: `channels // num_head_channels` when given, else `num_heads`.

    Time (`TimeEmbedding`): sinusoidal features of `time_scale * t` (max period 10,000;
    TorchCFM feeds t in [0, 1] unscaled, `time_scale=1`; ADM's integer diffusion steps would be
    `1000`), then Linear -> SiLU -> Linear to `4 * model_channels`; with `times=2` the pair
    `(r, t)` of a two-time model, each time its own branch. With `num_classes`, a label
    embedding (`LabelEmbedding`, N(0, 1) rows) is added; label `NULL_LABEL` = -1 (or
    `num_classes`, or `y=None`) is the null class for classifier-free guidance, so the table has
    `num_classes + 1` rows (TorchCFM's has `num_classes`).

    Dropout acts only when a PRNG `key` is passed (training); without one the network is
    deterministic. Parameters are `param_dtype`; convolutions, linears and attention compute in
    `dtype` (e.g. bfloat16), group norms in float32. Output convolutions start at zero (ADM).
    `PRESETS` (= `UNET_PRESETS`) holds named configurations, image shape included.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = UNET_PRESETS

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *,
        model_channels: int = 128,
        num_res_blocks: int = 2,
        channel_mult: tuple[float, ...] | None = None,
        attention_resolutions: tuple[int, ...] | str = (16,),
        num_heads: int = 1,
        num_head_channels: int | None = None,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        num_classes: int | None = None,
        time_scale: float = 1.0,
        times: int = 1,
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be (H, W, C), positive sizes, got {image_shape}")
        height, width, c_image = image_shape
        if channel_mult is None:
            if height not in DEFAULT_CHANNEL_MULT:
                raise ValueError(
                    f"no default channel_mult for image height {height}; pass channel_mult "
                    f"(defaults exist for {sorted(DEFAULT_CHANNEL_MULT)})"
                )
            channel_mult = DEFAULT_CHANNEL_MULT[height]
        channel_mult = tuple(channel_mult)
        widths = [int(model_channels * m) for m in channel_mult]
        levels = len(widths)
        if levels < 1 or min(widths) < 1 or num_res_blocks < 1:
            raise ValueError(
                "model_channels, channel_mult and num_res_blocks must be positive, got "
                f"model_channels={model_channels}, channel_mult={channel_mult}, "
                f"num_res_blocks={num_res_blocks}"
            )
        if any(w % NUM_GROUPS for w in widths) or model_channels % 2:
            raise ValueError(
                f"model_channels * channel_mult = {widths} must be divisible by the {NUM_GROUPS} "
                f"GroupNorm groups (and model_channels={model_channels} even)"
            )
        factor = 2 ** (levels - 1)
        if height % factor or width % factor:
            raise ValueError(
                f"image size {height}x{width} must be divisible by 2**(len(channel_mult) - 1) = "
                f"{factor}"
            )
        reachable = {height // 2**level: 2**level for level in range(levels)}
        resolutions = _parse_resolutions(attention_resolutions)
        if unreachable := [r for r in resolutions if r not in reachable]:
            raise ValueError(
                f"attention_resolutions {unreachable} not reachable: the feature-map heights of "
                f"this UNet are {sorted(reachable, reverse=True)}"
            )
        attention_ds = {reachable[r] for r in resolutions}
        attention_widths = {widths[-1]} | {widths[ds.bit_length() - 1] for ds in attention_ds}
        head_size = num_head_channels
        if head_size is not None and any(w % head_size for w in attention_widths):
            raise ValueError(
                f"num_head_channels={head_size} must divide the attention widths "
                f"{sorted(attention_widths)}"
            )
        if head_size is None and any(w % num_heads for w in attention_widths):
            raise ValueError(
                f"num_heads={num_heads} must divide the attention widths {sorted(attention_widths)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")

        self.image_shape = (height, width, c_image)
        self.model_channels, self.num_classes = model_channels, num_classes
        make = _Make(dtype, param_dtype, rngs)
        emb_dim = 4 * model_channels
        self.time_embed = TimeEmbedding(
            dim=model_channels,
            scale=time_scale,
            width=emb_dim,
            times=times,
            activation=nnx.silu,
            kernel_init=_kernel_init,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        if num_classes is not None:
            self.class_embed = LabelEmbedding(
                num_classes,
                emb_dim,
                embedding_init=nnx.initializers.normal(1.0),
                dtype=dtype,
                param_dtype=param_dtype,
                rngs=rngs,
            )

        def res(c_in: int, c_out: int, resample: str | None = None) -> ResBlock:
            return ResBlock(
                c_in,
                c_out,
                emb_dim,
                dropout=dropout,
                use_scale_shift_norm=use_scale_shift_norm,
                resample=resample,
                make=make,
            )

        def attention(c: int) -> AttentionBlock:
            return AttentionBlock(c, num_heads if head_size is None else c // head_size, make=make)

        ch = widths[0]
        self.conv_in = make.conv(c_image, ch, 3)
        skips, down, ds = [ch], [], 1
        for level, w in enumerate(widths):
            for _ in range(num_res_blocks):
                layers = [res(ch, w)]
                ch = w
                if ds in attention_ds:
                    layers.append(attention(ch))
                down.append(nnx.List(layers))
                skips.append(ch)
            if level < levels - 1:
                layer = res(ch, ch, "down") if resblock_updown else Downsample(ch, make=make)
                down.append(nnx.List([layer]))
                skips.append(ch)
                ds *= 2
        self.down = nnx.List(down)
        self.middle = nnx.List([res(ch, ch), attention(ch), res(ch, ch)])
        up = []
        for level, w in reversed(list(enumerate(widths))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), w)]
                ch = w
                if ds in attention_ds:
                    layers.append(attention(ch))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, "up") if resblock_updown else Upsample(ch, make=make))
                    ds //= 2
                up.append(nnx.List(layers))
        self.up = nnx.List(up)
        self.norm_out, self.conv_out = make.norm(ch), make.conv(ch, c_image, 3, zero=True)

    @classmethod
    def from_preset(cls, name: str, *, rngs: nnx.Rngs, **overrides: Any) -> "UNet":
        """A network of `PRESETS[name]`, with some arguments overridden."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides}, rngs=rngs)

    def __call__(
        self, x: Array, t: Any, y: Array | None = None, *, key: Array | None = None
    ) -> Array:
        if x.shape[1:] != self.image_shape:
            raise ValueError(f"x must have shape [B, *{list(self.image_shape)}], got {x.shape}")
        emb = self.time_embed(batch_times(t, x))
        if self.num_classes is not None:
            emb = emb + self.class_embed(y, x.shape[0])
        elif y is not None:
            raise ValueError("y was given but the UNet was built without num_classes")
        keys = (None if key is None else jax.random.fold_in(key, i) for i in itertools.count())

        h = self.conv_in(x)
        skips = [h]
        for layers in self.down:
            h = _apply(layers, h, emb, keys)
            skips.append(h)
        h = _apply(self.middle, h, emb, keys)
        for layers in self.up:
            h = _apply(layers, jnp.concatenate([h, skips.pop()], axis=-1), emb, keys)
        h = nnx.silu(self.norm_out(h)).astype(h.dtype)
        return self.conv_out(h).astype(x.dtype)


def _apply(layers: nnx.List, h: Array, emb: Array, keys: Iterator[Array | None]) -> Array:
    """Run a block's layers in order; residual blocks also see `emb` and a dropout key."""
    for layer in layers:
        h = layer(h, emb, next(keys)) if isinstance(layer, ResBlock) else layer(h)
    return h

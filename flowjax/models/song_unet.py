"""EDM's SongUNet (Karras et al. 2022) in its DDPM++ configuration (Song et al. 2021): the
CIFAR-10 network of MeanFlow (Geng et al. 2025, the py-meanflow code) and SoFlow (Luo et al.
2025), for NHWC images in Flax NNX.

Residual blocks with FIR [1, 3, 3, 1] resampling (in the block's first convolution and its
1x1-projected skip), outputs scaled by 1/sqrt(2), one-head self-attention at 16x16 and in the
first decoder block, positional time features through a two-layer mapping network added to
every block, EDM's Xavier-uniform initialization. Parameter counts equal those of the
released networks: 55,932,419 for both CIFAR-10 presets (`SongUNet.PRESETS`).
"""

import itertools
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax._utils import Array, batch_times
from flowjax.models.embeddings import LabelEmbedding, sinusoidal_embedding

SKIP_SCALE = 1 / math.sqrt(2)  # every block's residual sums are scaled by this
NORM_EPS = 1e-6


def _xavier(gain: float) -> Any:
    """EDM's `xavier_uniform` times `gain`: U(-b, b), b = gain sqrt(6 / (fan_in + fan_out))."""
    return nnx.initializers.variance_scaling(gain**2, "fan_avg", "uniform")


INIT, INIT_ZERO, INIT_ATTN = _xavier(1.0), _xavier(1e-5), _xavier(math.sqrt(0.2))

# The CIFAR-10 networks as py-meanflow (`meanflow/scripts/cifar10_v0.sh`, `model_configs.py`
# with `--use_edm_aug`) and SoFlow (`models.py`) build them: 55,932,419 parameters each.
_CIFAR10: dict[str, Any] = dict(
    event_shape=(32, 32, 3),
    model_channels=128,
    channel_mult=(2, 2, 2),
    num_blocks=4,
    attn_resolutions=(16,),
    channel_mult_noise=2,
    augment_dim=6,
    resample_filter=(1, 3, 3, 1),
)
SONG_UNET_PRESETS: dict[str, dict[str, Any]] = {
    "meanflow_cifar10": {**_CIFAR10, "dropout": 0.2},
    "soflow_cifar10": {**_CIFAR10, "dropout": 0.3},
}


def fir_filter(taps: tuple[float, ...]) -> np.ndarray:
    """The separable 2-D filter `outer(taps, taps) / sum(taps)^2`, `[k, k]` (sums to 1)."""
    f = np.asarray(taps, np.float64)
    return (np.outer(f, f) / f.sum() ** 2).astype(np.float32)


def _depthwise(x: Array, kernel: np.ndarray, **conv: Any) -> Array:
    """`kernel [k, k]` applied to each channel of `x [B, H, W, C]` (a cross-correlation)."""
    c = x.shape[-1]
    w = jnp.broadcast_to(jnp.asarray(kernel, x.dtype)[:, :, None, None], (*kernel.shape, 1, c))
    return jax.lax.conv_general_dilated(
        x, w, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c, **conv
    )


def fir_downsample(x: Array, taps: tuple[float, ...]) -> Array:
    """`[B, H, W, C] -> [B, H/2, W/2, C]`: the FIR filter at stride 2 with `(k - 1) // 2` zeros
    of padding each side (EDM's `conv2d(x, f, stride=2, padding=f_pad)`; near the border the
    zeros count, e.g. 7/8 of a constant image's value at its edge for [1, 3, 3, 1])."""
    f, p = fir_filter(taps), (len(taps) - 1) // 2
    return _depthwise(x, f, window_strides=(2, 2), padding=((p, p), (p, p)))


def fir_upsample(x: Array, taps: tuple[float, ...]) -> Array:
    """`[B, H, W, C] -> [B, 2H, 2W, C]`: the transposed convolution with `4 f` at stride 2 and
    padding `(k - 1) // 2` (EDM's `conv_transpose2d`), written as a convolution of the
    2x-dilated input with the flipped filter; 3/4 of a constant's value at the border."""
    f, k = fir_filter(taps), len(taps)
    pad = k - 1 - (k - 1) // 2
    return _depthwise(
        x,
        4.0 * f[::-1, ::-1],
        window_strides=(1, 1),
        padding=((pad, pad), (pad, pad)),
        lhs_dilation=(2, 2),
    )


class _Make:
    """Layer factory of the network: EDM's initializers, compute dtype, parameter dtype, RNGs."""

    def __init__(self, dtype: Any, param_dtype: Any, rngs: nnx.Rngs) -> None:
        self.dtype, self.param_dtype, self.rngs = dtype, param_dtype, rngs

    def conv(self, c_in: int, c_out: int, size: int, init: Any = INIT) -> nnx.Conv:
        pad = size // 2
        return nnx.Conv(
            c_in,
            c_out,
            (size, size),
            padding=((pad, pad), (pad, pad)),
            kernel_init=init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )

    def linear(self, d_in: int, d_out: int, init: Any = INIT, use_bias: bool = True) -> nnx.Linear:
        return nnx.Linear(
            d_in,
            d_out,
            use_bias=use_bias,
            kernel_init=init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )

    def norm(self, channels: int) -> nnx.GroupNorm:
        """EDM's GroupNorm: `min(32, channels // 4)` groups, eps 1e-6, computed in float32."""
        groups = min(32, channels // 4)
        if groups < 1 or channels % groups:
            raise ValueError(
                f"a GroupNorm of {channels} channels needs min(32, channels // 4) = {groups} "
                "groups to divide it: choose other model_channels or channel_mult"
            )
        return nnx.GroupNorm(
            channels,
            num_groups=groups,
            epsilon=NORM_EPS,
            use_fast_variance=False,
            dtype=jnp.float32,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )


class SongBlock(nnx.Module):
    """EDM's `UNetBlock` as DDPM++ sets it: `(x [B, H, W, C_in], emb [B, E]) -> [B, H', W',
    C_out]` (H' = 2H, H/2 or H by `resample`).

    `h = conv0(resample(silu(norm0(x))))`, `h = silu(norm1(h + affine(emb)))`, dropout,
    `conv1` (Xavier times 1e-5), `h = (h + skip(x)) / sqrt(2)` with `skip` the resampled 1x1
    convolution when the shape changes (else the identity); with `attention`, one head over the
    `H' W'` positions, `h = (h + proj(attend(qkv(norm2(h))))) / sqrt(2)`, the fused `qkv`
    laid out `[q | k | v]` (py-meanflow's order; SoFlow's EDM code interleaves q, k and v per
    channel, the same layer with its output channels permuted).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_dim: int,
        *,
        resample: str | None,
        attention: bool,
        dropout: float,
        taps: tuple[float, ...],
        make: _Make,
    ) -> None:
        self.c_in, self.resample, self.taps = c_in, resample, taps
        self.norm0, self.conv0 = make.norm(c_in), make.conv(c_in, c_out, 3)
        self.affine = make.linear(emb_dim, c_out)
        self.norm1, self.conv1 = make.norm(c_out), make.conv(c_out, c_out, 3, INIT_ZERO)
        self.dropout = nnx.Dropout(dropout)
        changes = c_in != c_out or resample is not None
        self.skip = make.conv(c_in, c_out, 1) if changes else None
        if attention:
            self.norm2 = make.norm(c_out)
            self.qkv = make.linear(c_out, 3 * c_out, INIT_ATTN)
            self.proj = make.linear(c_out, c_out, INIT_ZERO)
        self.attention = attention

    def _resample(self, h: Array) -> Array:
        if self.resample is None:
            return h
        resample = fir_upsample if self.resample == "up" else fir_downsample
        return resample(h, self.taps)

    def __call__(self, x: Array, emb: Array, key: Array | None = None) -> Array:
        h = self.conv0(self._resample(nnx.silu(self.norm0(x)).astype(x.dtype)))
        h = h + self.affine(emb)[:, None, None, :]
        h = nnx.silu(self.norm1(h)).astype(x.dtype)
        h = self.conv1(self.dropout(h, deterministic=key is None, rngs=key))
        skip = x if self.skip is None else self.skip(self._resample(x))
        h = (h + skip) * SKIP_SCALE
        if not self.attention:
            return h
        b, height, width, c = h.shape
        q, k, v = jnp.split(self.qkv(self.norm2(h).astype(h.dtype)), 3, axis=-1)
        q, k, v = (a.reshape(b, height * width, 1, c) for a in (q, k, v))
        a = jax.nn.dot_product_attention(q, k, v).reshape(b, height, width, c)
        return (h + self.proj(a)) * SKIP_SCALE


class SongUNet(nnx.Module):
    """`v(x, t, y=None, *, augment_labels=None, key=None)`: `x [B, H, W, C]`, `t [B]` (or
    scalar; `times=2`: the pair `(s, e)`), labels `y [B]` -> `[B, H, W, C]`.

    Encoder: a 3x3 convolution to `model_channels`, then for each level (resolution `H >> level`)
    a downsampling block (below the first level) and `num_blocks` blocks of `model_channels *
    channel_mult[level]` channels, with attention at the heights in `attn_resolutions`. Decoder,
    from the lowest level up: two blocks (the first with attention) at the bottom, an
    upsampling block at the others, then `num_blocks + 1` blocks each taking the next encoder
    output (concatenated), attention in the last of them at `attn_resolutions`; GroupNorm ->
    SiLU -> 3x3 convolution out (EDM's "standard" encoder and decoder).

    Time features: EDM's positional embedding (endpoint frequencies `10_000^(-k / (n/2 - 1))`,
    `[sin | cos]`, `n = model_channels * channel_mult_noise` per time) of t in [0, 1] unscaled,
    as py-meanflow and SoFlow feed it. `times=1`: of t. `times=2`: our times `(s, e)` (the
    average velocity from s to e >= s; 0 is the noise, 1 the data) are embedded as `(s, e -
    s)`, the interval in the place of py-meanflow's `t - r` and SoFlow's `t - s`; their first
    time is `1 - s` (t = 1 at the noise), whose features are a fixed per-frequency rotation of
    those of `s` (`cos(w (1 - s))` and `sin(w (1 - s))` are combinations of `cos(w s)` and
    `sin(w s)`), which the first mapping layer absorbs. The times' features are concatenated,
    plus the label embedding (`num_classes`; `LabelEmbedding`, N(0, 1) rows, its null class
    for `y=None` or -1) and EDM's augmentation-label projection (`augment_dim`, applied only
    when `augment_labels [B, augment_dim]` are given: EDM's non-leaking augmentation), then
    Linear -> SiLU -> Linear -> SiLU to `4 * model_channels`.

    Dropout acts only when a PRNG `key` is passed (training). Parameters are `param_dtype`;
    convolutions, linears and attention compute in `dtype` (e.g. bfloat16), group norms in
    float32; the output has the dtype of `x`.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = SONG_UNET_PRESETS

    def __init__(
        self,
        event_shape: tuple[int, int, int],
        *,
        model_channels: int = 128,
        channel_mult: tuple[int, ...] = (2, 2, 2),
        num_blocks: int = 4,
        attn_resolutions: tuple[int, ...] = (16,),
        dropout: float = 0.0,
        channel_mult_noise: int = 2,
        augment_dim: int = 0,
        num_classes: int | None = None,
        times: int = 1,
        resample_filter: tuple[float, ...] = (1, 3, 3, 1),
        dtype: jnp.dtype | None = None,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if len(event_shape) != 3 or min(event_shape) < 1:
            raise ValueError(f"event_shape must be (H, W, C), positive sizes, got {event_shape}")
        height, width, c_image = event_shape
        levels = len(channel_mult)
        if levels < 1 or model_channels < 1 or min(channel_mult) < 1 or num_blocks < 1:
            raise ValueError(
                "model_channels, channel_mult and num_blocks must be positive, got "
                f"{model_channels}, {channel_mult}, {num_blocks}"
            )
        factor = 2 ** (levels - 1)
        if height % factor or width % factor:
            raise ValueError(f"image size {height}x{width} must be divisible by {factor}")
        heights = [height >> level for level in range(levels)]
        if unreachable := sorted(set(attn_resolutions) - set(heights)):
            raise ValueError(
                f"attn_resolutions {unreachable} not reachable: the feature-map heights are "
                f"{heights}"
            )
        noise_dim = model_channels * channel_mult_noise
        if noise_dim < 4 or noise_dim % 2:
            raise ValueError(
                f"model_channels * channel_mult_noise = {noise_dim} must be even and >= 4"
            )
        if times not in (1, 2):
            raise ValueError(f"times must be 1 or 2, got {times}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if len(resample_filter) < 2 or sum(resample_filter) == 0:
            raise ValueError(f"resample_filter needs >= 2 taps of nonzero sum: {resample_filter}")

        self.event_shape, self.times, self.noise_dim = (height, width, c_image), times, noise_dim
        self.num_classes, self.augment_dim = num_classes, augment_dim
        make = _Make(dtype, param_dtype, rngs)
        features, emb_dim = times * noise_dim, 4 * model_channels
        if num_classes is not None:
            self.class_embed = LabelEmbedding(
                num_classes,
                features,
                embedding_init=nnx.initializers.normal(1.0),
                dtype=dtype,
                param_dtype=param_dtype,
                rngs=rngs,
            )
        if augment_dim:
            self.map_augment = make.linear(augment_dim, features, use_bias=False)
        self.map_layer0 = make.linear(features, emb_dim)
        self.map_layer1 = make.linear(emb_dim, emb_dim)

        taps = tuple(float(f) for f in resample_filter)

        def block(c_in: int, c_out: int, resample: str | None = None, attention: bool = False):
            return SongBlock(
                c_in,
                c_out,
                emb_dim,
                resample=resample,
                attention=attention,
                dropout=dropout,
                taps=taps,
                make=make,
            )

        c = model_channels
        self.conv_in = make.conv(c_image, c, 3)
        skips, encoder = [c], []
        for level, mult in enumerate(channel_mult):
            if level:
                encoder.append(block(c, c, "down"))
                skips.append(c)
            attention = heights[level] in attn_resolutions
            for _ in range(num_blocks):
                encoder.append(block(c, model_channels * mult, attention=attention))
                c = model_channels * mult
                skips.append(c)
        decoder = []
        for level, mult in reversed(list(enumerate(channel_mult))):
            if level == levels - 1:
                decoder += [block(c, c, attention=True), block(c, c)]
            else:
                decoder.append(block(c, c, "up"))
            for i in range(num_blocks + 1):
                attention = i == num_blocks and heights[level] in attn_resolutions
                decoder.append(block(c + skips.pop(), model_channels * mult, attention=attention))
                c = model_channels * mult
        self.encoder, self.decoder = nnx.List(encoder), nnx.List(decoder)
        self.norm_out, self.conv_out = make.norm(c), make.conv(c, c_image, 3, INIT_ZERO)

    @classmethod
    def from_preset(cls, name: str, *, rngs: nnx.Rngs, **overrides: Any) -> "SongUNet":
        """A network of `PRESETS[name]`, with some arguments overridden."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides}, rngs=rngs)

    def time_features(self, t: Array | tuple[Array, Array], x: Array) -> Array:
        """`t` (`times=1`) or `(s, e)` (`times=2`) -> `[B, times * noise_dim]`: the positional
        features of t, or of `s` and `e - s`, concatenated."""
        given = t if isinstance(t, tuple) else (t,)
        if len(given) != self.times:
            expected = "one time t" if self.times == 1 else "the pair (s, e)"
            raise ValueError(f"this SongUNet takes {expected}, got {len(given)} times")
        ts = batch_times(given, x)
        if self.times == 2:
            ts = (ts[0], ts[1] - ts[0])
        half = self.noise_dim // 2
        period = 10_000.0 ** (half / (half - 1))  # EDM's endpoint frequencies
        out = []
        for tau in ts:
            cos_sin = sinusoidal_embedding(tau, self.noise_dim, max_period=period, scale=1.0)
            out += [cos_sin[:, half:], cos_sin[:, :half]]  # [sin | cos]
        return jnp.concatenate(out, axis=-1)

    def __call__(
        self,
        x: Array,
        t: Any,
        y: Array | None = None,
        *,
        augment_labels: Array | None = None,
        key: Array | None = None,
    ) -> Array:
        if x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape [B, *{list(self.event_shape)}], got {x.shape}")
        emb = self.time_features(t, x)
        if self.num_classes is not None:
            emb = emb + self.class_embed(y, x.shape[0]).astype(emb.dtype)
        elif y is not None:
            raise ValueError("y was given but the SongUNet was built without num_classes")
        if augment_labels is not None:
            if not self.augment_dim:
                raise ValueError("augment_labels were given but augment_dim is 0")
            emb = emb + self.map_augment(augment_labels)
        emb = nnx.silu(self.map_layer1(nnx.silu(self.map_layer0(emb))))
        keys = (None if key is None else jax.random.fold_in(key, i) for i in itertools.count())

        h = self.conv_in(x)
        skips = [h]
        for block in self.encoder:
            h = block(h, emb, next(keys))
            skips.append(h)
        for block in self.decoder:
            if h.shape[-1] != block.c_in:  # EDM's rule: a block wider than h takes a skip
                h = jnp.concatenate([h, skips.pop()], axis=-1)
            h = block(h, emb, next(keys))
        h = nnx.silu(self.norm_out(h)).astype(h.dtype)
        return self.conv_out(h).astype(x.dtype)

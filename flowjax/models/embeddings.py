"""Embeddings of the conditioning shared by every model: the flow time(s), the class label
and sequence positions.

`TimeEmbedding` embeds one time `t` or, for two-time (one-step, MeanFlow-type) models, a pair
`(r, t)`; `LabelEmbedding` embeds class labels with a null class for classifier-free guidance;
`rotary_embedding` rotates attention queries and keys by their positions.
"""

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from flowjax._utils import Array
from flowjax.guidance import NULL_LABEL

ENCODINGS = ("raw", "sinusoidal")
# nnx.Linear's and nnx.Embed's default initializers
LECUN_NORMAL = nnx.initializers.lecun_normal()
EMBED_NORMAL = nnx.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


def sinusoidal_embedding(
    t: Array, dim: int, max_period: float = 10_000.0, scale: float = 1_000.0
) -> Array:
    """Transformer / ADM sinusoidal features of `scale * t`: `t [*B] -> [*B, dim]` (dim even;
    `[cos | sin]` halves, frequencies `max_period ** (-k / (dim / 2))`)."""
    if dim % 2:
        raise ValueError(f"dim must be even for a sinusoidal embedding, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = scale * jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def rotary_embedding(x: Array, max_period: float = 10_000.0) -> Array:
    """Rotary position embedding (Su et al. 2021) of queries or keys `x [B, N, heads, D]` (D
    even) at positions 0..N-1: feature pairs `(i, i + D/2)` rotated by the angle
    `n * max_period ** (-2i / D)`, computed in float32, returned in `x.dtype`."""
    n, d = x.shape[1], x.shape[-1]
    if d % 2:
        raise ValueError(f"rotary embedding needs an even head dimension, got {d}")
    freqs = max_period ** (-jnp.arange(d // 2, dtype=jnp.float32) / (d // 2))
    angles = jnp.arange(n, dtype=jnp.float32)[:, None] * freqs  # [N, D/2]
    cos, sin = jnp.cos(angles)[:, None], jnp.sin(angles)[:, None]  # [N, 1, D/2]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


class _Branch(nnx.Module):
    """`Linear(d_in, width) -> activation -> Linear(width, width)` on the features of one time;
    `zero`: the output layer starts at zero (a new branch that adds nothing at first)."""

    def __init__(
        self, d_in: int, width: int, *, zero: bool, activation: Callable, make: Callable
    ) -> None:
        zeros = nnx.initializers.zeros_init()
        self.hidden = make(d_in, width)
        self.out = make(width, width, **(dict(kernel_init=zeros, bias_init=zeros) if zero else {}))
        self.activation = activation

    def __call__(self, features: Array) -> Array:
        return self.out(self.activation(self.hidden(features)))


class TimeEmbedding(nnx.Module):
    """`t [B] (or scalar) -> [B, out_features]`, or with `times=2`, `(r, t) -> [B, out_features]`.

    Each time is encoded as "raw" (t itself, 1 feature) or "sinusoidal" (`sinusoidal_embedding`
    of `scale * t`, `dim` features). With `width`, each time then has its own branch
    `Linear -> activation -> Linear` to `width` features and the branches' outputs are summed;
    the output layers of all but the first branch start at zero, so that at initialization
    `embed((r, t)) == embed_one_time(r)` (the first time is the one that a one-time network
    reads), and a one-time embedding's parameters (`branches[0]`) load into a two-time one.
    Without `width` (no layers) the encodings are concatenated, the first time's first:
    `out_features = times * (1 or dim)`.

    Times are broadcast together (each `[B]` or scalar; a scalar alone gives `[out_features]`).
    `kernel_init`, `dtype` and `param_dtype` are those of the linear layers.
    """

    def __init__(
        self,
        encoding: str = "sinusoidal",
        *,
        dim: int = 256,
        scale: float = 1_000.0,
        width: int | None = None,
        times: int = 1,
        activation: Callable[[Array], Array] = jax.nn.silu,
        kernel_init: Callable = LECUN_NORMAL,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown time encoding {encoding!r}; expected one of {ENCODINGS}")
        if times < 1:
            raise ValueError(f"times must be positive, got {times}")
        self.encoding, self.dim, self.scale, self.times = encoding, dim, scale, times
        d_in = 1 if encoding == "raw" else dim
        self.out_features = times * d_in if width is None else width
        make = functools.partial(
            nnx.Linear, kernel_init=kernel_init, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        branches = [
            _Branch(d_in, width, zero=i > 0, activation=activation, make=make)
            for i in range(times if width is not None else 0)
        ]
        self.branches = nnx.List(branches) if branches else None

    def _encode(self, t: Array) -> Array:
        """`t [*B] -> [*B, 1]` (raw, dtype kept) or `[*B, dim]` (sinusoidal, float32)."""
        if self.encoding == "raw":
            return t[..., None]
        return sinusoidal_embedding(t, self.dim, scale=self.scale)

    def __call__(self, t: Array | float | tuple[Array | float, ...]) -> Array:
        """`t` (`times=1`) or the tuple `(r, t)` (`times=2`), each `[B]` or scalar."""
        given = t if isinstance(t, tuple) else (t,)
        if len(given) != self.times:
            expected = "one time t" if self.times == 1 else f"a tuple of {self.times}, e.g. (r, t)"
            raise ValueError(f"this time embedding takes {expected}, got {len(given)} times")
        ts = jnp.broadcast_arrays(*(jnp.asarray(s) for s in given))
        if ts[0].ndim > 1:
            raise ValueError(f"times must be scalars or have shape [B], got shape {ts[0].shape}")
        features = [self._encode(s) for s in ts]
        if self.branches is None:
            return jnp.concatenate(features, axis=-1)
        outputs = (branch(f) for branch, f in zip(self.branches, features, strict=True))
        return functools.reduce(operator.add, outputs)


class LabelEmbedding(nnx.Module):
    """`(y [B] or None, batch B) -> [B, features]`: rows of the table `embedding`
    `[num_classes + 1, features]` (`param_dtype`, read in `dtype`; None: `param_dtype`).

    Row `num_classes` is the null class of classifier-free guidance: `y=None` selects it for the
    whole batch, and so does a label equal to `flowjax.guidance.NULL_LABEL` (-1) or to
    `num_classes`. Labels must be integers of shape `[B]`; concrete labels outside
    `[0, num_classes]` and -1 are a ValueError (traced ones cannot be checked here: the
    training system checks its data's labels before compute).
    """

    def __init__(
        self,
        num_classes: int,
        features: int,
        *,
        embedding_init: Callable = EMBED_NORMAL,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        shape = (num_classes + 1, features)
        self.embedding = nnx.Param(embedding_init(rngs.params(), shape, param_dtype))
        self.num_classes, self.dtype = num_classes, dtype

    def __call__(self, y: Array | None, batch: int) -> Array:
        if y is None:
            rows = jnp.full((batch,), self.num_classes)
        else:
            y = jnp.asarray(y)
            if y.shape != (batch,):
                raise ValueError(f"labels y must have shape [B] = {(batch,)}, got {y.shape}")
            if not jnp.issubdtype(y.dtype, jnp.integer):
                raise ValueError(f"labels y must be integers, got dtype {y.dtype}")
            if not isinstance(y, jax.core.Tracer):  # concrete labels: checked here, on the host
                values = np.asarray(y)
                bad = values[((values < 0) & (values != NULL_LABEL)) | (values > self.num_classes)]
                if bad.size:
                    raise ValueError(
                        f"labels must lie in [0, {self.num_classes}) (or be the null class "
                        f"{NULL_LABEL} or {self.num_classes}), got {sorted(set(bad.tolist()))}"
                    )
            rows = jnp.where(y == NULL_LABEL, self.num_classes, y)
        table = self.embedding[...]
        return jnp.take(table if self.dtype is None else table.astype(self.dtype), rows, axis=0)

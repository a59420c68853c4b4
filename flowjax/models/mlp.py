"""A multilayer-perceptron velocity field for vector data (2-D toys, tabular data)."""

import math
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from flowjax._utils import Array, batch_times, check_choice
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "silu": jax.nn.silu,
    "selu": jax.nn.selu,
    "gelu": jax.nn.gelu,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "softplus": jax.nn.softplus,
}
TIME_EMBEDDINGS = ("raw", "sinusoidal", "learned")


class MLP(nnx.Module):
    """`v(x, t, y=None)`: `x [B, *event]`, `t [B]` (or scalar), labels `y [B]` -> `[B, *event]`.

    `dim` is the event shape (an int for vectors); other event shapes are flattened.

    `t` is one time, or with `times=2` the pair `(r, t)` of a two-time (average-velocity)
    model (`TimeEmbedding`). The input layer sees `[x, embed(t), embed(y)]`, followed by
    `depth` hidden layers of `width` units; with `time_every_layer` every later layer (the
    output's too) sees `[h, embed(t)]`, a time-dependent bias per layer as the RFM networks'
    concat layers. Time embeddings: "raw"
    (t itself, as TorchCFM's and Meta's 2-D examples), "sinusoidal" (fixed features,
    `time_dim`), "learned" (t -> Linear -> act -> Linear, `time_dim`).
    With `num_classes`, labels are embedded (`LabelEmbedding`, `class_dim` features); label
    `NULL_LABEL` = -1 (or `num_classes`, or `y=None`) is the null class of classifier-free
    guidance.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(
        self,
        dim: int | tuple[int, ...],
        *,
        width: int = 512,
        depth: int = 4,
        activation: str = "silu",
        time_embedding: str = "raw",
        time_dim: int = 64,
        num_classes: int | None = None,
        class_dim: int = 64,
        time_every_layer: bool = False,
        times: int = 1,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ) -> None:
        check_choice(activation, ACTIVATIONS, "activation")
        check_choice(time_embedding, TIME_EMBEDDINGS, "time_embedding")
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be positive, got depth={depth}, width={width}")
        self.event_shape = (dim,) if isinstance(dim, int) else tuple(dim)
        self.num_classes = num_classes
        dim = math.prod(self.event_shape)
        self.activation = activation
        linear = lambda i, o: nnx.Linear(i, o, dtype=dtype, rngs=rngs)  # noqa: E731
        self.time_embed = TimeEmbedding(
            "raw" if time_embedding == "learned" else time_embedding,
            dim=time_dim,
            width=time_dim if time_embedding == "learned" else None,
            times=times,
            activation=ACTIVATIONS[activation],
            dtype=dtype,
            rngs=rngs,
        )
        c_features = 0
        if num_classes is not None:
            self.class_embed = LabelEmbedding(num_classes, class_dim, dtype=dtype, rngs=rngs)
            c_features = class_dim
        self.time_every_layer = time_every_layer
        extra = self.time_embed.out_features if time_every_layer else 0
        sizes = [dim + self.time_embed.out_features + c_features] + [width] * depth
        inputs = [sizes[0]] + [width + extra] * (depth - 1)
        self.hidden = nnx.List([linear(i, o) for i, o in zip(inputs, sizes[1:], strict=True)])
        self.out = linear(width + extra, dim)

    def __call__(self, x: Array, t: Any, y: Array | None = None) -> Array:
        if x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape [B, *{list(self.event_shape)}], got {x.shape}")
        time = self.time_embed(batch_times(t, x)).astype(x.dtype)
        features = [x.reshape(x.shape[0], -1), time]
        if self.num_classes is not None:
            features.append(self.class_embed(y, x.shape[0]).astype(x.dtype))
        elif y is not None:
            raise ValueError("y was given but the MLP was built without num_classes")
        h = jnp.concatenate(features, axis=-1)
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.hidden):
            h = act(layer(self._with_time(h, time) if i else h))
        return self.out(self._with_time(h, time)).astype(x.dtype).reshape(x.shape)

    def _with_time(self, h: Array, time: Array) -> Array:
        return jnp.concatenate([h, time], axis=-1) if self.time_every_layer else h

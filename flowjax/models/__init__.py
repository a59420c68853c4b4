"""Flax NNX velocity fields and the bridge to pure callables.

`MODELS` names the model classes for a config system: each is built as
`cls(event_shape, **keyword_arguments, rngs=...)` (keyword-only arguments with plain type hints:
int, float, str, bool, tuples of them, or `| None`), and has named configurations in
`cls.PRESETS`.
"""

from flowjax.models.dit import DIT_SIZES, DiT
from flowjax.models.embeddings import LabelEmbedding, TimeEmbedding, sinusoidal_embedding
from flowjax.models.functional import Functional, functional, parameter_count
from flowjax.models.mlp import ACTIVATIONS, MLP, TIME_EMBEDDINGS
from flowjax.models.song_unet import SONG_UNET_PRESETS, SongUNet
from flowjax.models.tokens import TokenMLP, TokenTransformer
from flowjax.models.unet import UNET_PRESETS, UNet

MODELS: dict[str, type[MLP | UNet | SongUNet | DiT | TokenMLP | TokenTransformer]] = {
    "mlp": MLP,
    "unet": UNet,
    "song_unet": SongUNet,
    "dit": DiT,
    "token_mlp": TokenMLP,
    "token_transformer": TokenTransformer,
}

__all__ = [
    "ACTIVATIONS",
    "DIT_SIZES",
    "MLP",
    "MODELS",
    "SONG_UNET_PRESETS",
    "TIME_EMBEDDINGS",
    "UNET_PRESETS",
    "DiT",
    "Functional",
    "LabelEmbedding",
    "SongUNet",
    "TimeEmbedding",
    "TokenMLP",
    "TokenTransformer",
    "UNet",
    "functional",
    "parameter_count",
    "sinusoidal_embedding",
]

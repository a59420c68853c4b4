"""Flax NNX velocity fields and the bridge to pure callables."""

from flowjax.models.dit import DIT_SIZES, DiT
from flowjax.models.embeddings import sinusoidal_embedding
from flowjax.models.functional import Functional, functional, parameter_count
from flowjax.models.mlp import ACTIVATIONS, MLP, TIME_EMBEDDINGS
from flowjax.models.unet import UNET_PRESETS, UNet

__all__ = [
    "ACTIVATIONS",
    "DIT_SIZES",
    "MLP",
    "TIME_EMBEDDINGS",
    "UNET_PRESETS",
    "DiT",
    "Functional",
    "UNet",
    "functional",
    "parameter_count",
    "sinusoidal_embedding",
]

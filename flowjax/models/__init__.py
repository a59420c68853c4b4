"""Flax NNX velocity fields and the bridge to pure callables."""

from flowjax.models.embeddings import sinusoidal_embedding
from flowjax.models.functional import Functional, functional
from flowjax.models.mlp import ACTIVATIONS, MLP, TIME_EMBEDDINGS

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "TIME_EMBEDDINGS",
    "Functional",
    "functional",
    "sinusoidal_embedding",
]

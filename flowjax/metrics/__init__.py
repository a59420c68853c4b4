"""Evaluation metrics."""

from flowjax.metrics.bits_per_dim import bits_per_dim, dequantize
from flowjax.metrics.fid import (
    fid,
    fid_statistics,
    frechet_distance,
    image_statistics,
    inception_features,
)
from flowjax.metrics.inception import InceptionV3, convert_inception, load_inception
from flowjax.metrics.objective import joint_cfm_objective
from flowjax.metrics.wasserstein import normalized_path_energy, path_energy, wasserstein2

__all__ = [
    "InceptionV3",
    "bits_per_dim",
    "convert_inception",
    "dequantize",
    "fid",
    "fid_statistics",
    "frechet_distance",
    "image_statistics",
    "inception_features",
    "joint_cfm_objective",
    "load_inception",
    "normalized_path_energy",
    "path_energy",
    "wasserstein2",
]

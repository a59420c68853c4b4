"""Evaluation metrics."""

from flowjax.metrics.bits_per_dim import bits_per_dim, dequantize
from flowjax.metrics.objective import joint_cfm_objective
from flowjax.metrics.wasserstein import normalized_path_energy, path_energy, wasserstein2

__all__ = [
    "bits_per_dim",
    "dequantize",
    "joint_cfm_objective",
    "normalized_path_energy",
    "path_energy",
    "wasserstein2",
]

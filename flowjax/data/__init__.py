"""Datasets: toy 2-D distributions (image, text and manifold data come with later modules)."""

from flowjax.data.toy2d import (
    CHECKERBOARD_ENTROPY,
    DISTRIBUTIONS,
    checkerboard_log_prob,
    quantize,
    sample_toy,
)

__all__ = [
    "CHECKERBOARD_ENTROPY",
    "DISTRIBUTIONS",
    "checkerboard_log_prob",
    "quantize",
    "sample_toy",
]

"""Evaluation metrics."""

from flowjax.metrics.bits_per_dim import bits_per_dim, dequantize

__all__ = ["bits_per_dim", "dequantize"]

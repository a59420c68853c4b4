"""flowjax: Flow Matching in JAX."""

from flowjax import couplings, data, losses, metrics, models, paths, solvers, time_samplers

__version__ = "0.1.0"
__all__ = ["couplings", "data", "losses", "metrics", "models", "paths", "solvers", "time_samplers"]

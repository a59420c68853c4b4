"""flowjax: Flow Matching in JAX."""

from flowjax import (
    couplings,
    data,
    guidance,
    losses,
    matchers,
    metrics,
    models,
    ot,
    paths,
    solvers,
    time_samplers,
)

__version__ = "0.1.0"
__all__ = [
    "couplings",
    "data",
    "guidance",
    "losses",
    "matchers",
    "metrics",
    "models",
    "ot",
    "paths",
    "solvers",
    "time_samplers",
]

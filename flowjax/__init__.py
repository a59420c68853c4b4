"""flowjax: Flow Matching in JAX."""

from flowjax import (
    couplings,
    data,
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
    "losses",
    "matchers",
    "metrics",
    "models",
    "ot",
    "paths",
    "solvers",
    "time_samplers",
]

"""ODE sampling and likelihoods on Diffrax."""

from flowjax.solvers.likelihood import (
    DIVERGENCES,
    PROBES,
    draw_probes,
    exact_divergence,
    hutchinson_divergence,
    log_likelihood,
    standard_normal_log_prob,
)
from flowjax.solvers.ode import (
    BATCH_MODES,
    FIXED_STEP,
    METHODS,
    OPTIONS,
    RK4,
    Solution,
    SolveStats,
    integrate,
    sample,
)

__all__ = [
    "BATCH_MODES",
    "DIVERGENCES",
    "FIXED_STEP",
    "METHODS",
    "OPTIONS",
    "PROBES",
    "RK4",
    "Solution",
    "SolveStats",
    "draw_probes",
    "exact_divergence",
    "hutchinson_divergence",
    "integrate",
    "log_likelihood",
    "sample",
    "standard_normal_log_prob",
]

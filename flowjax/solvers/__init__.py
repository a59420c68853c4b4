"""ODE sampling and likelihoods on Diffrax; CTMC sampling of discrete flow matching; flow-map
(few-step) sampling of average-velocity models."""

from flowjax.solvers.ctmc import DRAWS, JUMPS, ctmc_euler
from flowjax.solvers.fixed import TABLEAUS, exact_stats, fixed_step, rk_step, time_grid
from flowjax.solvers.flow_map import flow_map_sample, renoised_flow_map_sample
from flowjax.solvers.likelihood import (
    DIVERGENCES,
    PROBES,
    draw_probes,
    exact_divergence,
    hutchinson_divergence,
    log_likelihood,
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
from flowjax.solvers.projected import STEPS, manifold_sample

__all__ = [
    "BATCH_MODES",
    "DIVERGENCES",
    "DRAWS",
    "FIXED_STEP",
    "JUMPS",
    "METHODS",
    "OPTIONS",
    "PROBES",
    "RK4",
    "STEPS",
    "TABLEAUS",
    "Solution",
    "SolveStats",
    "ctmc_euler",
    "draw_probes",
    "exact_divergence",
    "exact_stats",
    "fixed_step",
    "flow_map_sample",
    "hutchinson_divergence",
    "integrate",
    "log_likelihood",
    "manifold_sample",
    "renoised_flow_map_sample",
    "rk_step",
    "sample",
    "time_grid",
]

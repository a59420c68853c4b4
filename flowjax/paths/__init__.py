"""Probability paths: schedulers, affine Gaussian paths and parameterization conversions."""

from flowjax.paths.affine import PARAMETERIZATIONS, AffinePath, PathSample, as_velocity
from flowjax.paths.noisy import BrownianBridge, Constant, NoisyPath
from flowjax.paths.schedule_change import change_scheduler
from flowjax.paths.schedulers import (
    VE,
    VP,
    Coefficients,
    CondOT,
    Cosine,
    LinearVP,
    Polynomial,
    Scheduler,
)

__all__ = [
    "PARAMETERIZATIONS",
    "VE",
    "VP",
    "AffinePath",
    "BrownianBridge",
    "Coefficients",
    "CondOT",
    "Constant",
    "Cosine",
    "LinearVP",
    "NoisyPath",
    "PathSample",
    "Polynomial",
    "Scheduler",
    "as_velocity",
    "change_scheduler",
]

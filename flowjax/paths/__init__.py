"""Probability paths: schedulers, affine Gaussian paths and parameterization conversions, the
mixture paths of discrete flow matching, and geodesic and premetric paths on manifolds."""

from flowjax.contracts import PathSample
from flowjax.paths.affine import PARAMETERIZATIONS, AffinePath, as_velocity
from flowjax.paths.dirichlet import (
    DirichletPath,
    betainc_da,
    betainc_integer_b,
    velocity_coefficient,
)
from flowjax.paths.geodesic import GeodesicPath
from flowjax.paths.mixture import MetricPath, MixturePath, carry_unmasked
from flowjax.paths.noisy import NOISES, BrownianBridge, Constant, NoisyPath
from flowjax.paths.premetric import PremetricPath
from flowjax.paths.schedule_change import change_scheduler
from flowjax.paths.schedulers import (
    SCHEDULERS,
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
    "NOISES",
    "PARAMETERIZATIONS",
    "SCHEDULERS",
    "VE",
    "VP",
    "AffinePath",
    "BrownianBridge",
    "Coefficients",
    "CondOT",
    "Constant",
    "Cosine",
    "DirichletPath",
    "GeodesicPath",
    "LinearVP",
    "MetricPath",
    "MixturePath",
    "NoisyPath",
    "PathSample",
    "Polynomial",
    "PremetricPath",
    "Scheduler",
    "as_velocity",
    "betainc_da",
    "betainc_integer_b",
    "carry_unmasked",
    "change_scheduler",
    "velocity_coefficient",
]

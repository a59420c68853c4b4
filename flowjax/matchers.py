"""The TorchCFM family of conditional flow matchers as (coupling, path) pairs on our core.

- "icfm" (I-CFM): independent pairs; x_t = t x1 + (1 - t) x0 + sigma eps.
- "otcfm" (OT-CFM): exact minibatch OT pairs (a permutation); the I-CFM path.
- "sbcfm" (SB-CFM): entropic OT pairs (reg = 2 sigma^2, drawn from the plan); a Brownian
  bridge, noise sigma sqrt(t (1 - t)).
- "vpcfm" (VP-CFM): independent pairs; x_t = cos(pi t / 2) x0 + sin(pi t / 2) x1 + sigma eps.
- "fm" (Lipman et al.'s target FM): independent pairs; x_t = t x1 + (1 - (1 - sigma) t) x0,
  which needs a standard Gaussian source.

Rectified flow (Liu et al. 2023) is I-CFM with sigma = 0 trained on the pairs that a previous
model's ODE makes (`reflow_pairs`), repeated k times for k-rectified flow.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from flowjax import couplings, paths, solvers
from flowjax._utils import Array, check_choice


@dataclasses.dataclass(frozen=True)
class Matcher:
    """What `cfm_loss` needs beyond the model: how to pair samples, and the conditional path."""

    coupling: couplings.Coupling
    path: paths.AffinePath | paths.NoisyPath


def _straight(sigma: float) -> paths.NoisyPath:
    return paths.NoisyPath(paths.CondOT(), paths.Constant(sigma))


MATCHERS = {
    "icfm": lambda sigma: Matcher(couplings.independent, _straight(sigma)),
    "otcfm": lambda sigma: Matcher(couplings.ot_coupling("exact"), _straight(sigma)),
    "sbcfm": lambda sigma: Matcher(
        couplings.ot_coupling("sinkhorn", reg=2.0 * sigma**2),
        paths.NoisyPath(paths.CondOT(), paths.BrownianBridge(sigma)),
    ),
    "vpcfm": lambda sigma: Matcher(
        couplings.independent, paths.NoisyPath(paths.Cosine(), paths.Constant(sigma))
    ),
    "fm": lambda sigma: Matcher(
        couplings.independent, paths.AffinePath(paths.CondOT(sigma_min=sigma))
    ),
}


def matcher(name: str, sigma: float) -> Matcher:
    """The matcher `name` (see the table above) with noise level `sigma`."""
    check_choice(name, MATCHERS, "matcher")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return MATCHERS[name](sigma)


def reflow_pairs(v: Callable, params: Any, x0: Array, **solver: Any) -> tuple[Array, Array]:
    """Rectified flow's new coupling: each source point paired with where the trained flow
    takes it (`solver` options as in `flowjax.solvers.sample`; Euler 100 steps by default)."""
    sol = solvers.sample(v, params, x0, **{"method": "euler", "num_steps": 100, **solver})
    return x0, sol.y

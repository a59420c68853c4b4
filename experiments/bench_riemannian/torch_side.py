"""Meta `flow_matching` side of the Riemannian benchmark; prints one JSON object (see run.py).

Run by `experiments/bench_riemannian/run.py` in a separate Python (torch CPU, flow-matching)
as `python -m experiments.bench_riemannian.torch_side` from the repository root. The MLP of
`workloads.py` in torch, made tangent as flowjax's `tangent_field` does (evaluated at
`projx(x)`, its output projected by `proju`), with Meta's Riemannian components:
`GeodesicProbPath(CondOTScheduler(), Sphere() | FlatTorus())` and the metric loss in training
(Adam), `RiemannianODESolver` (projected midpoint) for sampling, and `ODESolver.
compute_likelihood` with the exact divergence for likelihoods (Meta has no Riemannian
likelihood; on these embedded manifolds the ambient divergence of the tangent field is the
Riemannian one).
"""

import argparse
import itertools
import json
import math
import statistics

import flow_matching
import numpy as np
import torch
from flow_matching.path import GeodesicProbPath
from flow_matching.path.scheduler import CondOTScheduler
from flow_matching.solver import ODESolver, RiemannianODESolver
from flow_matching.utils import ModelWrapper
from flow_matching.utils.manifolds import FlatTorus, Sphere
from torch import nn

from experiments.bench_riemannian.workloads import (
    DEPTH,
    LIKELIHOOD_STEPS,
    LR,
    SAMPLING_STEPS,
    WIDTH,
    WORKLOADS,
)
from experiments.timing import timed


class MLP(nn.Module):
    """flowjax's `MLP` with raw time: `[x, t]` -> `DEPTH` SiLU layers of `WIDTH` -> `dim`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        sizes = [dim + 1] + [WIDTH] * DEPTH
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(WIDTH, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x, t.reshape(-1, 1).expand(x.shape[0], 1)], dim=1)
        for layer in self.hidden:
            h = torch.nn.functional.silu(layer(h))
        return self.out(h)


class Tangent(ModelWrapper):
    """The MLP evaluated at `projx(x)`, its output projected on the tangent space there."""

    def __init__(self, model: MLP, manifold) -> None:  # noqa: ANN001
        super().__init__(model)
        self.manifold = manifold

    def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
        on = self.manifold.projx(x)
        return self.manifold.proju(on, self.model(on, t))


def build(w: dict) -> tuple[MLP, object]:
    torch.manual_seed(0)
    return MLP(w["dim"]), Sphere() if w["manifold"] == "sphere" else FlatTorus()


def uniform(w: dict, n: int) -> torch.Tensor:
    if w["manifold"] == "sphere":
        x = torch.randn(n, w["dim"])
        return x / x.norm(dim=-1, keepdim=True)
    return torch.rand(n, w["dim"]) * 2 * math.pi


def log_volume(w: dict) -> float:
    return math.log(4 * math.pi) if w["manifold"] == "sphere" else w["dim"] * math.log(2 * math.pi)


def train_rate(w: dict, batches: np.ndarray, repeats: int) -> tuple[float, float]:
    """(steps/s, final loss): the Riemannian FM step with Meta's geodesic path."""
    model, manifold = build(w)
    field = Tangent(model, manifold)
    path = GeodesicProbPath(CondOTScheduler(), manifold)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []

    def run() -> None:
        for x1 in batches:
            x1 = torch.from_numpy(x1)
            optimizer.zero_grad()
            t = torch.rand(x1.shape[0])
            sample = path.sample(x_0=uniform(w, x1.shape[0]), x_1=x1, t=t)
            error = field(sample.x_t, sample.t) - sample.dx_t
            loss = error.pow(2).sum(-1).mean()
            loss.backward()
            optimizer.step()
        losses.append(float(loss))

    run()  # warm-up
    return len(batches) / statistics.median(timed(run, repeats)), losses[-1]


def sample_rate(w: dict, repeats: int) -> float:
    """Points/s of `samples` points by projected midpoint steps."""
    model, manifold = build(w)
    solver = RiemannianODESolver(manifold, Tangent(model, manifold))

    def sample() -> torch.Tensor:
        x0 = uniform(w, w["samples"])
        with torch.no_grad():
            return solver.sample(x0, step_size=1.0 / SAMPLING_STEPS, method="midpoint")

    sample()  # warm-up
    return w["samples"] / statistics.median(timed(sample, repeats))


def network_bound(w: dict, repeats: int) -> float:
    """Points/s of the sampling if its midpoint steps cost their network calls alone (as on the
    JAX side)."""
    model = build(w)[0]
    x, t = uniform(w, w["samples"]), torch.full((w["samples"],), 0.5)
    with torch.no_grad():
        model(x, t)  # warm-up
        seconds = timed(lambda: model(x, t), 10 * repeats)
    return w["samples"] / (2 * SAMPLING_STEPS * statistics.median(seconds))


def likelihood_rate(w: dict, x1: np.ndarray, repeats: int) -> tuple[float, float]:
    """(points/s, mean log-likelihood) by midpoint steps with the exact divergence."""
    model, manifold = build(w)
    solver = ODESolver(velocity_model=Tangent(model, manifold))
    x1 = torch.from_numpy(x1)
    out = []

    def likelihood() -> None:
        _, logp = solver.compute_likelihood(
            x_1=x1,
            log_p0=lambda x: torch.full(x.shape[:1], -log_volume(w)),
            step_size=1.0 / LIKELIHOOD_STEPS,
            method="midpoint",
            exact_divergence=True,
        )
        out.append(float(logp.mean()))

    likelihood()  # warm-up
    return len(x1) / statistics.median(timed(likelihood, repeats)), out[-1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    out = {"torch": torch.__version__, "flow_matching": flow_matching.__version__}
    out |= {"threads": torch.get_num_threads(), "train": {}, "sample": {}, "likelihood": {}}
    out["bound"] = {}
    out["params"] = {}
    for name, w in WORKLOADS.items():
        rate, loss = train_rate(w, data[name], args.repeats)
        out["train"][name] = {"rate": rate, "loss": loss}
        out["sample"][name] = sample_rate(w, args.repeats)
        out["bound"][name] = network_bound(w, args.repeats)
        rate, logp = likelihood_rate(w, data[f"{name}_held_out"], args.repeats)
        out["likelihood"][name] = {"rate": rate, "logp": logp}
        out["params"][name] = sum(p.numel() for p in build(w)[0].parameters())
    print(json.dumps(out))


if __name__ == "__main__":
    main()

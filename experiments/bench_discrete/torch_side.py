"""Meta `flow_matching` side of the discrete benchmark; prints one JSON object (see run.py).

Run by `experiments/bench_discrete/run.py` in a separate Python (torch CPU, flow-matching) as
`python -m experiments.bench_discrete.torch_side` from the repository root. The same token MLP
as flowjax's `TokenMLP` written in torch (token embeddings, sinusoidal time features, SiLU
layers), with Meta's discrete components as their 2-D example uses them:
`MixtureDiscreteProbPath(PolynomialConvexScheduler(n=2))`, `MixturePathGeneralizedKL`, Adam,
and `MixtureDiscreteEulerSolver` with step size 1/64 (softmax probabilities through their
`ModelWrapper`). With the mask source the network has a logit for the mask token too (their
example's convention: the vocabulary includes it).
"""

import argparse
import itertools
import json
import math
import statistics

import flow_matching
import numpy as np
import torch
from flow_matching.loss import MixturePathGeneralizedKL
from flow_matching.path import MixtureDiscreteProbPath
from flow_matching.path.scheduler import PolynomialConvexScheduler
from flow_matching.solver import MixtureDiscreteEulerSolver
from flow_matching.utils import ModelWrapper
from torch import nn

from experiments.bench_discrete.workloads import (
    LR,
    POLYNOMIAL_N,
    SAMPLING_STEPS,
    TIME_DIM,
    WORKLOADS,
)
from experiments.timing import timed


class TokenMLP(nn.Module):
    """flowjax's TokenMLP: `(x [B, L] in [0, V], t [B]) -> logits [B, L, outputs]`."""

    def __init__(self, w: dict, outputs: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(w["vocab"] + 1, w["embed_dim"])
        sizes = [w["length"] * w["embed_dim"] + TIME_DIM] + [w["width"]] * w["depth"]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.out = nn.Linear(w["width"], w["length"] * outputs)
        half = TIME_DIM // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half) / half))
        self.outputs = outputs

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        args = 1000.0 * t[:, None] * self.freqs
        h = torch.cat([self.embed(x).flatten(1), torch.cos(args), torch.sin(args)], dim=1)
        for layer in self.hidden:
            h = torch.nn.functional.silu(layer(h))
        return self.out(h).reshape(x.shape[0], x.shape[1], self.outputs)


class Probabilities(ModelWrapper):
    def forward(self, x: torch.Tensor, t: torch.Tensor, **extras) -> torch.Tensor:
        return torch.softmax(self.model(x, t), dim=-1)


def build(w: dict) -> tuple[TokenMLP, MixtureDiscreteProbPath, int]:
    torch.manual_seed(0)
    vocabulary = w["vocab"] + (w["source"] == "mask")
    return (
        TokenMLP(w, vocabulary),
        MixtureDiscreteProbPath(PolynomialConvexScheduler(n=POLYNOMIAL_N)),
        vocabulary,
    )


def source(w: dict, x1: torch.Tensor) -> torch.Tensor:
    if w["source"] == "mask":
        return torch.full_like(x1, w["vocab"])
    return torch.randint_like(x1, high=w["vocab"])


def train_rate(w: dict, batches: np.ndarray, repeats: int) -> tuple[float, float]:
    """(steps/s, final loss): the training step of Meta's discrete example."""
    model, path, _ = build(w)
    loss_fn = MixturePathGeneralizedKL(path=path)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    losses = []

    def run() -> None:
        for x1 in batches:
            x1 = torch.from_numpy(x1).long()
            optimizer.zero_grad()
            t = torch.rand(x1.shape[0])
            sample = path.sample(t=t, x_0=source(w, x1), x_1=x1)
            logits = model(sample.x_t, sample.t)
            loss = loss_fn(logits=logits, x_1=x1, x_t=sample.x_t, t=sample.t)
            loss.backward()
            optimizer.step()
        losses.append(float(loss))

    run()  # warm-up
    seconds = timed(run, repeats)
    return len(batches) / statistics.median(seconds), losses[-1]


def sample_rate(w: dict, repeats: int) -> float:
    """Tokens/s of `samples` samples by their Euler solver, 64 steps."""
    model, path, vocabulary = build(w)
    solver = MixtureDiscreteEulerSolver(Probabilities(model), path, vocabulary_size=vocabulary)
    x1 = torch.zeros(w["samples"], w["length"], dtype=torch.long)

    def sample() -> torch.Tensor:
        with torch.no_grad():
            return solver.sample(x_init=source(w, x1), step_size=1.0 / SAMPLING_STEPS)

    sample()  # warm-up
    return w["samples"] * w["length"] / statistics.median(timed(sample, repeats))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    out = {"torch": torch.__version__, "flow_matching": flow_matching.__version__}
    out |= {"threads": torch.get_num_threads(), "train": {}, "sample": {}, "params": {}}
    for name, w in WORKLOADS.items():
        rate, loss = train_rate(w, data[name], args.repeats)
        out["train"][name] = {"rate": rate, "loss": loss}
        out["sample"][name] = sample_rate(w, args.repeats)
        out["params"][name] = sum(p.numel() for p in build(w)[0].parameters())
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""PyTorch references for the CPU benchmark: Meta's flow_matching and TorchCFM (+ torchdiffeq).

Run by `experiments/bench_cpu/run.py` in a separate Python (torch 2.13 CPU) as
`python -m experiments.bench_cpu.torch_side` from the repository root; prints one JSON object.
Workloads mirror `jax_side.py` exactly: 4x512 SiLU MLP on [x, t], Adam 1e-3, float32.
"""

import argparse
import itertools
import json
import statistics

import numpy as np
import torch
import torchdiffeq
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import CondOTScheduler
from flow_matching.solver import ODESolver
from torch import nn
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

from experiments.bench_cpu import workloads
from experiments.timing import timed


class MLP(nn.Module):
    """Meta's 2-D example network: [x, t] -> 4 x (Linear, SiLU) -> Linear."""

    def __init__(self, width: int = 512, depth: int = 4) -> None:
        super().__init__()
        sizes = [3] + [width] * depth
        layers = []
        for i, o in itertools.pairwise(sizes):
            layers += [nn.Linear(i, o), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, 2))
        self.calls = 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, t], dim=1))


def checkerboard(n: int) -> torch.Tensor:
    """FFJORD / Meta's 2-D example checkerboard."""
    x1 = torch.rand(n) * 4 - 2
    x2 = torch.rand(n) - torch.randint(0, 2, (n,)).float() * 2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], dim=1) * 2


def train_rate(library: str, batch: int, steps: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [checkerboard(batch) for _ in range(steps)]
    path = AffineProbPath(scheduler=CondOTScheduler())
    matcher = ConditionalFlowMatcher(sigma=0.0)

    def step(x1: torch.Tensor) -> None:
        x0 = torch.randn_like(x1)
        if library == "meta":
            t = torch.rand(x1.shape[0])
            ps = path.sample(t=t, x_0=x0, x_1=x1)
            loss = torch.pow(model(ps.x_t, ps.t) - ps.dx_t, 2).mean()
        else:
            t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
            loss = torch.pow(model(xt, t) - ut, 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for x1 in batches[:5]:
        step(x1)

    def run() -> None:
        for x1 in batches:
            step(x1)

    return steps / statistics.median(timed(run, repeats))


def load(path: str) -> MLP:
    """The weights written by `jax_side.py --prepare` (kernels `[in, out]`)."""
    model = MLP()
    arrays = np.load(path)
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(linears):
            layer.weight.copy_(torch.from_numpy(arrays[f"w{i}"].T.copy()))
            layer.bias.copy_(torch.from_numpy(arrays[f"b{i}"]))
    return model.eval()


def sampling(weights: str, library: str, method: str, n: int, repeats: int) -> tuple[float, int]:
    torch.manual_seed(0)
    model = load(weights)
    x0 = torch.randn(n, 2)
    solver = ODESolver(velocity_model=model)

    @torch.no_grad()
    def run() -> torch.Tensor:
        if library == "meta":
            if method == "euler":
                return solver.sample(x_init=x0, step_size=0.01, method="euler")
            return solver.sample(x_init=x0, step_size=None, method="dopri5", atol=1e-5, rtol=1e-5)
        f = lambda t, x: model(x, t)  # noqa: E731  TorchCFM's examples call torchdiffeq directly
        if method == "euler":
            return torchdiffeq.odeint(
                f, x0, torch.tensor([0.0, 1.0]), method="euler", options={"step_size": 0.01}
            )[-1]
        return torchdiffeq.odeint(
            f, x0, torch.tensor([0.0, 1.0]), method="dopri5", atol=1e-5, rtol=1e-5
        )[-1]

    model.calls = 0
    seconds = timed(run, repeats)  # eager: no compilation to warm up
    return n / statistics.median(seconds), model.calls // repeats


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--weights", required=True, help="written by jax_side.py --prepare")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    reps = 1 if args.quick else 3
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train": {},
        "sample": {},
    }
    for library in ("meta", "torchcfm"):
        for batch, steps in workloads.train(args.quick):
            out["train"][f"{library}/{batch}"] = train_rate(library, batch, steps, reps)
        for method, n in workloads.sample(args.quick):
            rate, nfe = sampling(args.weights, library, method, n, min(reps, 2))
            out["sample"][f"{library}/{method}/{n}"] = {"samples_per_s": rate, "nfe": nfe}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

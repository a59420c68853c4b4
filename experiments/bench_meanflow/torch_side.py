"""The PyTorch side of the MeanFlow benchmark: a flow-matching and a MeanFlow training step
(Adam) of the same 2-D MLP on [x, r, t], the MeanFlow target by `torch.func.jvp` along
(v, 0, 1) as py-meanflow computes it (the paper's convention: t = 1 at the noise); prints one
JSON line of seconds per step."""

import json
import statistics

import torch
from torch import nn
from torch.func import jvp

from experiments.bench_meanflow.workloads import EPS, MLP, POWER, RATIO, REPEATS, WARMUP
from experiments.timing import timed


def mlp() -> nn.Module:
    layers, size = [], MLP["dim"] + 2
    for _ in range(MLP["depth"]):
        layers += [nn.Linear(size, MLP["width"]), nn.SiLU()]
        size = MLP["width"]
    return nn.Sequential(*layers, nn.Linear(size, MLP["dim"]))


def main() -> None:
    torch.manual_seed(0)
    net = mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    b, d = MLP["batch"], MLP["dim"]
    x = torch.randn(b, d) + 2.0

    def u(z: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([z, r[:, None], t[:, None]], -1))

    def times() -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.sigmoid(torch.randn(2, b) - 0.4)
        t, r = a.max(0).values, a.min(0).values
        return t, torch.where(torch.rand(b) < RATIO, r, t)

    def fm_step() -> None:
        eps = torch.randn(b, d)
        t, _ = times()
        z = (1 - t[:, None]) * x + t[:, None] * eps
        loss = ((u(z, t, t) - (eps - x)) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def meanflow_step() -> None:
        eps = torch.randn(b, d)
        t, r = times()
        z = (1 - t[:, None]) * x + t[:, None] * eps
        v = eps - x
        out, du = jvp(u, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
        target = (v - (t - r)[:, None] * du).detach()
        error = ((out - target) ** 2).sum(-1)
        loss = (error / (error.detach() + EPS) ** POWER).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    out = {}
    for name, step in (("fm", fm_step), ("meanflow", meanflow_step)):
        timed(step, WARMUP)
        out[name] = statistics.median(timed(step, REPEATS))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "mlp": out}))


if __name__ == "__main__":
    main()

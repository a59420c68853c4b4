"""TorchCFM side of the OT-coupling benchmark; prints one JSON object (see run.py).

Run by `experiments/bench_ot/run.py` in a separate Python (torch CPU, torchcfm, POT) as
`python -m experiments.bench_ot.torch_side` from the repository root. Mirrors `jax_side.py`:

- Coupling: `OTPlanSampler(method="exact").sample_plan(x0, x1)` (POT's `emd` on the full plan,
  then n pairs drawn from it with replacement) on the batches of the data file.
- Training step: `torchcfm.models.MLP(dim=2, w=64, time_varying=True)` (3x64 SELU on [x, t]),
  AdamW (lr 1e-3, weight decay 1e-5), batch 512, `ConditionalFlowMatcher(sigma=0.1)` (I-CFM)
  or `ExactOptimalTransportConditionalFlowMatcher(sigma=0.1)` (OT-CFM), as TorchCFM's 2-D
  tutorial writes the step.
"""

import argparse
import json
import statistics
import warnings

import numpy as np
import ot
import torch
import torchcfm
from torchcfm.conditional_flow_matching import (
    ConditionalFlowMatcher,
    ExactOptimalTransportConditionalFlowMatcher,
)
from torchcfm.models.models import MLP
from torchcfm.optimal_transport import OTPlanSampler

from experiments.timing import timed


def coupling_rate(x0: np.ndarray, x1: np.ndarray) -> tuple[float, float, list[str]]:
    """(couplings/s, mean squared distance under the first batch's plan, distinct warnings)."""
    sampler = OTPlanSampler(method="exact")
    batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(x0, x1, strict=True)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pi = sampler.get_map(*batches[0])  # warm-up, and the plan's cost (untimed)
        cost = float(np.sum(pi * torch.cdist(*batches[0]).square().numpy()))
        it = iter(batches)
        seconds = timed(lambda: sampler.sample_plan(*next(it)), len(batches))
    return 1.0 / statistics.median(seconds), cost, sorted({str(w.message) for w in caught})


def train_rate(name: str, x0: np.ndarray, x1: np.ndarray, repeats: int) -> float:
    """Steps/s over the batches `x0`, `x1` `[steps, 512, 2]`."""
    torch.manual_seed(0)
    np.random.seed(0)  # OTPlanSampler draws its pairs with np.random
    model = MLP(dim=2, w=64, time_varying=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    fm = (
        ExactOptimalTransportConditionalFlowMatcher if name == "otcfm" else ConditionalFlowMatcher
    )(sigma=0.1)
    batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(x0, x1, strict=True)]

    def step(a: torch.Tensor, b: torch.Tensor) -> None:
        t, xt, ut = fm.sample_location_and_conditional_flow(a, b)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step(*batches[0])  # warm-up

    def run() -> None:
        for a, b in batches:
            step(a, b)

    return len(batches) / statistics.median(timed(run, repeats))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="written by run.py")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each training run")
    p.add_argument("--icfm-steps", type=int, default=1000)
    p.add_argument("--otcfm-steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.data)
    out = {
        "torch": torch.__version__,
        "torchcfm": getattr(torchcfm, "__version__", "?"),
        "pot": ot.__version__,
        "threads": torch.get_num_threads(),
        "coupling": {},
        "train": {},
    }
    sizes = sorted(int(k.removeprefix("x0_")) for k in data.files if k.startswith("x0_"))
    for n in sizes:
        rate, cost, caught = coupling_rate(data[f"x0_{n}"], data[f"x1_{n}"])
        out["coupling"][f"exact/{n}"] = {"rate": rate, "cost": cost, "warnings": caught}
    for name, steps in (("icfm", args.icfm_steps), ("otcfm", args.otcfm_steps)):
        x0, x1 = data["train_x0"][:steps], data["train_x1"][:steps]
        out["train"][name] = train_rate(name, x0, x1, args.repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

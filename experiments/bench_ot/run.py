"""OT-coupling benchmark: flowjax vs TorchCFM, same machine, same run.

    python -m experiments.bench_ot.run --torch-python /path/to/torch/bin/python [--quick]

Writes the inputs (numpy, fixed seed) to the workdir, runs the PyTorch side, then the JAX side
(never concurrently), prints a table of rates and ratios ours/theirs, and writes it with the raw
JSON to the workdir. Workloads: see README.md.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

from experiments.timing import run_side

DIM = 2
TRAIN_BATCH = 512


def workloads(quick: bool) -> dict:
    """Sizes and counts: exact coupling batch -> repeats, auction batches, train steps."""
    if quick:
        return {
            "exact": {512: 3, 1024: 3},
            "auction": [512],
            "steps": {"icfm": 100, "otcfm": 20},
            "repeats": 1,
        }
    return {
        "exact": {512: 20, 1024: 10, 4096: 5},
        "auction": [512, 1024],
        "steps": {"icfm": 1000, "otcfm": 200},
        "repeats": 3,
    }


def eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    """Tong et al.'s 2-D target: 8 equal clusters at radius 5, unit standard deviation."""
    angles = 2 * np.pi * (np.arange(8) + 1) / 8
    centers = 5.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    idx = rng.permutation(np.arange(n) % 8)
    return centers[idx] + rng.standard_normal((n, DIM))


def make_data(path: Path, spec: dict, seed: int = 0) -> None:
    """`x0_{n}`, `x1_{n}`: `[repeats, n, 2]` per coupling batch; `train_x0`, `train_x1`:
    `[steps, 512, 2]`. Sources N(0, I), targets 8 Gaussians; float32."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for n, repeats in spec["exact"].items():
        arrays[f"x0_{n}"] = rng.standard_normal((repeats, n, DIM))
        arrays[f"x1_{n}"] = np.stack([eight_gaussians(rng, n) for _ in range(repeats)])
    steps = max(spec["steps"].values())
    arrays["train_x0"] = rng.standard_normal((steps, TRAIN_BATCH, DIM))
    arrays["train_x1"] = np.stack([eight_gaussians(rng, TRAIN_BATCH) for _ in range(steps)])
    np.savez(path, **{k: v.astype(np.float32) for k, v in arrays.items()})


def fmt(rate: float) -> str:
    return f"{rate:,.1f}" if rate >= 10 else f"{rate:.2f}"


def table(ours: dict, theirs: dict, spec: dict) -> str:
    lines = ["| workload | flowjax | TorchCFM | ours / TorchCFM |", "|---|---|---|---|"]

    def row(label: str, a: float, b: float, ms: bool = False) -> None:
        cells = [f"{fmt(r)} ({1e3 / r:,.1f} ms)" if ms else fmt(r) for r in (a, b)]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | **{a / b:.2f}x** |")

    for n in spec["exact"]:
        row(
            f"exact OT coupling, batch {n} (couplings/s)",
            ours["coupling"][f"exact/{n}"]["rate"],
            theirs["coupling"][f"exact/{n}"]["rate"],
            ms=True,
        )
    for n in spec["auction"]:
        row(
            f"OT coupling, batch {n}: our on-device auction vs their exact (couplings/s)",
            ours["coupling"][f"auction/{n}"]["rate"],
            theirs["coupling"][f"exact/{n}"]["rate"],
            ms=True,
        )
    for name, label in (("icfm", "I-CFM"), ("otcfm", "OT-CFM")):
        row(
            f"{label} train step, batch {TRAIN_BATCH} (steps/s)",
            ours["train"][name],
            theirs["train"][name],
        )
    row(
        f"OT-CFM train step, batch {TRAIN_BATCH}, couplings of {ours['chunk']} steps solved "
        "together (steps/s)",
        ours["train"]["otcfm-chunked"],
        theirs["train"]["otcfm"],
    )
    for key in [k for k in ours["train"] if k.startswith("icfm-loop-")]:
        k = key.removeprefix("icfm-loop-")
        row(
            f"I-CFM training through `flowjax train`, {k} step(s) per call, batch "
            f"{TRAIN_BATCH} (steps/s)",
            ours["train"][key],
            theirs["train"]["icfm"],
        )
    lines.append("")
    overhead = ", ".join(
        f"{lib} {1e3 / side['train']['otcfm'] - 1e3 / side['train']['icfm']:.2f} ms"
        for lib, side in (("flowjax", ours), ("TorchCFM", theirs))
    )
    lines.append(f"OT overhead per training step (OT-CFM minus I-CFM step time): {overhead}")
    costs = []
    for key, value in ours["coupling"].items():
        method, n = key.split("/")
        there = theirs["coupling"][f"exact/{n}"]
        costs.append(
            f"batch {n}: flowjax {method} {value['cost']:.4f} vs TorchCFM {there['cost']:.4f}"
            if method == "exact"
            else f"batch {n}: flowjax auction {value['cost']:.4f}"
        )
    lines.append("mean squared distance of the coupled pairs (first batch): " + "; ".join(costs))
    warned = {k: v["warnings"] for k, v in theirs["coupling"].items() if v["warnings"]}
    if warned:
        lines.append(f"TorchCFM warnings: {json.dumps(warned)}")
    lines.append(
        "flowjax compile times (s, excluded above): "
        + ", ".join(f"{k} {v:.1f}" for k, v in ours["compile_s"].items())
    )
    lines.append(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"jax {ours['jax']}, POT {ours['pot']}; torch {theirs['torch']} "
        f"(threads: {theirs['threads']}), torchcfm {theirs['torchcfm']}, POT {theirs['pot']}"
    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", required=True, help="a Python with torch, torchcfm, POT")
    p.add_argument(
        "--quick", action="store_true", help="fewer repeats, no batch 4096 (a smoke test)"
    )
    p.add_argument("--torch-threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--workdir", type=Path, default=Path("work/bench_ot"))
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    spec = workloads(args.quick)
    data = args.workdir / "data.npz"
    make_data(data, spec)
    common = [
        "--data",
        str(data),
        "--repeats",
        str(spec["repeats"]),
        *(f"--{name}-steps={steps}" for name, steps in spec["steps"].items()),
    ]
    torch_side = [args.torch_python, "-m", "experiments.bench_ot.torch_side", *common]
    theirs = run_side([*torch_side, f"--threads={args.torch_threads}"])
    auction = ["--auction", *map(str, spec["auction"])]
    ours = run_side([sys.executable, "-m", "experiments.bench_ot.jax_side", *common, *auction])
    text = table(ours, theirs, spec)
    print(text)
    (args.workdir / "results.md").write_text(text + "\n")
    (args.workdir / "raw.json").write_text(json.dumps({"flowjax": ours, "torch": theirs}, indent=2))


if __name__ == "__main__":
    main()

"""Riemannian FM benchmark: flowjax vs Meta's `flow_matching` Riemannian components, same
machine, same run, the same MLP, data and step counts on each side (workloads.py):

    python -m experiments.bench_riemannian.run --torch-python .venv-torch/bin/python [--quick]

Writes the training batches and held-out points (numpy, fixed seed; fire events on S^2, RNA
torsions on T^7) to the workdir, runs the PyTorch side, then the JAX side (never
concurrently), prints training steps/s, sampling points/s (and the bound its network calls
alone set) and likelihood points/s with the ratios ours / theirs, and writes the table and the
raw JSON to the workdir.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from experiments.bench_riemannian.workloads import (
    LIKELIHOOD_STEPS,
    SAMPLING_STEPS,
    WORKLOADS,
    make_data,
)
from experiments.timing import cpu_model, run_side
from flowjax.data import manifold_records


def table(ours: dict, theirs: dict, steps: int) -> str:
    lines = [
        "| workload | flowjax | Meta flow_matching | ours / theirs |",
        "|---|---|---|---|",
    ]
    for name, w in WORKLOADS.items():
        rows = [
            (f"training, batch {w['batch']} (steps/s)", "train", "rate"),
            (
                f"sampling {w['samples']:,} points, {SAMPLING_STEPS} midpoint steps (points/s)",
                "sample",
                None,
            ),
            ("sampling's bound: its network calls alone (points/s)", "bound", None),
            (
                f"likelihood of {w['likelihood_points']:,} points, {LIKELIHOOD_STEPS} midpoint "
                "steps, exact divergence (points/s)",
                "likelihood",
                "rate",
            ),
        ]
        for what, part, key in rows:
            a, b = ours[part][name], theirs[part][name]
            a, b = (a[key], b[key]) if key else (a, b)
            lines.append(f"| {w['what']}: {what} | {a:,.1f} | {b:,.1f} | **{a / b:.2f}x** |")
    lines += [
        "",
        "the most a sampler can gain over Meta's at the same network cost (our bound / Meta's "
        "sampling): "
        + ", ".join(f"{n} {ours['bound'][n] / theirs['sample'][n]:.2f}x" for n in WORKLOADS),
        "parameters (flowjax / torch): "
        + ", ".join(f"{n} {ours['params'][n]:,} / {theirs['params'][n]:,}" for n in WORKLOADS),
        f"training: {steps} steps per repeat, median of repeats; final losses (flowjax / torch): "
        + ", ".join(
            f"{n} {ours['train'][n]['loss']:.3f} / {theirs['train'][n]['loss']:.3f}"
            for n in WORKLOADS
        ),
        "flowjax compile times (s, excluded above): "
        + ", ".join(
            f"{n} train {c['train']:.1f}, sample {c['sample']:.1f}, likelihood "
            f"{c['likelihood']:.1f}"
            for n, c in ours["compile_s"].items()
        ),
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs; jax {ours['jax']}; torch "
        f"{theirs['torch']} (threads: {theirs['threads']}), flow_matching "
        f"{theirs['flow_matching']}",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", required=True, help="a Python with torch, flow-matching")
    p.add_argument("--quick", action="store_true", help="few steps and repeats (a smoke test)")
    p.add_argument("--torch-threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--workdir", type=Path, default=Path("work/bench_riemannian"))
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    steps, repeats = (5, 1) if args.quick else (50, 3)
    points = {
        "sphere": manifold_records.earth_events(args.data / "earth-sphere" / "fire.csv"),
        "torus": manifold_records.torsion_angles(args.data / "rna-torsions" / "rna.tsv"),
    }
    data = args.workdir / "data.npz"
    make_data(str(data), points, steps)
    common = ["--data", str(data), "--repeats", str(repeats)]
    torch_side = [args.torch_python, "-m", "experiments.bench_riemannian.torch_side", *common]
    theirs = run_side([*torch_side, f"--threads={args.torch_threads}"])
    ours = run_side([sys.executable, "-m", "experiments.bench_riemannian.jax_side", *common])
    text = table(ours, theirs, steps)
    print(text)
    (args.workdir / "results.md").write_text(text + "\n")
    (args.workdir / "raw.json").write_text(json.dumps({"flowjax": ours, "torch": theirs}, indent=2))


if __name__ == "__main__":
    main()

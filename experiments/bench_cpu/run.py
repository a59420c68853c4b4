"""CPU benchmark: flowjax vs Meta's flow_matching and TorchCFM, same machine, same run.

    scripts/dev.sh bench            # builds .venv and .venv-torch, then runs this
    python -m experiments.bench_cpu.run --torch-python .venv-torch/bin/python [--quick]

Runs the PyTorch side, then the JAX side (never concurrently), prints a table of rates and
ratios ours/theirs, and writes it with the raw JSON to the workdir.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROWS = [
    ("train", "train step, batch 4096 (steps/s)", "flowjax/4096", "meta/4096", "torchcfm/4096"),
    ("train", "train step, batch 256 (steps/s)", "flowjax/256", "meta/256", "torchcfm/256"),
    (
        "train",
        "train step, batch 256, 10 steps per jit call (steps/s)",
        "flowjax-scan10/256",
        "meta/256",
        "torchcfm/256",
    ),
    (
        "sample",
        "sample 50k, Euler 100 steps (samples/s)",
        "flowjax/euler",
        "meta/euler",
        "torchcfm/euler",
    ),
    (
        "sample",
        "sample 50k, dopri5 1e-5 (samples/s)",
        "flowjax/dopri5",
        "meta/dopri5",
        "torchcfm/dopri5",
    ),
]


def run_side(cmd: list[str]) -> dict:
    print("$", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rate(side: dict, kind: str, key: str) -> float:
    value = side[kind][key]
    return value["samples_per_s"] if kind == "sample" else value


def table(ours: dict, theirs: dict) -> str:
    lines = [
        "| workload | flowjax | Meta flow_matching | TorchCFM | ours / Meta | ours / TorchCFM |",
        "|---|---|---|---|---|---|",
    ]
    for kind, label, mine, meta, cfm in ROWS:
        a, b, c = rate(ours, kind, mine), rate(theirs, kind, meta), rate(theirs, kind, cfm)
        lines.append(
            f"| {label} | {a:,.1f} | {b:,.1f} | {c:,.1f} | **{a / b:.2f}x** | **{a / c:.2f}x** |"
        )
    nfe = {
        k: v["nfe"] for side in (ours, theirs) for k, v in side["sample"].items() if "dopri5" in k
    }
    lines.append("")
    lines.append(
        "dopri5 NFE (network calls): " + ", ".join(f"{k.split('/')[0]} {v}" for k, v in nfe.items())
    )
    lines.append(
        "flowjax compile times (s, excluded above): "
        + ", ".join(f"{k} {v:.1f}" for k, v in ours["compile_s"].items())
    )
    lines.append(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"jax {ours['jax']}; torch {theirs['torch']} ({theirs['threads']} threads)"
    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--torch-python", required=True, help="a Python with torch, flow_matching, torchcfm"
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat (a smoke test)")
    p.add_argument("--workdir", type=Path, default=Path("work/bench_cpu"))
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    weights = args.workdir / "weights.npz"
    flags = ["--quick"] if args.quick else []
    jax_side = [sys.executable, "-m", "experiments.bench_cpu.jax_side", *flags]
    print("$", " ".join(jax_side), "--prepare", weights, flush=True)
    subprocess.run([*jax_side, "--prepare", str(weights)], check=True)
    here = Path(__file__).parent
    theirs = run_side(
        [args.torch_python, str(here / "torch_side.py"), *flags, "--weights", str(weights)]
    )
    ours = run_side([*jax_side, "--weights", str(weights)])
    text = table(ours, theirs)
    print(text)
    (args.workdir / "results.md").write_text(text + "\n")
    (args.workdir / "raw.json").write_text(json.dumps({"flowjax": ours, "torch": theirs}, indent=2))


if __name__ == "__main__":
    main()

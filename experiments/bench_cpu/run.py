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

from experiments.bench_cpu import workloads
from experiments.timing import run_side


def rows(quick: bool) -> list[tuple[str, str, str, str]]:
    """(kind, label, our key, their key suffix) for each line of the table."""
    out = [
        ("train", f"train step, batch {b} (steps/s)", f"flowjax/{b}", str(b))
        for b, _ in workloads.train(quick)
    ]
    b = workloads.train(quick)[-1][0]
    out.append(
        (
            "train",
            f"train step, batch {b}, {workloads.FUSED_STEPS} steps per jit call (steps/s)",
            f"flowjax-scan/{b}",
            str(b),
        )
    )
    for method, n in workloads.sample(quick):
        how = "Euler 100 steps" if method == "euler" else "dopri5 1e-5"
        out.append(
            ("sample", f"sample {n:,}, {how} (samples/s)", f"flowjax/{method}/{n}", f"{method}/{n}")
        )
    return out


def rate(side: dict, kind: str, key: str) -> float:
    value = side[kind][key]
    return value["samples_per_s"] if kind == "sample" else value


def table(ours: dict, plain: dict, theirs: dict, quick: bool) -> str:
    """The Markdown table; `plain` holds our one-call-per-step rates under `PLAIN_ENV`."""
    lines = [
        "| workload | flowjax | Meta flow_matching | TorchCFM | ours / Meta | ours / TorchCFM |",
        "|---|---|---|---|---|---|",
    ]
    without = [  # the one-call-per-step training rows again, ours under PLAIN_ENV
        (kind, label.replace(" (steps/s)", ", no host settings (steps/s)"), mine, suffix, plain)
        for kind, label, mine, suffix in rows(quick)
        if mine.removeprefix("flowjax/").isdigit()
    ]
    for kind, label, mine, suffix, side in [(*r, ours) for r in rows(quick)] + without:
        a = rate(side, kind, mine)
        b, c = rate(theirs, kind, f"meta/{suffix}"), rate(theirs, kind, f"torchcfm/{suffix}")
        lines.append(
            f"| {label} | {a:,.1f} | {b:,.1f} | {c:,.1f} | **{a / b:.2f}x** | **{a / c:.2f}x** |"
        )
    lines.append("")
    for method, n in workloads.sample(quick):
        if method == "dopri5":
            counts = ", ".join(
                f"{lib} {side['sample'][f'{lib}/{method}/{n}']['nfe']}"
                for lib, side in (("flowjax", ours), ("meta", theirs), ("torchcfm", theirs))
            )
            lines.append(f"dopri5 NFE (network calls), {n:,} points: {counts}")
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
    theirs = run_side(
        [
            args.torch_python,
            "-m",
            "experiments.bench_cpu.torch_side",
            *flags,
            "--weights",
            str(weights),
        ]
    )
    ours = run_side([*jax_side, "--weights", str(weights)])
    plain = run_side(
        [*jax_side, "--weights", str(weights), "--train-only"], env=workloads.PLAIN_ENV
    )
    text = table(ours, plain, theirs, args.quick)
    print(text)
    (args.workdir / "results.md").write_text(text + "\n")
    (args.workdir / "raw.json").write_text(
        json.dumps({"flowjax": ours, "flowjax-plain": plain, "torch": theirs}, indent=2)
    )


if __name__ == "__main__":
    main()

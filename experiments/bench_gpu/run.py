"""GPU benchmark: flowjax's UNet vs TorchCFM's `UNetModelWrapper` (PyTorch), same GPU, same run.

    python -m experiments.bench_gpu.run [--torch-python PYTHON] [--profile]   # on one H100
    python -m experiments.bench_gpu.run --quick                               # CPU smoke test

Every (side, model, dtype, variant) runs in a fresh subprocess (so that peak memory is per
config), one at a time, in priority groups, a group skipped when the time left in `--budget-s`
would not cover it. Each prints one JSON line; this script prints the tables (training img/s and
peak memory, forward img/s, ratios ours / PyTorch) and writes them, the raw JSON and every
subprocess log to the workdir. Workloads and settings: README.md.

This module is stdlib-only: both sides import the model specs below from it.
"""

import argparse
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# TorchCFM `UNetModelWrapper` arguments; the JAX side builds our `UNet` from the same dict
# (`experiments.unet_parity.run.unet_kwargs`).
MODELS: dict[str, dict[str, Any]] = {
    # Lipman et al. 2023, CIFAR-10 (our UNET_PRESETS["lipman_cifar10"]).
    "lipman": dict(
        dim=(3, 32, 32),
        num_channels=256,
        num_res_blocks=2,
        channel_mult=(1, 2, 2, 2),
        attention_resolutions="16",
        num_heads=4,
        num_head_channels=64,
        dropout=0.0,
    ),
    # TorchCFM's examples/images/cifar10 recipe (our UNET_PRESETS["torchcfm_cifar10"]).
    "torchcfm": dict(
        dim=(3, 32, 32),
        num_channels=128,
        num_res_blocks=2,
        channel_mult=(1, 2, 2, 2),
        attention_resolutions="16",
        num_heads=4,
        num_head_channels=64,
        dropout=0.1,
    ),
}
PARAMS = {"lipman": 142_861_315, "torchcfm": 35_746_307}
LABELS = {"lipman": "Lipman CIFAR-10 UNet", "torchcfm": "TorchCFM recipe UNet"}
BATCH = {"lipman": 256, "torchcfm": 128}
FORWARD_BATCH = 1024
LR = 2e-4
QUICK_OVERRIDES: dict[str, Any] = dict(num_channels=32, num_res_blocks=1)
QUICK_BATCH, QUICK_FORWARD_BATCH = 4, 8
# Guessed seconds per subprocess on an H100 (start, model init, compile, warm-up, timing), for
# the budget: training, plus the forward measurement (and the profile) where asked for. Each
# side's guesses are rescaled by how its finished jobs compared with theirs.
ESTIMATE_S = {
    ("xla", "lipman"): 75,
    ("xla", "torchcfm"): 55,
    ("eager", "lipman"): 25,
    ("eager", "torchcfm"): 20,
    ("compile", "lipman"): 120,
    ("compile", "torchcfm"): 85,
}
FORWARD_S = {"xla": 25, "eager": 8}
PROFILE_S = 10
TORCH_VARIANTS = ("eager", "compile", "eager-cl", "compile-cl")


def model_config(name: str, quick: bool) -> dict[str, Any]:
    """The `UNetModelWrapper` arguments of model `name` (tiny with `quick`)."""
    return {**MODELS[name], **(QUICK_OVERRIDES if quick else {})}


@dataclasses.dataclass(frozen=True)
class Job:
    """One subprocess: `side` "jax" (variant "xla") or "torch" (a `TORCH_VARIANTS` entry)."""

    side: str
    variant: str
    model: str
    dtype: str
    forward: bool
    profile: bool = False

    @property
    def key(self) -> str:
        return f"{self.side}/{self.variant}/{self.model}/{self.dtype}"

    def guess_s(self) -> float:
        """`ESTIMATE_S` and co. for this job (seconds on an H100)."""
        variant = self.variant.removesuffix("-cl")
        return (
            ESTIMATE_S[variant, self.model]
            + (FORWARD_S[variant] if self.forward else 0)
            + (PROFILE_S if self.profile else 0)
        )


def plan(args: argparse.Namespace) -> list[list[Job]]:
    """Groups of jobs in priority order, each run whole or skipped whole: per (dtype, model)
    the eager PyTorch variants and ours (bf16 first), then each compiled PyTorch job alone."""
    pairs, compiled = [], []
    for dtype in args.dtypes:
        forward = dtype in args.forward_dtypes
        for model in args.models:
            group = []
            for variant in args.torch_variants:
                if not variant.startswith("compile"):
                    group.append(Job("torch", variant, model, dtype, forward))
                elif dtype in args.compile_dtypes:
                    compiled.append([Job("torch", variant, model, dtype, False)])
            profile = args.profile and dtype == "bf16"
            pairs.append([*group, Job("jax", "xla", model, dtype, forward, profile)])
    return pairs + compiled


def command(job: Job, args: argparse.Namespace) -> list[str]:
    """The side's command line for `job`."""
    quick = args.quick
    batch = QUICK_BATCH if quick else BATCH[job.model]
    common = [
        f"--model={job.model}",
        f"--dtype={job.dtype}",
        f"--batch={batch}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        *(["--quick"] if quick else []),
        *(["--no-tf32"] if args.no_tf32 else []),
    ]
    if job.forward:
        common += [
            f"--forward-batch={QUICK_FORWARD_BATCH if quick else FORWARD_BATCH}",
            f"--forward-steps={args.forward_steps}",
        ]
    if job.side == "jax":
        profile = [f"--profile={args.workdir / 'profile' / f'{job.model}_{job.dtype}'}"]
        return [sys.executable, "-m", "experiments.bench_gpu.jax_side", *common] + (
            profile if job.profile else []
        )
    flags = [
        *(["--compile"] if job.variant.startswith("compile") else []),
        *(["--channels-last"] if job.variant.endswith("-cl") else []),
        *(["--fused-adam"] if args.torch_fused_adam else []),
    ]
    return [args.torch_python, "-m", "experiments.bench_gpu.torch_side", *common, *flags]


def run_job(job: Job, cmd: list[str], timeout: float, log: Path) -> dict[str, Any]:
    """Run one side in its own process group (killed whole on timeout); its JSON or an error."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if job.side == "jax":
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")  # PyTorch may use it all too
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        error = None if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        error = f"timeout after {timeout:.0f} s"
    wall = time.monotonic() - start
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    if error is None:
        try:
            result = json.loads(stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            error = "no JSON line on stdout"
    if error is not None:
        tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:]
        result = {"error": f"{error}: {tail[0][:200]}" if tail else error}
    result["wall_s"] = wall
    return result


def fmt(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def cell(result: dict | None, field: str, digits: int = 0) -> str:
    """A table cell: the value, or why there is none."""
    if result is None:
        return "—"
    if "skipped" in result:
        return "skipped"
    if "error" in result:
        return "timeout" if result["error"].startswith("timeout") else "failed"
    value: Any = result
    for part in field.split("."):
        value = None if value is None else value.get(part)
    return fmt(value, digits)


def value(result: dict | None, field: str) -> float | None:
    if not result or "error" in result or "skipped" in result:
        return None
    out: Any = result
    for part in field.split("."):
        out = None if out is None else out.get(part)
    return out


def ratio(ours: float | None, theirs: list[float | None]) -> str:
    best = max((t for t in theirs if t), default=None)
    return "—" if ours is None or best is None else f"**{ours / best:.2f}x**"


def tables(results: dict[str, dict], jobs: list[Job], args: argparse.Namespace) -> str:
    """Markdown: training, forward, then notes (compile times, memory, FLOPs, settings)."""
    variants = [v for v in args.torch_variants if any(j.variant == v for j in jobs)]
    get = lambda side, variant, model, dtype: results.get(f"{side}/{variant}/{model}/{dtype}")  # noqa: E731
    lines = [
        *(["--quick: tiny stand-ins for both models (CPU smoke test)", ""] if args.quick else []),
        "Training (img/s; CFM loss + grad + Adam, one jitted / eager step; peak memory GiB)",
        "",
        "| model (batch) | dtype | flowjax | "
        + " | ".join(f"PyTorch {v}" for v in variants)
        + " | ours / best PyTorch | peak GiB: flowjax / "
        + " / ".join(variants)
        + " |",
        "|---|---|---|" + "---|" * len(variants) + "---|---|",
    ]
    for model in args.models:
        batch = QUICK_BATCH if args.quick else BATCH[model]
        for dtype in args.dtypes:
            ours = get("jax", "xla", model, dtype)
            theirs = [get("torch", v, model, dtype) for v in variants]
            peaks = " / ".join(cell(r, "peak_gib", 1) for r in [ours, *theirs])
            r = ratio(value(ours, "train.img_s"), [value(t, "train.img_s") for t in theirs])
            lines.append(
                f"| {LABELS[model]} ({batch}) | {dtype} | {cell(ours, 'train.img_s')} | "
                + " | ".join(cell(t, "train.img_s") for t in theirs)
                + f" | {r} | {peaks} |"
            )
    fwd_dtypes = [d for d in args.dtypes if d in args.forward_dtypes]
    eager = [v for v in variants if not v.startswith("compile")]
    if fwd_dtypes and eager:
        fb = QUICK_FORWARD_BATCH if args.quick else FORWARD_BATCH
        lines += [
            "",
            f"Forward (sampling; img/s per network call at batch {fb}, chained Euler steps)",
            "",
            "| model | dtype | flowjax | "
            + " | ".join(f"PyTorch {v}" for v in eager)
            + " | ours / best PyTorch |",
            "|---|---|---|" + "---|" * len(eager) + "---|",
        ]
        for model in args.models:
            for dtype in fwd_dtypes:
                ours = get("jax", "xla", model, dtype)
                theirs = [get("torch", v, model, dtype) for v in eager]
                r = ratio(value(ours, "forward.img_s"), [value(t, "forward.img_s") for t in theirs])
                lines.append(
                    f"| {LABELS[model]} | {dtype} | {cell(ours, 'forward.img_s')} | "
                    + " | ".join(cell(t, "forward.img_s") for t in theirs)
                    + f" | {r} |"
                )
    lines += ["", "Targets: training >= 1.5x the best PyTorch; forward >= 2x.", ""]
    compile_notes, other = [], []
    for key, r in results.items():
        if "skipped" in r or "error" in r:
            other.append(f"{key}: {r.get('skipped') or r.get('error')}")
            continue
        side, variant, model, dtype = key.split("/")
        if "error" in r.get("forward", {}):
            other.append(f"{key} forward: {r['forward']['error']}")
        if side == "jax":
            fwd = value(r, "forward.compile_s")
            compile_notes.append(
                f"flowjax {model}/{dtype} train {r['train']['compile_s']:.1f}"
                + (f" + forward {fwd:.1f}" if fwd is not None else "")
            )
        elif variant.startswith("compile"):
            compile_notes.append(
                f"PyTorch {variant} {model}/{dtype} first step {r['train']['compile_s']:.1f}"
            )
        # Achieved rate from XLA's FLOP count of our step for this model (same network).
        ours = results.get(f"jax/xla/{model}/{dtype}") or {}
        if flops := ours.get("flops_per_step"):
            per_image = flops / ours["batch"]
            tflops = per_image * r["train"]["img_s"] / 1e12
            name = "flowjax" if side == "jax" else f"PyTorch {variant}"
            other.append(
                f"{name} {model}/{dtype}: {tflops:.3g} TFLOP/s "
                f"(XLA counts {per_image / 1e9:.1f} GFLOP per training image)"
            )
    if compile_notes:
        lines.append("Compile times (s, excluded above): " + "; ".join(compile_notes))
    counts = {}
    for key, r in results.items():
        if "params" in r:
            counts.setdefault(key.split("/")[2], set()).add(r["params"])
    lines.append(
        "Parameters (both sides): "
        + "; ".join(f"{m} {', '.join(f'{c:,}' for c in sorted(cs))}" for m, cs in counts.items())
    )
    lines += [f"- {line}" for line in other]
    some = {r["side"]: r for r in results.values() if "side" in r}
    if "flowjax" in some:
        s = some["flowjax"]
        lines.append(f"flowjax: jax {s['jax']}, flax {s['flax']}, {s['device']}; {s['precision']}")
    if "torch" in some:
        s = some["torch"]
        lines.append(f"PyTorch: torch {s['torch']}, {s['device']}; {s['precision']}")
    lines.append(f"host: {platform.machine()}, {os.cpu_count()} CPUs; wall {args.elapsed:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torch-python", default=sys.executable, help="a Python with torch, torchcfm")
    p.add_argument("--quick", action="store_true", help="tiny models and batches (CPU smoke test)")
    p.add_argument("--workdir", type=Path, default=Path("work/bench_gpu"))
    p.add_argument("--budget-s", type=float, help="skip jobs past this (default 450; quick 1800)")
    p.add_argument("--grace-s", type=float, default=30, help="kill a job this far past budget")
    p.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    p.add_argument("--dtypes", type=lambda s: s.split(","), default=["bf16", "fp32"])
    p.add_argument("--forward-dtypes", type=lambda s: s.split(","), default=["bf16"])
    p.add_argument(
        "--torch-variants",
        type=lambda s: s.split(","),
        help=f"comma-separated, of {', '.join(TORCH_VARIANTS)} (-cl: channels_last); "
        "default eager,compile (quick: eager, as compiling takes minutes on a CPU)",
    )
    p.add_argument("--compile-dtypes", type=lambda s: s.split(","), default=["bf16"])
    p.add_argument("--steps", type=int, help="timed training steps (default 20; quick 2)")
    p.add_argument("--warmup", type=int, help="untimed steps after compiling (3; quick 1)")
    p.add_argument("--forward-steps", type=int, help="timed forward calls (10; quick 2)")
    p.add_argument("--no-tf32", action="store_true", help="full-f32 matmuls/convs on both sides")
    p.add_argument("--torch-fused-adam", action="store_true", help="Adam(fused=True) in PyTorch")
    p.add_argument("--profile", action="store_true", help="trace a few bf16 steps of ours")
    p.add_argument("--dry-run", action="store_true", help="print the plan and commands only")
    args = p.parse_args(argv)
    quick = args.quick
    args.torch_variants = args.torch_variants or (["eager"] if quick else ["eager", "compile"])
    for name, allowed in (
        ("models", MODELS),
        ("dtypes", ("bf16", "fp32")),
        ("torch_variants", TORCH_VARIANTS),
    ):
        if bad := [x for x in getattr(args, name) if x not in allowed]:
            p.error(f"--{name.replace('_', '-')}: unknown {bad}; expected some of {list(allowed)}")
    args.dtypes = sorted(args.dtypes, key=["bf16", "fp32"].index)
    args.budget_s = args.budget_s or (1800 if quick else 450)
    args.steps = args.steps or (2 if quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.forward_steps = args.forward_steps or (2 if quick else 10)
    (args.workdir / "logs").mkdir(parents=True, exist_ok=True)

    groups = plan(args)
    jobs = [job for group in groups for job in group]
    if args.dry_run:
        for group in groups:
            estimate = sum(job.guess_s() for job in group)
            print(f"group (~{estimate} s on an H100):")
            for job in group:
                print("   ", " ".join(command(job, args)))
        return
    done: dict[str, list[tuple[float, float]]] = {"jax": [], "torch": []}  # (guess, measured)

    def estimate(job: Job) -> float:
        """The job's guess, times measured / guessed over the side's finished jobs."""
        if quick:
            return 0.0
        pairs = done[job.side]
        scale = sum(m for _, m in pairs) / sum(g for g, _ in pairs) if pairs else 1.0
        return job.guess_s() * scale

    results: dict[str, dict] = {}
    start = time.monotonic()
    print(f"{len(jobs)} jobs, budget {args.budget_s:.0f} s", flush=True)
    for group in groups:
        elapsed = time.monotonic() - start
        needed = sum(estimate(job) for job in group)
        if elapsed + needed > args.budget_s:
            for job in group:
                results[job.key] = {"skipped": f"budget ({elapsed:.0f} s + ~{needed:.0f} s)"}
                print(f"[{elapsed:5.0f} s] {job.key}: skipped (~{needed:.0f} s)", flush=True)
            continue
        for job in group:
            elapsed = time.monotonic() - start
            log = args.workdir / "logs" / f"{job.key.replace('/', '_')}.log"
            r = run_job(job, command(job, args), args.budget_s + args.grace_s - elapsed, log)
            results[job.key] = r
            if "error" not in r:
                done[job.side].append((job.guess_s(), r["wall_s"]))
            summary = r.get("error") or (
                f"train {fmt(value(r, 'train.img_s'))} img/s"
                + (f", forward {fmt(value(r, 'forward.img_s'))} img/s" if job.forward else "")
                + f", peak {fmt(r.get('peak_gib'), 1)} GiB"
            )
            print(f"[{elapsed:5.0f} s] {job.key}: {summary} ({r['wall_s']:.0f} s)", flush=True)
            if "profile" in r:
                print(r["profile"]["text"], flush=True)
    args.elapsed = time.monotonic() - start
    text = tables(results, jobs, args)
    profiles = [r["profile"]["text"] for r in results.values() if "profile" in r]
    print("\n" + text)
    (args.workdir / "results.md").write_text("\n\n".join([text, *profiles]) + "\n")
    (args.workdir / "raw.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.workdir / 'results.md'}, raw.json, logs/", flush=True)


if __name__ == "__main__":
    main()

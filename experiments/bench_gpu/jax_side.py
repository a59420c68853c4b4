"""flowjax side of the GPU benchmark: one model and dtype per process; prints one JSON line.

    python -m experiments.bench_gpu.jax_side --model lipman --dtype bf16 --batch 256 \
        [--forward-batch 1024] [--profile DIR] [--quick]

Training step: `cfm_loss` (CondOT path, uniform t, x0 ~ N(0, I)), its gradient and an
`optax.adam(2e-4)` update in one `jax.jit` with parameters and optimizer state donated;
float32 parameters, the UNet's compute dtype bf16 (`dtype=`) or float32. The data batch is a
fixed N(0, I) array made on the device. Compilation is timed apart (`lower().compile()`), then
warm-up steps, then the timed steps, closed by `block_until_ready`. Peak memory is the device
allocator's `peak_bytes_in_use` (the process only ever runs this config). Forward: chained
Euler steps `x + dt * v(x, t)` of the same network without dropout, jitted.

`--profile DIR` traces a few more steps with `jax.profiler` into DIR and breaks the device time
down by the step's HLO ops (phase: forward / backward / optimizer; kind: conv, matmul,
attention, other fusions).
"""

import argparse
import functools
import json
import re
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from experiments.bench_gpu.run import LR, PARAMS, model_config
from experiments.unet_parity.run import unet_kwargs
from flowjax import losses, models, paths

PROFILE_STEPS = 3


def build(name: str, dtype: str, quick: bool) -> tuple[models.Functional, nnx.State, bool, int]:
    """Our UNet for model `name`: the pure `v`, its float32 parameters, dropout?, size."""
    config = model_config(name, quick)
    compute = jnp.bfloat16 if dtype == "bf16" else None
    model = models.UNet(**unet_kwargs(config), dtype=compute, rngs=nnx.Rngs(0))
    v, params = models.functional(model)
    return v, params, config["dropout"] > 0, models.parameter_count(model)


def make_step(v: models.Functional, dropout: bool) -> tuple[Any, optax.GradientTransformation]:
    """The jitted training step `(params, opt_state, x1, key) -> (params, opt_state, loss)`."""
    path = paths.AffinePath(paths.CondOT())
    optimizer = optax.adam(LR)

    def step(params: nnx.State, opt_state: Any, x1: jax.Array, key: jax.Array) -> tuple:
        k_loss, k_drop = jax.random.split(key)
        net = (lambda p, x, t: v(p, x, t, key=k_drop)) if dropout else v
        with jax.named_scope("loss_grad"):
            loss, grads = jax.value_and_grad(
                lambda p: losses.cfm_loss(net, p, k_loss, x1, path=path)[0]
            )(params)
        with jax.named_scope("optimizer"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1)), optimizer


def flop_count(lowered: Any) -> float | None:
    """XLA's FLOP count of the unoptimized program (before convs become library calls)."""
    try:
        cost = lowered.cost_analysis()
    except Exception:  # not every backend / version has it
        return None
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost["flops"]) if cost and cost.get("flops") else None


def train(
    args: argparse.Namespace, v: models.Functional, params: nnx.State, dropout: bool
) -> tuple[dict[str, Any], nnx.State]:
    """Time the training step; its measurements and the parameters it leaves."""
    step, optimizer = make_step(v, dropout)
    opt_state = optimizer.init(params)
    h, w, c = unet_kwargs(model_config(args.model, args.quick))["image_shape"]
    x1 = jax.random.normal(jax.random.key(1), (args.batch, h, w, c))
    n = args.warmup + args.steps + (PROFILE_STEPS if args.profile else 0)
    keys = list(jax.random.split(jax.random.key(2), n))
    start = time.perf_counter()
    lowered = step.lower(params, opt_state, x1, keys[0])
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    for key in keys[: args.warmup]:
        params, opt_state, loss = compiled(params, opt_state, x1, key)
    jax.block_until_ready((params, opt_state))
    start = time.perf_counter()
    for key in keys[args.warmup : args.warmup + args.steps]:
        params, opt_state, loss = compiled(params, opt_state, x1, key)
    jax.block_until_ready((params, opt_state, loss))
    seconds = time.perf_counter() - start
    out = {
        "batch": args.batch,
        "flops_per_step": flop_count(lowered),
        "peak_gib": peak_gib(),
        "train": {
            "img_s": args.batch * args.steps / seconds,
            "step_ms": 1e3 * seconds / args.steps,
            "compile_s": compile_s,
            "loss": float(loss),
        },
    }
    if args.profile:
        try:
            args.profile.mkdir(parents=True, exist_ok=True)
            with jax.profiler.trace(str(args.profile)):
                for key in keys[-PROFILE_STEPS:]:
                    params, opt_state, loss = compiled(params, opt_state, x1, key)
                jax.block_until_ready((params, opt_state, loss))
            out["profile"] = breakdown(
                args.profile, compiled.as_text(), PROFILE_STEPS, out["train"]["step_ms"]
            )
        except Exception as e:  # the timings stand without it
            out["profile"] = {"text": f"profile failed: {e!r}"[:1000]}
    return out, params


def peak_gib() -> float | None:
    """The device allocator's peak since the process started (None where not reported)."""
    stats = jax.devices()[0].memory_stats()  # None on CPU
    return stats["peak_bytes_in_use"] / 2**30 if stats and "peak_bytes_in_use" in stats else None


def forward(args: argparse.Namespace, v: models.Functional, params: nnx.State) -> dict[str, Any]:
    """Chained Euler steps `x <- x + dt v(x, t)`, one jitted network call each (no dropout)."""
    dt = 1.0 / (args.forward_steps + 2)
    euler = jax.jit(lambda p, x, t: x + dt * v(p, x, t))
    h, w, c = unet_kwargs(model_config(args.model, args.quick))["image_shape"]
    x = jax.random.normal(jax.random.key(3), (args.forward_batch, h, w, c))
    ts = [jnp.float32(i * dt) for i in range(args.forward_steps + 2)]
    start = time.perf_counter()
    euler = euler.lower(params, x, ts[0]).compile()
    compile_s = time.perf_counter() - start
    for t in ts[:2]:
        x = euler(params, x, t)
    x.block_until_ready()
    start = time.perf_counter()
    for t in ts[2:]:
        x = euler(params, x, t)
    x.block_until_ready()
    seconds = time.perf_counter() - start
    return {
        "batch": args.forward_batch,
        "img_s": args.forward_batch * args.forward_steps / seconds,
        "call_ms": 1e3 * seconds / args.forward_steps,
        "compile_s": compile_s,
        "finite": bool(jnp.isfinite(x).all()),
    }


HLO_LINE = re.compile(r"^\s*(?:ROOT\s+)?%?(?P<name>[^\s=]+)\s*=\s*.*?\s(?P<op>[a-z][a-z0-9\-]*)\(")
HLO_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?(?P<name>[^\s(]+)\s*\(")  # at column 0


def hlo_ops(hlo_text: str) -> dict[str, tuple[str, str, str]]:
    """Instruction name -> (opcodes, custom-call targets, op_name metadata) of a compiled HLO
    module. A fusion or call also stands for the instructions of the computations it calls
    (their opcodes and targets joined; their root's op_name when it has none)."""
    lines: list[tuple[str, str, str]] = []  # (computation, instruction name, line)
    computation = ""
    for line in hlo_text.splitlines():
        if m := HLO_COMPUTATION.match(line):
            computation = m["name"]
        elif m := HLO_LINE.match(line):
            lines.append((computation, m["name"], line))
    members: dict[str, list[str]] = defaultdict(list)
    roots: dict[str, str] = {}
    raw: dict[str, tuple[str, str, str, list[str]]] = {}
    for computation, name, line in lines:
        members[computation].append(name)
        if line.lstrip().startswith("ROOT"):
            roots[computation] = name
    for _, name, line in lines:
        target = re.search(r'custom_call_target="([^"]*)"', line)
        op_name = re.search(r'op_name="([^"]*)"', line)
        calls = [c for c in re.findall(r"%([\w.\-]+)", line.split("=", 1)[1]) if c in members]
        raw[name] = (
            HLO_LINE.match(line)["op"],
            target[1] if target else "",
            op_name[1] if op_name else "",
            calls,
        )

    @functools.cache
    def expand(name: str, depth: int = 0) -> tuple[frozenset, frozenset, str]:
        op, target, op_name, calls = raw[name]
        opcodes, targets = {op}, {target} - {""}
        for called in calls if depth < 4 else []:
            for inner in members[called]:
                o, t, _ = expand(inner, depth + 1)
                opcodes |= o
                targets |= t
            if not op_name and called in roots:
                op_name = expand(roots[called], depth + 1)[2]
            inner_names = (expand(inner, depth + 1)[2] for inner in members[called])
            op_name = op_name or next((n for n in inner_names if n), "")
        return frozenset(opcodes), frozenset(targets), op_name

    out = {}
    for name in raw:
        opcodes, targets, op_name = expand(name)
        out[name] = (" ".join(sorted(opcodes)), " ".join(sorted(targets)), op_name)
    return out


def classify(opcodes: str, targets: str, op_name: str) -> tuple[str, str]:
    """(phase, kind) of one HLO instruction of the training step (`hlo_ops`' description)."""
    phase = (
        "optimizer"
        if "/optimizer/" in op_name
        else "backward"
        if "transpose(" in op_name
        else "forward"
        if op_name
        else "other"
    )
    ops, low = set(opcodes.split()), f"{targets} {op_name}".lower()
    if "dot_product_attention" in low or any(s in low for s in ("fmha", "sdpa", "flash")):
        kind = "attention"
    elif "convolution" in ops or "conv" in targets.lower() or "conv_general_dilated" in op_name:
        kind = "conv"
    elif "dot" in ops or any(s in low for s in ("gemm", "cublas", "dot_general")):
        kind = "matmul"
    elif ops <= {"copy", "transpose", "copy-start", "copy-done", "parameter", "bitcast"}:
        kind = "copy/transpose"
    else:
        kind = "other fusions (norms, activations, elementwise)"
    return phase, kind


def hlo_op_of(event: str, stats: dict[str, Any], ops: dict[str, Any]) -> str | None:
    """The HLO instruction an event ran: its `hlo_op` stat, the `hlo_op=` of its kernel
    annotation (GPU), or its own name when that is an instruction of the step."""
    if "hlo_op" in stats:
        return str(stats["hlo_op"])
    if m := re.search(r"hlo_op=([^,#\s]+)", str(stats.get("annotation", ""))):
        return m[1]
    return event if event in ops else None


def breakdown(trace_dir: Path, hlo_text: str, steps: int, step_ms: float) -> dict[str, Any]:
    """Device time per (phase, kind) and the top ops, from the newest trace under `trace_dir`
    (`step_ms`: the measured step time, to show how much of it the events cover)."""
    files = sorted(trace_dir.rglob("*.xplane.pb"), key=lambda f: f.stat().st_mtime)
    if not files:
        return {"trace": str(trace_dir), "text": f"profile: no .xplane.pb under {trace_dir}"}
    data = jax.profiler.ProfileData.from_file(str(files[-1]))
    planes = [p for p in data.planes if p.name.startswith("/device:GPU")]
    device = bool(planes)
    ops = hlo_ops(hlo_text)
    per_op: dict[str, float] = defaultdict(float)
    for plane in planes or data.planes:
        lines = list(plane.lines)
        xla_ops = [ln for ln in lines if ln.name == "XLA Ops"] if device else []
        streams = [ln for ln in lines if ln.name.startswith("Stream")]
        for line in xla_ops or streams or lines:  # one view of the device time, not two
            for event in line.events:
                with warnings.catch_warnings():  # "event_stats has no __module__" (jax 0.12)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    stats = dict(event.stats)
                name = hlo_op_of(event.name, stats, ops)
                if name is not None and (device or name in ops):
                    per_op[name] += event.duration_ns / 1e6 / steps
    total = sum(per_op.values())
    groups: dict[tuple[str, str], float] = defaultdict(float)
    for name, ms in per_op.items():
        groups[classify(*ops.get(name, ("?", "", "")))] += ms
    rows = sorted(groups.items(), key=lambda kv: -kv[1])
    text = [
        f"profile ({'GPU kernels' if device else 'host-side events: no GPU plane in the trace'}"
        f"; {steps} steps, ms per step; trace {files[-1]}):",
        "",
        "| phase | kind | ms/step | share |",
        "|---|---|---|---|",
        *(f"| {p} | {k} | {ms:.2f} | {ms / total:.0%} |" for (p, k), ms in rows if total),
        f"| all | | {total:.2f} | {total / step_ms:.0%} of the timed {step_ms:.2f} ms step |",
        "",
        "top ops (ms/step): "
        + "; ".join(
            f"{name} {'/'.join(classify(*ops.get(name, ('', '', ''))))} {ms:.2f} "
            f"({'/'.join(ops.get(name, ('', '', ''))[2].split('/')[-2:])[-50:] or '-'})"
            for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:10]
        ),
    ]
    return {
        "trace": str(files[-1]),
        "ms_per_step": total,
        "groups": {f"{p}/{k}": ms for (p, k), ms in rows},
        "text": "\n".join(text),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--dtype", choices=("bf16", "fp32"), required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--forward-batch", type=int, help="also time the forward at this batch")
    p.add_argument("--forward-steps", type=int, default=10)
    p.add_argument("--profile", type=Path, help="trace a few more steps into this folder")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-tf32", action="store_true", help="jax_default_matmul_precision=highest")
    args = p.parse_args()
    if not args.quick and jax.default_backend() != "gpu":
        sys.exit(f"no GPU (JAX backend {jax.default_backend()!r}); use --quick for a CPU run")
    if args.no_tf32:
        jax.config.update("jax_default_matmul_precision", "highest")
    v, params, dropout, n_params = build(args.model, args.dtype, args.quick)
    if not args.quick and n_params != PARAMS[args.model]:
        print(f"warning: {n_params:,} parameters, expected {PARAMS[args.model]:,}", file=sys.stderr)
    measured, params = train(args, v, params, dropout)
    out = {
        "side": "flowjax",
        "jax": jax.__version__,
        "flax": flax.__version__,
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()})",
        "precision": (
            "jax_default_matmul_precision=highest (full f32)"
            if args.no_tf32
            else "jax_default_matmul_precision default (TF32 for f32 dots/convs on GPU)"
        ),
        "params": n_params,
        **measured,
    }
    if args.forward_batch:
        try:
            out["forward"] = forward(args, v, params)
        except Exception as e:  # e.g. out of memory: keep the training numbers
            out["forward"] = {"error": repr(e)[:300]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

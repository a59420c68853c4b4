"""PyTorch side of the GPU benchmark: TorchCFM's `UNetModelWrapper`; prints one JSON line.

    python -m experiments.bench_gpu.torch_side --model lipman --dtype bf16 --batch 256 \
        [--compile] [--channels-last] [--fused-adam] [--forward-batch 1024] [--quick]

Run from the repository root with a Python that has torch and torchcfm (and POT, which
torchcfm imports; without it an empty stand-in module is used, as plain CFM never calls it).
Training step as in TorchCFM's CIFAR-10 recipe, without its gradient clipping, EMA and
warm-up schedule (ours has none either): `ConditionalFlowMatcher(sigma=0)` (CondOT path,
uniform t), MSE to the conditional velocity, `backward`, `torch.optim.Adam(lr=2e-4)`; bf16 is
`torch.autocast(bfloat16)` around the network (float32 parameters and Adam state, loss in
float32). `--compile`: `torch.compile(model)` in its default mode; the first step's time is
reported as the compile time. After the first step, `--warmup` more untimed steps (as for
ours), then the timed ones between CUDA events. cuDNN autotuning (`cudnn.benchmark`) is on;
TF32 is on for matmuls and convolutions unless `--no-tf32`. Peak memory:
`torch.cuda.max_memory_allocated` after training. Without a GPU (`--quick` only) it runs on
the CPU.
"""

import argparse
import json
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch

try:
    import ot

    POT = ot.__version__
except ImportError:  # torchcfm imports POT at import time; the sigma=0 CFM path never calls it
    sys.modules["ot"] = types.ModuleType("ot")
    POT = "not installed (an empty stand-in module; unused)"
import torchcfm
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
from torchcfm.models.unet.unet import UNetModelWrapper

from experiments.bench_gpu.run import LR, PARAMS, model_config


def set_precision(tf32: bool) -> str:
    """TF32 for float32 matmuls and convolutions (on, or full float32); the settings read back.

    PyTorch's defaults are matmuls in full float32 and convolutions in TF32; JAX's default on
    GPU is TF32 for both, so `tf32=True` matches the two frameworks. The legacy flags are set
    on purpose: torch >= 2.9's `fp32_precision` settings make readers of the legacy ones (as
    in torch.compile) raise."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    return (
        f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32} "
        f"(float32_matmul_precision={torch.get_float32_matmul_precision()}), "
        f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, cudnn.benchmark=True"
    )


class Timer:
    """Wall time of a region of device work: CUDA events on a GPU, else a host clock."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> "Timer":
        if self.cuda:
            self.start, self.end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            torch.cuda.synchronize()
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def build(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, int]:
    torch.manual_seed(0)
    config = model_config(args.model, args.quick)
    model = UNetModelWrapper(**config).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, sum(p.numel() for p in model.parameters())


def images(args: argparse.Namespace, batch: int, device: torch.device) -> torch.Tensor:
    c, h, w = model_config(args.model, args.quick)["dim"]
    x = torch.randn(batch, c, h, w, device=device)
    return x.to(memory_format=torch.channels_last) if args.channels_last else x


def train(args: argparse.Namespace, model: torch.nn.Module, device: torch.device) -> dict[str, Any]:
    """Time the training step; the compile (first step) time when compiled."""
    model.train()
    net: Callable = torch.compile(model) if args.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True if args.fused_adam else None)
    matcher = ConditionalFlowMatcher(sigma=0.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    x1 = images(args, args.batch, device)

    def step() -> torch.Tensor:
        x0 = torch.randn_like(x1)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        with autocast:
            vt = net(t, xt)
        loss = torch.mean((vt.float() - ut) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    with Timer(device) as first:
        loss = step()
    for _ in range(args.warmup):
        loss = step()
    with Timer(device) as timed:
        for _ in range(args.steps):
            loss = step()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {
        "peak_gib": peak,
        "train": {
            "img_s": args.batch * args.steps / timed.seconds,
            "step_ms": 1e3 * timed.seconds / args.steps,
            "compile_s": first.seconds if args.compile else None,
            "first_step_s": first.seconds,
            "loss": loss.item(),
        },
        "adam": "fused" if args.fused_adam else "default (foreach on CUDA)",
    }


@torch.inference_mode()
def forward(
    args: argparse.Namespace, model: torch.nn.Module, device: torch.device
) -> dict[str, Any]:
    """Chained Euler steps `x <- x + dt v(x, t)`, eager, no dropout (eval mode)."""
    model.eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    dt = 1.0 / (args.forward_steps + 2)
    x = images(args, args.forward_batch, device)
    n = args.forward_steps + 2
    ts = [torch.full((args.forward_batch,), i * dt, device=device) for i in range(n)]

    def euler(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with autocast:
            return x + dt * model(t, x).float()

    for t in ts[:2]:
        x = euler(x, t)
    with Timer(device) as timed:
        for t in ts[2:]:
            x = euler(x, t)
    return {
        "batch": args.forward_batch,
        "img_s": args.forward_batch * args.forward_steps / timed.seconds,
        "call_ms": 1e3 * timed.seconds / args.forward_steps,
        "finite": bool(torch.isfinite(x).all()),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--dtype", choices=("bf16", "fp32"), required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    p.add_argument("--forward-batch", type=int, help="also time the forward at this batch")
    p.add_argument("--forward-steps", type=int, default=10)
    p.add_argument("--compile", action="store_true", help="torch.compile(model), default mode")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fused-adam", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-tf32", action="store_true")
    args = p.parse_args()
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.quick:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # a smoke test; OpenMP spinning hurts on a shared CPU
    else:
        sys.exit("no CUDA device; use --quick for a CPU run")
    precision = set_precision(not args.no_tf32)
    model, n_params = build(args, device)
    if not args.quick and n_params != PARAMS[args.model]:
        print(f"warning: {n_params:,} parameters, expected {PARAMS[args.model]:,}", file=sys.stderr)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    out = {
        "side": "torch",
        "torch": torch.__version__,
        "torchcfm": torchcfm.__version__,
        "pot": POT,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "device": name,
        "precision": precision,
        "compile": args.compile,
        "channels_last": args.channels_last,
        "params": n_params,
        "batch": args.batch,
        **train(args, model, device),
    }
    if args.forward_batch:
        try:
            out["forward"] = forward(args, model, device)
        except Exception as e:  # e.g. out of memory: keep the training numbers
            out["forward"] = {"error": repr(e)[:300]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

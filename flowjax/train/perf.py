"""How fast the training step runs against what the devices could do, and not compiling twice.

`peak_tflops(device, dtype)` is the device's published dense peak (TPU and GPU chips by
`device_kind`; a CPU's is measured by a short matmul probe); with the FLOPs of one step
(`step_flops`: XLA's cost analysis of the lowered program, per device) and the measured time,
the loop logs `perf/tflops_per_device` and `perf/mfu` (model FLOP utilization). The
persistent compilation cache (`use_compilation_cache`) lets a resumed or relaunched run load
its compiled programs instead of compiling them again.
"""

import functools
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

# Published dense bf16 peaks, TFLOP/s per chip (Cloud TPU system architecture pages; NVIDIA
# data sheets, dense, without sparsity); keys are prefixes of `jax.Device.device_kind`.
PEAK_TFLOPS = {
    "TPU v4": 275.0,
    "TPU v5 lite": 197.0,  # v5e
    "TPU v5p": 459.0,
    "TPU v5": 459.0,
    "TPU v6 lite": 918.0,  # v6e (Trillium)
    "NVIDIA H100": 989.0,
    "NVIDIA H200": 989.0,
    "NVIDIA A100": 312.0,
}


@functools.cache
def _cpu_probe_tflops(dtype: str, n: int = 1024, repeats: int = 8) -> float:
    """Measured matmul throughput of this CPU in `dtype` (TFLOP/s; the best of a few runs)."""
    a = jnp.ones((n, n), dtype)
    matmul = jax.jit(lambda a: a @ a)
    jax.block_until_ready(matmul(a))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(matmul(a))
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e12


def peak_tflops(device: jax.Device, dtype: Any = jnp.bfloat16) -> float | None:
    """The device's peak TFLOP/s: published for known chips, measured for a CPU, else None."""
    if device.platform == "cpu":
        return _cpu_probe_tflops(jnp.dtype(dtype).name)
    kind = getattr(device, "device_kind", "")
    return next((v for k, v in PEAK_TFLOPS.items() if kind.startswith(k)), None)


def step_flops(lowered: Any, devices: int, accumulate: int = 1) -> float:
    """FLOPs of one training step per device: XLA's cost analysis of the lowered program,
    before SPMD partitioning (whose collective loops, e.g. FSDP's windowed einsums, the
    compiled program's analysis counts once), over the `devices`. A loop's body counts once,
    so a call of K scanned steps counts one step, and gradient accumulation's loop (one
    micro-batch's forward and backward) is scaled by `accumulate` (the optimizer update with
    it: a slight overcount)."""
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost  # older jax: one per module
    return float(cost.get("flops", 0.0)) * accumulate / devices


def use_compilation_cache(setting: str, workdir: Path) -> Path | None:
    """Point JAX's persistent compilation cache at `<workdir>/compilation_cache` ("workdir"),
    at a directory, or nowhere ("off"; "" too, which the config's validation then refuses);
    programs of every size are cached. The setting is JAX's, for the whole process."""
    if setting in ("off", ""):
        return None
    path = workdir / "compilation_cache" if setting == "workdir" else Path(setting)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path

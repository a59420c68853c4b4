"""Wall-clock timing, the host's name and the benchmark sides' subprocesses, shared by the
benchmarks (importable without JAX or PyTorch)."""

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(
    fn: Callable[[], Any], repeats: int, wait: Callable[[Any], Any] = lambda out: out
) -> list[float]:
    """Seconds of each of `repeats` calls of `fn`; `wait(out)` blocks until the result is
    computed (e.g. `jax.block_until_ready`; nothing for eager CPU PyTorch)."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        wait(fn())
        out.append(time.perf_counter() - start)
    return out


def cpu_model() -> str:
    """The host's CPU model name (from /proc/cpuinfo; the benchmarks name it beside ratios)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def run_side(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """The JSON line `cmd` prints last, run with `env` added to this process's environment."""
    print("$", *(f"{k}={v}" for k, v in (env or {}).items()), " ".join(cmd), flush=True)
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])

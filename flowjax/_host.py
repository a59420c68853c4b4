"""XLA:CPU settings chosen by the host's CPU, applied to `XLA_FLAGS` when flowjax is imported.

XLA reads `XLA_FLAGS` once, when JAX starts its first backend: import flowjax before running
any JAX computation for these to take effect. A flag already in `XLA_FLAGS` (by name) is the
user's choice and is kept; `FLOWJAX_CPU_FLAGS=0` turns the choice off.
"""

import os
from collections.abc import MutableMapping
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str) -> list[str]:
    """The XLA:CPU flags for a host whose `/proc/cpuinfo` reads `cpuinfo`.

    On Intel CPUs with AVX-512, 512-bit vectors (XLA:CPU prefers 256 bits): the elementwise
    loops of sampling and of small networks' steps run 5-10% faster there, matmul-bound steps
    are unchanged (`experiments/bench_cpu`). Other hosts: none.
    """
    words = set(cpuinfo.split())
    return ["--xla_cpu_prefer_vector_width=512"] if {"GenuineIntel", "avx512f"} <= words else []


def apply_cpu_flags(env: MutableMapping[str, str] = os.environ, cpuinfo: Path = CPUINFO) -> None:
    """Append `cpu_flags` to `env["XLA_FLAGS"]`, except those the user has set."""
    if env.get("FLOWJAX_CPU_FLAGS") == "0" or not cpuinfo.exists():
        return
    current = env.get("XLA_FLAGS", "")
    named = {flag.split("=")[0] for flag in current.split()}
    extra = [f for f in cpu_flags(cpuinfo.read_text()) if f.split("=")[0] not in named]
    if extra:
        env["XLA_FLAGS"] = " ".join([current, *extra]).strip()

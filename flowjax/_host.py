"""Host settings for XLA:CPU: flags chosen by the host's CPU, applied to `XLA_FLAGS` when
flowjax is imported, and glibc's heap kept between calls (`keep_heap`), which the training
system turns on when it runs on CPU devices.

XLA reads `XLA_FLAGS` once, when JAX starts its first backend: import flowjax before running
any JAX computation for these to take effect. A flag already in `XLA_FLAGS` (by name) is the
user's choice and is kept; `FLOWJAX_CPU_FLAGS=0` turns both choices off.
"""

import ctypes
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


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_heap(env: MutableMapping[str, str] = os.environ) -> bool:
    """Keep freed memory in glibc's heap for the next allocation: no block is mapped on its
    own (`M_MMAP_MAX` 0) and the heap is never trimmed. Returns whether it was applied
    (glibc only; not with `FLOWJAX_CPU_FLAGS=0`).

    XLA:CPU allocates each call's temporaries as one block; past glibc's mapping threshold
    (32 MiB at most) the block is mapped and unmapped on every call, so every step faults in
    and zeroes fresh pages: the batch-4,096 discrete checkerboard step goes from 31 to 38-51
    steps/s with this setting on a 2-core AMD EPYC (`experiments/bench_discrete`).
    Memory the process frees stays with it for reuse, so its resident size stays at its peak:
    for a CPU run, not for a host feeding accelerators. Process-wide, from the next allocation.
    """
    if env.get("FLOWJAX_CPU_FLAGS") == "0":
        return False
    libc = ctypes.CDLL(None)  # the C library this process runs on
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return False  # not glibc (musl, macOS): its allocator has no such setting
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))

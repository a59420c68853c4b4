"""Wall-clock timing shared by the benchmarks (importable without JAX or PyTorch)."""

import time
from collections.abc import Callable
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

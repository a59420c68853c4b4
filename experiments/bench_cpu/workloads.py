"""The benchmark's workloads, shared by `jax_side.py` and `torch_side.py` (no dependencies)."""

# (batch, timed steps): the 2-D checkerboard training step.
TRAIN = ((4096, 30), (256, 300))
# (method, number of points): Euler takes 100 steps; dopri5 runs at rtol = atol = 1e-5.
# Large batches measure kernels; small ones measure per-step overhead.
SAMPLE = (("euler", 50_000), ("dopri5", 50_000), ("euler", 1_000), ("dopri5", 1_000))
FUSED_STEPS = 10  # steps per jit call in the `lax.scan` variant (batch 256)
# glibc's heap kept between calls (read at process start): XLA:CPU allocates a step's
# temporaries in one block per call, from a worker thread's arena, which glibc maps and unmaps
# each time when it is large (128 MiB at batch 4096: 32k page faults a step)
HEAP_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}


def train(quick: bool) -> list[tuple[int, int]]:
    return [(batch, max(steps // 6, 5) if quick else steps) for batch, steps in TRAIN]


def sample(quick: bool) -> list[tuple[str, int]]:
    return [(method, n // 10 if quick else n) for method, n in SAMPLE]

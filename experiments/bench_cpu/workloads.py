"""The benchmark's workloads, shared by `jax_side.py` and `torch_side.py` (no dependencies)."""

# (batch, timed steps): the 2-D checkerboard training step.
TRAIN = ((4096, 30), (256, 300))
# (method, number of points): Euler takes 100 steps; dopri5 runs at rtol = atol = 1e-5.
# Large batches measure kernels; small ones measure per-step overhead.
SAMPLE = (("euler", 50_000), ("dopri5", 50_000), ("euler", 1_000), ("dopri5", 1_000))
FUSED_STEPS = 10  # steps per jit call in the `lax.scan` variant (batch 256)
# flowjax without its host settings (XLA:CPU flags, `flowjax.keep_heap`): the one-call-per-step
# training rows again, to show what they are worth on this host
PLAIN_ENV = {"FLOWJAX_CPU_FLAGS": "0"}


def train(quick: bool) -> list[tuple[int, int]]:
    return [(batch, max(steps // 6, 5) if quick else steps) for batch, steps in TRAIN]


def sample(quick: bool) -> list[tuple[str, int]]:
    return [(method, n // 10 if quick else n) for method, n in SAMPLE]

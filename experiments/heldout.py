"""Training runs and held-out scoring shared by the experiments: a run trained to its last
step, a finished run's best checkpoint, and a trained family's evaluators (exact NLL, ELBO,
...) averaged over every record of a split, in chunks, with a progress bar."""

import time
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from flowjax.contracts import SamplerSettings
from flowjax.train import loop
from flowjax.train.config import TrainConfig

CHUNK = 256  # records per evaluator call


def train_to_end(config: TrainConfig, workdir: Any) -> float:
    """Seconds to train (or resume) the run in `workdir` to `config.steps`; exits with a clear
    line if it stopped early (a guard tripped, a signal)."""
    start = time.perf_counter()
    if int(loop.train(config, workdir).step) < config.steps:
        raise SystemExit("training stopped before its last step; rerun to resume it")
    return time.perf_counter() - start


def mean_scores(
    run: loop.Run, params: Any, x: np.ndarray, *, seed: int = 0, desc: str = "held out"
) -> dict[str, float]:
    """Every evaluator of `run.family` on the records `x [N, *event]`, averaged over the N
    records (each chunk weighted by its size)."""
    evaluators = run.family.evaluators(SamplerSettings(""))

    @jax.jit
    def score(p: Any, key: jax.Array, x1: jax.Array) -> dict[str, jax.Array]:
        out = {}
        for evaluate in evaluators.values():
            out.update(evaluate(run.network, p, key, {"x1": x1}))
        return out

    totals: dict[str, float] = {}
    for start in tqdm(range(0, len(x), CHUNK), desc=desc, unit="chunk"):
        chunk = x[start : start + CHUNK]
        for name, value in score(params, jax.random.key(seed + start), chunk).items():
            totals[name] = totals.get(name, 0.0) + len(chunk) * float(value)
    return {name: total / len(x) for name, total in totals.items()}


def best_checkpoint(config: TrainConfig, workdir: Any) -> tuple[loop.Run, Any, int]:
    """The run in `workdir` (read-only), the EMA parameters of its best checkpoint (by the
    config's `checkpoint.best_metric`) and that checkpoint's step; close `run.checkpointer`."""
    run = loop.setup(config, workdir, read_only=True)
    best = run.checkpointer.best_step()
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), run.state
    )
    _, state, _, _ = run.checkpointer.restore(target, step=best)
    return run, state.ema_params, best

"""Training runs and held-out scoring shared by the experiments: a run trained to its last
step, a finished run's best checkpoint, a trained family's evaluators (exact NLL, ELBO, ...)
averaged over every record of a split, in chunks, with a progress bar, and a point-data run
from training to test NLL and samples."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from flowjax.contracts import SamplerSettings
from flowjax.models import parameter_count
from flowjax.train import evaluation, inputs, loop
from flowjax.train.config import TrainConfig, apply_overrides, load_config

CHUNK = 256  # records per evaluator call


def train_to_end(config: TrainConfig, workdir: Any) -> float:
    """Train (or resume) the run in `workdir` to `config.steps` and return its training seconds
    (`train_seconds`); exits with a clear line if it stopped early (a guard tripped, a
    signal)."""
    if not config.log.every:
        raise ValueError("train_to_end times a run by its logged windows: set log.every > 0")
    if int(loop.train(config, workdir).step) < config.steps:
        raise SystemExit("training stopped before its last step; rerun to resume it")
    return train_seconds(workdir)


def train_seconds(workdir: Any) -> float:
    """Wall-clock seconds of the run's training steps, summed over the logged windows of
    `metrics.jsonl` (each `steps / steps_per_s`, evaluation and checkpoints included) and so
    over every invocation that trained it, whatever ended them (a step logged twice counts
    once, as its last row); compilation and setup excluded."""
    rate = {}
    for line in (Path(workdir) / "metrics.jsonl").open():
        row = json.loads(line)
        if "steps_per_s" in row:
            rate[row["step"]] = row["steps_per_s"]
    steps = sorted(rate)
    return sum((b - a) / rate[b] for a, b in zip([0, *steps[:-1]], steps, strict=True))


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


def point_run(
    config_path: Path,
    overrides: list[str],
    args: argparse.Namespace,
    work: Path,
    desc: str,
    extra: Callable[[loop.Run, Any], dict] | None = None,
) -> dict:
    """Train `config_path` with `overrides` and `args.seed` / `args.steps` / `args.every`
    (validation and checkpoints) in `work`, then score the best checkpoint's EMA parameters on
    the whole test split of its point data and draw `log.num_samples` samples: `{"test_nll"
    (and the evaluators' other scores as "test_<name>"), "test" (points), "samples",
    "best_step", "validation" [(step, nll)], "parameters", "train_seconds"}` and what
    `extra(run, params)` adds."""
    overrides = [
        *overrides,
        f"--config.data.seed={args.seed}",
        f"--config.seed={args.seed}",
        f"--config.steps={args.steps}",
        f"--config.log.eval_every={args.every}",
        f"--config.checkpoint.every={args.every}",
    ]
    config = apply_overrides(load_config(config_path), overrides)
    seconds = train_to_end(config, work)
    run, params, best = best_checkpoint(config, work)
    test = inputs.point_source(config, "test").points
    scores = mean_scores(run, params, test, desc=f"{desc} test")
    sampler = evaluation.make_sampler(
        run.family, run.network, config, run.mesh, run.data, config.log.num_samples
    )
    samples, _ = evaluation.draw_samples(sampler, params, args.seed)
    more = {} if extra is None else extra(run, params)
    run.checkpointer.close()
    rows = [json.loads(line) for line in (work / "metrics.jsonl").open()]
    return {
        **more,
        **{f"test_{name}": value for name, value in scores.items()},
        "test": test,
        "samples": samples,
        "best_step": best,
        "validation": [(r["step"], r["eval/nll"]) for r in rows if "eval/nll" in r],
        "parameters": parameter_count(params),
        "train_seconds": seconds,
    }

"""Step overhead of the training machinery: toy 2-D steps/s through `flowjax train`'s loop
(progress bar, metric windows, periodic checkpoints, preemption checks) against a bare loop of
the same jitted step on the same device-generated batches.

    python -m experiments.bench_train.overhead [--steps 3000] [--batch 256 4096]
"""

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax

from flowjax.contracts import DataSpec
from flowjax.data.generated import GeneratedBatches
from flowjax.train import build
from flowjax.train.config import load_config
from flowjax.train.loop import train
from flowjax.train.sharding import batch_sharding, make_mesh, state_shardings
from flowjax.train.state import init_state
from flowjax.train.step import make_train_step

CONFIG = Path(__file__).parents[2] / "flowjax" / "configs" / "toy2d.py"


def bare_rate(config, steps: int) -> float:  # noqa: ANN001
    mesh = make_mesh(config.mesh)
    batches = GeneratedBatches(
        config.data.distribution, config.data.batch_size, 0, batch_sharding(mesh, 2)
    )
    family = build.family(config, DataSpec(batches.event_shape), mesh)
    v, params = build.network(config, family.network)
    optimizer = build.optimizer(config.optim, config.steps)
    make = lambda p: init_state(p, optimizer, 0)  # noqa: E731
    shardings = state_shardings(mesh, jax.eval_shape(make, params), config.mesh)
    state = jax.jit(make, out_shardings=shardings)(params)
    step = jax.jit(make_train_step(config, family, v, optimizer), donate_argnums=0)
    for _ in range(20):  # compile and warm up
        state, metrics = step(state, next(batches))
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, next(batches))
    jax.block_until_ready(metrics)
    return steps / (time.perf_counter() - start)


def loop_rate(config) -> float:  # noqa: ANN001
    """steps/s over the last logging windows of a real run (compilation excluded)."""
    with tempfile.TemporaryDirectory() as workdir:
        train(config, workdir)
        logged = [json.loads(x) for x in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    rates = [m["steps_per_s"] for m in logged if "steps_per_s" in m][1:]  # not the compiling one
    return len(rates) / sum(1.0 / r for r in rates)  # harmonic mean = total steps / total time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    p.add_argument("--repeats", type=int, default=3, help="alternating runs; medians reported")
    args = p.parse_args()
    base = load_config(CONFIG)
    print("| batch | bare jitted step (steps/s) | flowjax train loop (steps/s) | loop / bare |")
    print("|---|---|---|---|")
    for batch in args.batch:
        steps = args.steps if batch <= 1024 else args.steps // 10
        config = dataclasses.replace(  # a realistic cadence: log every 100 steps, save at the end
            base,
            steps=steps,
            data=dataclasses.replace(base.data, batch_size=batch),
            log=dataclasses.replace(
                base.log, every=min(100, steps // 5), sample_every=0, eval_every=0
            ),
            checkpoint=dataclasses.replace(base.checkpoint, every=max(steps, 1000)),
        )
        pairs = [(loop_rate(config), bare_rate(config, steps)) for _ in range(args.repeats)]
        loop, bare = (statistics.median(x) for x in zip(*pairs, strict=True))
        print(f"| {batch} | {bare:,.1f} | {loop:,.1f} | {loop / bare:.3f} |", flush=True)


if __name__ == "__main__":
    main()

"""The training loop: restore or start, step, log, evaluate, checkpoint, stop cleanly.

    state = flowjax.train.loop.train(config, workdir)

A workdir holds one run: `checkpoints/` (Orbax), `metrics.jsonl`, `tensorboard/`,
`samples/` (PNGs), `config.json` and `data_spec.json` (the `DataSpec` the run was built for, so
that `setup(..., read_only=True)` needs no data). Calling `train` again on the same workdir
resumes the run exactly (same data order, same keys). SIGTERM or SIGINT finishes the current
step, saves and returns.
"""

import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm import tqdm

from flowjax import models
from flowjax.contracts import DataSpec, Family
from flowjax.train import build
from flowjax.train.checkpoint import Checkpointer
from flowjax.train.config import ConfigError, MeshConfig, TrainConfig, to_json, validate
from flowjax.train.distributed import maybe_initialize
from flowjax.train.evaluation import Evaluation, draw_samples
from flowjax.train.inputs import held_out, make_batches
from flowjax.train.sharding import make_mesh, state_shardings
from flowjax.train.state import TrainState, init_state
from flowjax.train.step import make_train_step
from flowjax.train.writers import MetricWriter

# Config sections that fix what a checkpoint holds: resuming with other values is refused.
STRUCTURAL = (
    "seed",
    "family",
    "model",
    "flow",
    "data.kind",
    "data.distribution",
    "data.name",
    "optim.grad_clip",
)


class NonFiniteError(RuntimeError):
    """Raised with nonfinite = "stop" when a loss or gradient is not finite."""


class StopRequest:
    """Turns SIGTERM / SIGINT into a flag that the loop reads between steps."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        self.requested = True
        print(
            f"\nreceived {signal.Signals(signum).name}: finishing the step, saving, exiting",
            flush=True,
        )

    def restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}


def check_compatible(config: TrainConfig, saved: dict, workdir: Path) -> None:
    """Refuse to resume a run whose structural config differs."""
    old, new = _leaves(saved), _leaves(json.loads(to_json(config)))
    diffs = [
        f"{key.rstrip('.')}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if key.startswith(tuple(f"{s}." for s in STRUCTURAL)) and old.get(key) != new.get(key)
    ]
    if diffs:
        raise ConfigError(
            f"{workdir} holds a run with another config ({'; '.join(diffs)}); "
            "resume with the same settings or use a new --workdir"
        )


class Run(NamedTuple):
    """What `setup` builds for a workdir: the state is restored from its newest good checkpoint
    (the data iterator with it) or freshly initialized."""

    mesh: Mesh
    data: DataSpec
    family: Family
    batches: Any  # None for a read-only setup
    network: models.Functional
    optimizer: Any
    shardings: Any
    state: TrainState
    checkpointer: Checkpointer


DATA_SPEC = "data_spec.json"  # the run's DataSpec, beside config.json


def setup(config: TrainConfig, workdir: Path, *, read_only: bool = False) -> Run:
    """Everything but the loop: mesh, data, family, network, optimizer and the state (restored
    or fresh). `read_only` restores a trained run from the workdir alone (its `config.json`,
    data spec and newest checkpoint, through an abstract target), without its data, onto all of
    this machine's devices (parameters replicated), writing nothing."""
    if read_only:  # on this machine's devices, whatever the training run's mesh
        config = dataclasses.replace(config, mesh=MeshConfig())
    maybe_initialize(config.distributed)
    validate(config, jax.device_count(), jax.process_count(), training=not read_only)
    mesh = make_mesh(config.mesh)
    if read_only:
        if not (workdir / DATA_SPEC).is_file():
            raise FileNotFoundError(f"{workdir} has no {DATA_SPEC}: train (or resume) it first")
        batches, data = None, DataSpec.from_dict(json.loads((workdir / DATA_SPEC).read_text()))
    else:
        batches, data = make_batches(config, mesh)
    family = build.family(config, data, mesh)
    network, params = build.network(config, family.network, abstract=read_only)
    optimizer = build.optimizer(config.optim, config.steps)
    make_state = lambda p: init_state(p, optimizer, config.seed)  # noqa: E731
    abstract = jax.eval_shape(make_state, params)
    shardings = state_shardings(mesh, abstract, config.mesh)
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    checkpointer = Checkpointer(
        config.checkpoint.directory or workdir / "checkpoints",
        config.checkpoint,
        None if read_only else batches.checkpoint_handler(),
    )
    steps = checkpointer.all_steps()
    if steps and not read_only:
        check_compatible(config, checkpointer.read_meta(steps[-1])["config"], workdir)
    restored = checkpointer.restore(target, None if read_only else batches.restore_args())
    if restored is not None:
        _, state, _, item = restored
        if batches is not None:
            batches.load(item)
    elif read_only:
        raise FileNotFoundError(f"{workdir} has no checkpoint to load")
    else:
        state = jax.jit(make_state, out_shardings=shardings)(params)
    return Run(mesh, data, family, batches, network, optimizer, shardings, state, checkpointer)


def make_evaluation(run: Run, config: TrainConfig) -> Evaluation:
    """The run's held-out evaluation (the test split of image data is read on first use)."""
    return Evaluation(
        run.family, run.network, config, run.mesh, run.data, lambda: held_out(config, run.data)
    )


def _mean(window: list[dict]) -> dict[str, float]:
    stacked = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *window)
    return {k: float(v) for k, v in jax.device_get(stacked).items()}


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    return bool(multihost_utils.process_allgather(jnp.array(flag)).any())


def train(config: TrainConfig, workdir: str | Path) -> TrainState:
    """Train (or resume) the run in `workdir` up to `config.steps`; returns the final state."""
    workdir = Path(workdir)
    parts = setup(config, workdir)
    mesh, batches, state = parts.mesh, parts.batches, parts.state
    checkpointer: Checkpointer = parts.checkpointer
    main_process = jax.process_index() == 0
    if main_process:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.json").write_text(to_json(config))
        (workdir / DATA_SPEC).write_text(json.dumps(parts.data.to_dict()))
    meta = {"config": json.loads(to_json(config))}
    step_fn = jax.jit(
        make_train_step(config, parts.family, parts.network, parts.optimizer),
        in_shardings=(parts.shardings, batches.sharding),
        out_shardings=(parts.shardings, NamedSharding(mesh, PartitionSpec())),
        donate_argnums=0,
    )
    writer = MetricWriter(workdir)
    evaluate = make_evaluation(parts, config)
    sampler = evaluate.sampler(config.log.num_samples)
    stop = StopRequest()
    step = int(jax.device_get(state.step))
    window_start = (step, time.perf_counter())  # steps/s over each logging window
    sync_every = min(config.log.every or 10, 10)
    eval_metrics: dict[str, float] | None = None
    window: list[dict] = []
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc="train",
        unit="step",
        disable=not main_process,
        mininterval=1.0,
        smoothing=0.1,
    )
    try:
        while step < config.steps:
            state, metrics = step_fn(state, next(batches))
            step += 1
            window.append(metrics)
            bar.update()
            if config.log.every and (step % config.log.every == 0 or step == config.steps):
                summary = _mean(window)
                skipped = round((1.0 - summary.pop("finite")) * len(window))
                if skipped and config.nonfinite == "stop":
                    first = step - len(window) + 1
                    raise NonFiniteError(
                        f"non-finite loss or gradients in {skipped} of steps {first}..{step}; "
                        "those updates were not applied and no later state was saved "
                        "(set nonfinite='skip' to continue past them)"
                    )
                summary["skipped_steps"] = skipped
                now = time.perf_counter()
                summary["steps_per_s"] = (step - window_start[0]) / (now - window_start[1])
                window_start = (step, now)
                writer.write(step, summary)
                bar.set_postfix(loss=f"{summary['loss']:.4f}", refresh=False)
                window = []
            if config.log.sample_every and step % config.log.sample_every == 0:
                samples, nfe = draw_samples(sampler, state.ema_params, seed=step)
                if main_process:
                    parts.family.render(
                        samples,
                        workdir / "samples" / f"step_{step:08d}.png",
                        f"step {step} (EMA, NFE {nfe})",
                    )
            if config.log.eval_every and step % config.log.eval_every == 0:
                eval_metrics = evaluate(state.ema_params)
                writer.write(step, eval_metrics)
            stopping = step % sync_every == 0 and _any_process(stop.requested)
            stopping = stopping or (jax.process_count() == 1 and stop.requested)
            if step % config.checkpoint.every == 0 or step == config.steps or stopping:
                checkpointer.save(step, state, batches.save_args(), meta, metrics=eval_metrics)
            if stopping:
                break
    finally:
        bar.close()
        stop.restore_handlers()
        checkpointer.wait()
        checkpointer.close()
        writer.close()
    return state

"""The training loop: restore or start, step, log, evaluate, checkpoint, stop cleanly (see
`guards` for non-finite steps and signals).

    state = flowjax.train.loop.train(config, workdir)

A workdir holds one run: `checkpoints/` (Orbax), `metrics.jsonl`, `tensorboard/`,
`samples/` (PNGs), `config.json` and `data_spec.json` (the `DataSpec` the run was built for, so
that `setup(..., read_only=True)` needs no data). Calling `train` again on the same workdir
resumes the run exactly (same data order, same keys). SIGTERM or SIGINT finishes the current
step, saves and raises `Preempted`.
"""

import contextlib
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from tqdm import tqdm

from flowjax import models
from flowjax._host import keep_heap
from flowjax.contracts import DataSpec, Family
from flowjax.train import build, perf, resume
from flowjax.train.checkpoint import Checkpointer, DamagedCheckpointError
from flowjax.train.config import MeshConfig, TrainConfig, to_json, validate
from flowjax.train.distributed import maybe_initialize
from flowjax.train.evaluation import Evaluation, draw_samples
from flowjax.train.guards import NonFiniteWatch, Preempted, StopRequest
from flowjax.train.inputs import Stacked, held_out, make_batches
from flowjax.train.sharding import make_mesh, state_shardings
from flowjax.train.state import TrainState, init_state
from flowjax.train.step import train_call
from flowjax.train.writers import MetricWriter


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


def _restore_or_start(
    config: TrainConfig,
    workdir: Path,
    checkpointer: Checkpointer,
    batches: Any,
    target: Any,
    allow_changes: bool,
) -> TrainState | None:
    """The newest good checkpoint's state (the data iterator restored with it), after checking
    the resume; None for a new run."""
    read_only = batches is None
    newest = None if read_only else checkpointer.newest_meta()
    if newest is not None:
        diff = resume.changes(config, newest[1]["config"], workdir, allow_changes)
        if diff and jax.process_index() == 0:
            resume.record(workdir, newest[0], diff)
    restored = checkpointer.restore(target, None if read_only else batches.restore_args())
    if restored is not None:
        _, state, _, item = restored
        if batches is not None:
            batches.load(item)
        return state
    if checkpointer.damaged:
        raise DamagedCheckpointError(
            f"every checkpoint of {workdir} is damaged: {'; '.join(checkpointer.damaged)}; "
            "`flowjax train --restart` starts the run over"
        )
    if read_only:
        raise FileNotFoundError(f"{workdir} has no checkpoint to load")
    return None


def setup(
    config: TrainConfig, workdir: Path, *, read_only: bool = False, allow_changes: bool = False
) -> Run:
    """Everything but the loop: mesh, data, family, network, optimizer and the state (restored
    or fresh). A restored run must have the checkpoint's config up to operational settings;
    changed hyperparameters need `allow_changes` (see `resume`). On CPU devices glibc's heap
    is kept between calls (`flowjax._host.keep_heap`). `read_only` restores a trained
    run from the workdir alone (its `config.json`, data spec and newest checkpoint, through an
    abstract target), without its data, onto all of this machine's devices (parameters
    replicated), writing nothing."""
    if read_only:  # on this machine's devices, whatever the training run's mesh
        config = dataclasses.replace(config, mesh=MeshConfig())
    maybe_initialize(config.distributed)
    validate(
        config, jax.device_count(), jax.process_count(), batch=not read_only, data=not read_only
    )
    mesh = make_mesh(config.mesh)
    if mesh.devices.flat[0].platform == "cpu":
        keep_heap()  # XLA:CPU's per-call temporaries stay mapped between steps
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
    try:
        state = _restore_or_start(config, workdir, checkpointer, batches, target, allow_changes)
    except BaseException:
        checkpointer.close()  # joins its background threads before the error is reported
        raise
    if state is None:
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


def train(
    config: TrainConfig,
    workdir: str | Path,
    *,
    allow_changes: bool = False,
    restart: bool = False,
) -> TrainState:
    """Train (or resume) the run in `workdir` up to `config.steps`; returns the final state.

    Resuming with other hyperparameters needs `allow_changes` (recorded in the run's
    history); `restart` moves the run's files aside (`resume.set_aside_run`) and starts over.
    Raises `NonFiniteError` when the run diverges, `Preempted` after a signal's save."""
    workdir = Path(workdir)
    perf.use_compilation_cache(config.compilation_cache, workdir)  # before anything compiles
    if restart:
        resume.set_aside_run(workdir, config.checkpoint.directory)
    parts = setup(config, workdir, allow_changes=allow_changes)
    with contextlib.ExitStack() as cleanup:  # whatever happens, in reverse order:
        cleanup.callback(parts.checkpointer.close)
        cleanup.callback(parts.checkpointer.wait)  # ... the async saves finish first
        state, stop = _train(config, workdir, parts, cleanup)
    if stop.requested:
        raise Preempted(stop.signal, int(jax.device_get(state.step)))
    return state


def _train(
    config: TrainConfig, workdir: Path, parts: Run, cleanup: contextlib.ExitStack
) -> tuple[TrainState, StopRequest]:
    """The loop of `train`: its resources are released by `cleanup`."""
    mesh, batches, state = parts.mesh, parts.batches, parts.state
    checkpointer: Checkpointer = parts.checkpointer
    main_process = jax.process_index() == 0
    step = int(jax.device_get(state.step))
    stop = StopRequest()
    cleanup.callback(stop.restore_handlers)
    if main_process:
        workdir.mkdir(parents=True, exist_ok=True)
        if step == 0:  # a new run; a resumed one keeps its config.json and history
            (workdir / "config.json").write_text(to_json(config))
        (workdir / DATA_SPEC).write_text(json.dumps(parts.data.to_dict()))
    if step >= config.steps:
        print(
            f"flowjax: {workdir} is at step {step}, at or past config.steps = {config.steps}: "
            "nothing to train",
            file=sys.stderr,
        )
        return state, stop
    meta = {"config": json.loads(to_json(config))}
    k = config.steps_per_call
    source = batches if k == 1 else Stacked(batches, k, mesh)
    first = next(source)
    call = train_call(
        config, parts.family, parts.network, parts.optimizer, mesh, parts.shardings, source.sharding
    )
    lowered = call.lower(state, first)
    step_fn = lowered.compile()  # compiled ahead of the loop
    flops = perf.step_flops(lowered, mesh.size, config.optim.accumulate)
    compute = jnp.bfloat16 if config.precision == "bfloat16" else jnp.float32
    peak = perf.peak_tflops(jax.devices()[0], compute) if config.log.every else None
    profile = config.profile
    writer = MetricWriter(workdir, step)
    cleanup.callback(writer.close)
    evaluate = make_evaluation(parts, config)
    sampler = evaluate.sampler(config.log.num_samples)
    budget = 0 if config.nonfinite == "stop" else config.nonfinite_budget
    watch = NonFiniteWatch(budget)
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
    cleanup.callback(bar.close)
    stream = itertools.chain([first], source)
    while step < config.steps:
        if profile.steps and step + 1 == profile.start:
            jax.profiler.start_trace(str(workdir / "tensorboard"))
        state, metrics = step_fn(state, next(stream))
        watch.add(step + 1, metrics.pop("nonfinite"))
        step += k
        if profile.steps and step + 1 == profile.start + profile.steps:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
        window.append(metrics)
        bar.update(k)
        if step % sync_every == 0:
            watch.check()
        if config.log.every and (step % config.log.every == 0 or step == config.steps):
            summary = _mean(window)
            steps_in_window = step - window_start[0]
            summary["skipped_steps"] = round((1.0 - summary.pop("finite")) * steps_in_window)
            now = time.perf_counter()
            summary["steps_per_s"] = steps_in_window / (now - window_start[1])
            summary["perf/tflops_per_device"] = flops * summary["steps_per_s"] / 1e12
            shown = {"loss": f"{summary['loss']:.4f}"}
            if peak:
                summary["perf/mfu"] = summary["perf/tflops_per_device"] / peak
                shown["mfu"] = f"{summary['perf/mfu']:.1%}"
            window_start = (step, now)
            writer.write(step, summary)
            bar.set_postfix(shown, refresh=False)
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
            watch.check()
            if not watch.skipping:
                checkpointer.save(step, state, batches.save_args(), meta, metrics=eval_metrics)
        if stopping:
            return state, stop
    watch.finish()
    return state, stop

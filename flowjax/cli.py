"""`flowjax train | sample | evaluate | fid`: the command line.

    flowjax train CONFIG.py [--config.section.field=value ...] --workdir DIR
                  [--allow-changes] [--restart]
    flowjax sample --workdir DIR [--num 10000] [--method dopri5 | euler --steps N] [--guidance W]
                   [--out samples.npz]
    flowjax evaluate --workdir DIR
    flowjax fid --workdir DIR [--num 10000] [--reference N] [--method dopri5] [--guidance W]
    flowjax compile CONFIG.py --topology v5e:16x16 [--num-slices N] [--config.x=y ...]

`train` resumes automatically from DIR (other hyperparameters only with `--allow-changes`,
recorded in DIR/history.jsonl; `--restart` moves the run aside and starts over); `sample`,
`evaluate` and `fid` restore the trained network from DIR alone (its config, data spec and
newest checkpoint), write nothing but their outputs, and read data only where the evaluation
needs it (held-out images, FID reference statistics). Samples and evaluations come from the
run's method family (sampler methods: the family's; default: the run's `log.eval_method`).

Exit status: 0 done; 2 a user mistake or an environment fault (one line on stderr; `--debug`
shows the traceback); 1 training stopped as it diverged (non-finite steps beyond the budget);
75 (`guards.PREEMPTED`) stopped by SIGTERM / SIGINT after saving: rerun the same command to
resume.
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from flowjax.train import aot
from flowjax.train.checkpoint import DamagedCheckpointError
from flowjax.train.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    family_class,
    load_config,
)
from flowjax.train.guards import PREEMPTED, NonFiniteError, Preempted
from flowjax.train.loop import make_evaluation, setup, train
from flowjax.train.resume import effective_config

USER_ERRORS = (ConfigError, FileNotFoundError, DamagedCheckpointError)


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> None:
    config = apply_overrides(load_config(args.config), overrides)
    state = train(config, args.workdir, allow_changes=args.allow_changes, restart=args.restart)
    print(f"done at step {int(state.step)}; run in {args.workdir}")


def _sampling(config: TrainConfig, args: argparse.Namespace, num: int) -> TrainConfig:
    """The run's config with the sampler of the command line (method, steps, guidance; those
    not given stay the run's), checked before anything is restored."""
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be positive, got {args.steps}")
    methods = family_class(config.family).sampler_methods
    if args.method is not None and args.method not in methods:
        raise ConfigError(f"--method {args.method!r}; the run's family has {list(methods)}")
    if args.guidance is not None and config.model.arguments().get("num_classes") is None:
        raise ConfigError("--guidance needs a class-conditional run (model.num_classes)")
    log = dataclasses.replace(
        config.log,
        num_samples=num,
        eval_method=args.method or config.log.eval_method,
        eval_steps=args.steps or config.log.eval_steps,
        guidance=config.log.guidance if args.guidance is None else args.guidance,
    )
    return dataclasses.replace(config, log=log)


def cmd_sample(args: argparse.Namespace) -> None:
    import jax
    import numpy as np

    from flowjax.train import evaluation

    if args.num < 1:
        raise ConfigError(f"--num must be positive, got {args.num}")
    config = _sampling(effective_config(args.workdir), args, args.num)
    parts = setup(config, args.workdir, read_only=True)
    params = parts.state.ema_params if args.ema else parts.state.params
    sampler = evaluation.make_sampler(
        parts.family, parts.network, config, parts.mesh, parts.data, args.num
    )
    start = time.perf_counter()
    compiled = sampler.lower(params, jax.random.key(args.seed)).compile()
    compiled_at = time.perf_counter()
    samples, nfe = evaluation.draw_samples(compiled, params, args.seed)
    seconds = time.perf_counter() - compiled_at
    out = args.out or args.workdir / "samples.npz"
    np.savez(out, samples=samples)
    parts.family.render(samples, Path(out).with_suffix(".png"), f"{args.num} samples, NFE {nfe}")
    speed = {"seconds": seconds, "samples_per_s": args.num / seconds}
    speed["compile_s"] = compiled_at - start
    print(json.dumps({"samples": str(out), "shape": list(samples.shape), "nfe": nfe, **speed}))


def cmd_fid(args: argparse.Namespace) -> None:
    from flowjax.train import evaluation

    if args.num < 2 or args.batch < 1 or (args.reference is not None and args.reference < 2):
        raise ConfigError("--num and --reference must be at least 2, --batch at least 1")
    config = effective_config(args.workdir)
    config = _sampling(config, args, config.log.num_samples)
    parts = setup(config, args.workdir, read_only=True)
    if len(parts.data.event_shape) != 3:
        raise ConfigError(f"FID needs an image run; {args.workdir} models {config.data.kind!r}")
    reference = evaluation.reference_statistics(
        config, args.split, args.reference, args.workdir / "fid"
    )
    params = parts.state.ema_params if args.ema else parts.state.params
    chunk = min(args.batch, args.num)
    sampler = evaluation.make_sampler(
        parts.family, parts.network, config, parts.mesh, parts.data, chunk
    )
    result = evaluation.sample_fid(sampler, params, reference, args.num, seed=args.seed)
    reported = {"reference": f"{args.split} ({args.reference or 'all'} images)"}
    method = evaluation.settings(config, parts.family).method
    print(json.dumps({"step": int(parts.state.step), **result, **reported, "method": method}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    config = effective_config(args.workdir)
    parts = setup(config, args.workdir, read_only=True)
    metrics = make_evaluation(parts, config)(parts.state.ema_params)
    print(json.dumps({"step": int(parts.state.step), **metrics}))


def cmd_compile(args: argparse.Namespace, overrides: list[str]) -> None:
    if not 0 < args.utilization <= 1:
        raise ConfigError(f"--utilization must be in (0, 1], got {args.utilization}")
    if args.num_slices < 1:
        raise ConfigError(f"--num-slices must be positive, got {args.num_slices}")
    config = apply_overrides(load_config(args.config), overrides)
    shape = None if args.shape is None else tuple(int(d) for d in args.shape.split(","))
    report = aot.fitting_report(config, args.topology, args.num_slices, shape, args.utilization)
    print(compile_table(report, args.topology))
    print(json.dumps({"topology": args.topology, **report.to_dict()}))


def compile_table(report: aot.Report, topology: str) -> str:
    """The report of `flowjax compile` as Markdown."""
    gib = lambda b: f"{b / 2**30:,.3f}"  # noqa: E731
    chip = report.chip
    rows = [
        ("parameters", gib(report.params)),
        ("optimizer state", gib(report.opt_state)),
        ("EMA parameters", gib(report.ema)),
        ("activations and temporaries", gib(report.temporaries)),
        ("program code", gib(report.code)),
        ("total", f"{gib(report.total)} of {gib(report.hbm)} HBM: fits"),
    ]
    collectives = ", ".join(
        f"{kind} {b / 1e6:,.1f} MB" for kind, b in report.collectives.items() if b
    )
    lines = [
        f"{topology}: {report.devices} devices of {chip.name} ({chip.peak_tflops:g} TFLOP/s "
        f"bf16, {chip.hbm_gib:g} GiB HBM, ICI {chip.ici_gbps or '?'} GB/s; {chip.source})",
        "",
        "| per device | GiB |",
        "|---|---|",
        *(f"| {a} | {b} |" for a, b in rows),
        "",
        f"FLOPs per step per device: {report.flops_per_step:.3e}; sent by the collectives per "
        f"call per device: {collectives or 'none'}",
        f"projected: {report.step_seconds * 1e3:,.2f} ms per step at {report.utilization:.0%} "
        f"of peak plus the collectives at ICI (and DCN) bandwidth, not overlapped: "
        f"{report.samples_per_second:,.0f} samples/s (global batch {report.global_batch})",
    ]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line (`flowjax: error: ...`) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"flowjax: error: {self.prog.removeprefix('flowjax ')}: {message}", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    p = _Parser(prog="flowjax", description="Flow Matching training and sampling")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", parents=[common], help="train (or resume) a run")
    t.add_argument("config", type=Path, help="a Python file defining get_config()")
    t.add_argument("--workdir", type=Path, required=True)
    t.add_argument(
        "--allow-changes", action="store_true", help="resume with changed hyperparameters"
    )
    t.add_argument(
        "--restart", action="store_true", help="move the workdir's run aside and start over"
    )
    c = sub.add_parser(
        "compile", parents=[common], help="compile the training step for a TPU topology"
    )
    c.add_argument("config", type=Path, help="a Python file defining get_config()")
    c.add_argument("--topology", required=True, help="e.g. v5e:16x16, v5p:8x8x8, v4:4x4x4")
    c.add_argument("--num-slices", type=int, default=1, help="slices joined over the DCN")
    c.add_argument("--utilization", type=float, default=0.4, help="assumed fraction of peak")
    c.add_argument("--shape", help="the event shape where the data does not tell, e.g. 32,32,4")
    s = sub.add_parser("sample", parents=[common], help="sample from a run (EMA parameters)")
    s.add_argument("--workdir", type=Path, required=True)
    s.add_argument("--num", type=int, default=10_000)
    s.add_argument("--method", help="a sampler method of the run's family (default: the run's)")
    s.add_argument("--steps", type=int, help="steps of a fixed-step method (default: the run's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path)
    s.add_argument("--guidance", type=float, help="guidance scale of a class-conditional run")
    s.add_argument("--no-ema", dest="ema", action="store_false")
    e = sub.add_parser("evaluate", parents=[common], help="evaluate a run's latest checkpoint")
    e.add_argument("--workdir", type=Path, required=True)
    f = sub.add_parser("fid", parents=[common], help="FID of an image run's samples")
    f.add_argument("--workdir", type=Path, required=True)
    f.add_argument("--num", type=int, default=10_000, help="samples")
    f.add_argument("--reference", type=int, help="data images (a fixed subset; default all)")
    f.add_argument("--split", default="train", help="data split of the reference statistics")
    f.add_argument("--method", help="a sampler method of the run's family (default: the run's)")
    f.add_argument("--steps", type=int, help="steps of a fixed-step method (default: the run's)")
    f.add_argument("--guidance", type=float, help="guidance scale (default: the run's)")
    f.add_argument("--batch", type=int, default=500, help="samples per solve")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--no-ema", dest="ema", action="store_false")
    return p


def _message(error: Exception) -> str:
    """The error in one line; an OS fault as the path and the cause."""
    if isinstance(error, OSError) and error.strerror:
        where = "" if error.filename is None else f"{error.filename}: "
        return f"{where}{error.strerror}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if not args.debug:  # orbax's background errors are logged there; we report them below
        for name in ("absl", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    overrides = [a for a in extra if a.startswith("--config.")]
    unknown = [a for a in extra if not a.startswith("--config.")]
    if args.command == "compile":  # for a TPU that is not here: never initialize one
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    commands = {
        "train": lambda: cmd_train(args, overrides),
        "compile": lambda: cmd_compile(args, overrides),
        "sample": lambda: cmd_sample(args),
        "evaluate": lambda: cmd_evaluate(args),
        "fid": lambda: cmd_fid(args),
    }
    try:
        if unknown:
            raise ConfigError(f"unrecognized arguments: {' '.join(unknown)}")
        if overrides and args.command not in ("train", "compile"):
            raise ConfigError("--config.* overrides apply to `flowjax train` and `compile` only")
        commands[args.command]()
    except Exception as error:
        if args.debug:
            raise
        for kind, status, label in (
            (Preempted, PREEMPTED, "preempted"),
            (NonFiniteError, 1, "training stopped"),
            (USER_ERRORS, 2, "error"),
            (OSError, 2, "error"),
        ):
            if isinstance(error, kind):
                print(f"flowjax: {label}: {_message(error)}", file=sys.stderr)
                return status
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`flowjax train | sample | evaluate`: the command line.

    flowjax train CONFIG.py [--config.section.field=value ...] --workdir DIR
    flowjax sample --workdir DIR [--num 10000] [--method dopri5 | euler --steps N] [--guidance W]
                   [--out samples.npz]
    flowjax evaluate --workdir DIR
    flowjax fid --workdir DIR [--num 10000] [--reference N] [--method dopri5] [--guidance W]

The sampler methods are those of the run's family (default: the run's `log.eval_method`).

`train` resumes automatically from DIR; `sample`, `evaluate` and `fid` restore the trained
network from DIR alone (its config, data spec and newest checkpoint) and read data only where
the evaluation needs it (held-out images, FID reference statistics). Samples and evaluations
come from the run's method family. User mistakes (bad config, missing files) are reported as
one line on stderr with exit status 2.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from flowjax.train.checkpoint import DamagedCheckpointError
from flowjax.train.config import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    family_class,
    from_dict,
    load_config,
)
from flowjax.train.loop import NonFiniteError, make_evaluation, setup, train

USER_ERRORS = (ConfigError, FileNotFoundError, DamagedCheckpointError)


def _saved_config(workdir: Path) -> TrainConfig:
    path = workdir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{workdir} holds no run (no config.json): train one first")
    return from_dict(TrainConfig, json.loads(path.read_text()))


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> None:
    config = apply_overrides(load_config(args.config), overrides)
    state = train(config, args.workdir)
    print(f"done at step {int(state.step)}; run in {args.workdir}")


def _sampling(config: TrainConfig, args: argparse.Namespace, num: int) -> TrainConfig:
    """The run's config with the sampler of the command line (method, steps, guidance; those
    not given stay the run's), checked against the family's sampler methods."""
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be positive, got {args.steps}")
    methods = family_class(config.family).sampler_methods
    if args.method is not None and args.method not in methods:
        raise ConfigError(f"--method {args.method!r}; the run's family has {list(methods)}")
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

    config = _sampling(_saved_config(args.workdir), args, args.num)
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
    config = _saved_config(args.workdir)
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
    config = _saved_config(args.workdir)
    parts = setup(config, args.workdir, read_only=True)
    metrics = make_evaluation(parts, config)(parts.state.ema_params)
    print(json.dumps({"step": int(parts.state.step), **metrics}))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowjax", description="Flow Matching training and sampling")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train (or resume) a run")
    t.add_argument("config", type=Path, help="a Python file defining get_config()")
    t.add_argument("--workdir", type=Path, required=True)
    s = sub.add_parser("sample", help="sample from a run's latest checkpoint (EMA parameters)")
    s.add_argument("--workdir", type=Path, required=True)
    s.add_argument("--num", type=int, default=10_000)
    s.add_argument("--method", help="a sampler method of the run's family (default: the run's)")
    s.add_argument("--steps", type=int, help="steps of a fixed-step method (default: the run's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path)
    s.add_argument(
        "--guidance", type=float, help="guidance scale for class-conditional models (default 1)"
    )
    s.add_argument("--no-ema", dest="ema", action="store_false")
    e = sub.add_parser("evaluate", help="evaluate a run's latest checkpoint")
    e.add_argument("--workdir", type=Path, required=True)
    f = sub.add_parser("fid", help="FID of an image run's samples against its training data")
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


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    overrides = [a for a in extra if a.startswith("--config.")]
    unknown = [a for a in extra if not a.startswith("--config.")]
    try:
        if unknown:
            raise ConfigError(f"unrecognized arguments: {' '.join(unknown)}")
        if overrides and args.command != "train":
            raise ConfigError("--config.* overrides apply to `flowjax train` only")
        {
            "train": lambda: cmd_train(args, overrides),
            "sample": lambda: cmd_sample(args),
            "evaluate": lambda: cmd_evaluate(args),
            "fid": lambda: cmd_fid(args),
        }[args.command]()
    except USER_ERRORS as error:
        print(f"flowjax: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(f"flowjax: training stopped: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One- and two-step class-conditional MNIST: FID (10k samples, the `flowjax fid` protocol of
`experiments/mnist`) at 1 and 2 NFE (2 also re-noised) for MeanFlow, SplitMeanFlow, AlphaFlow,
SoFlow and the shortcut model, beside the core FM model at NFE 1, 2 (Euler) and 10 (midpoint),
one command:

    python -m experiments.one_step_mnist.run                      # the full table (README.md)
    python -m experiments.one_step_mnist.run --steps 20 --num 200 --reference 200 --methods FM

Every method trains `flowjax/configs/mnist.py` (the small UNet, 2,400 steps of batch 128, EMA
0.999, labels dropped to the null class with probability 0.2) through the training system with
`--config.family=` its family; the one-step families take the guidance scale `--w` folded into
their target (`omega = w`, `kappa = 0`: the target velocity `w v + (1 - w) u(null)`, the
paper's ImageNet setting) and sample the conditional flow map; FM samples the guided field at
scale `w`. FID of `--num` samples (labels cycling through the digits) against the statistics of
`--reference` training images, as `flowjax fid` computes it. Stages (training, reference
statistics, each FID) are cached in the workdir, so a rerun resumes where it stopped. Writes
results.md / results.json and samples.png (one row of digits 0-9 per method and NFE).
"""

import argparse
import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import numpy as np

from experiments.heldout import train_to_end
from experiments.mnist.run import _json
from flowjax import metrics
from flowjax.configs.mnist import get_config
from flowjax.train import evaluation, loop
from flowjax.train.config import TrainConfig, apply_overrides

METHODS = {
    "FM": "cfm",
    "MeanFlow": "meanflow",
    "SplitMeanFlow": "splitmeanflow",
    "AlphaFlow": "alphaflow",
    "SoFlow": "soflow",
    "shortcut": "shortcut",
}
# setting -> (sampler method, steps); FM's at NFE 10 is experiments/mnist's midpoint rule
FM_SETTINGS = {"NFE 1": ("euler", 1), "NFE 2": ("euler", 2), "NFE 10": ("midpoint", 5)}
FLOW_MAP_SETTINGS = {
    "NFE 1": ("flow_map", 1),
    "NFE 2": ("flow_map", 2),
    "NFE 2 re-noised": ("renoise", 2),  # SoFlow's and consistency models' two-step sampler
}
COLUMNS = ("NFE 1", "NFE 2", "NFE 2 re-noised", "NFE 10")
CHUNK = 500  # samples per jitted call


def method_config(family: str, args: argparse.Namespace) -> TrainConfig:
    """The MNIST config trained by `family`: guidance folded into a one-step family's target,
    its samples during training by its own flow map."""
    overrides = [f"--config.data.path={args.data}", f"--config.seed={args.seed}"]
    if args.steps is not None:
        overrides.append(f"--config.steps={args.steps}")
    if family != "cfm":
        overrides += [
            f"--config.family={family}",
            "--config.flow.label_dropout=0.2",
            f"--config.flow.omega={args.w}",
            "--config.log.eval_method=flow_map",
            "--config.log.eval_steps=1",
        ]
    return apply_overrides(get_config(), overrides)


def settings(family: str, args: argparse.Namespace) -> dict[str, tuple[str, int, float]]:
    """setting -> (sampler method, steps, guidance scale at sampling)."""
    if family == "cfm":
        return {k: (m, n, args.w) for k, (m, n) in FM_SETTINGS.items()}
    return {k: (m, n, 1.0) for k, (m, n) in FLOW_MAP_SETTINGS.items()}


def score(
    run: loop.Run,
    config: TrainConfig,
    setting: tuple[str, int, float],
    reference: tuple,
    args: argparse.Namespace,
) -> dict:
    """FID, NFE and images/s of `args.num` samples at `setting`, and the first ten (digits 0-9)."""
    method, steps, w = setting
    log = dataclasses.replace(config.log, eval_method=method, eval_steps=steps, guidance=w)
    config = dataclasses.replace(config, log=log)
    sampler = evaluation.make_sampler(
        run.family, run.network, config, run.mesh, run.data, min(CHUNK, args.num)
    )
    params = run.state.ema_params
    start = time.perf_counter()
    result = evaluation.sample_fid(sampler, params, reference, args.num, seed=args.seed)
    result["images_per_s"] = args.num / (time.perf_counter() - start)
    digits, _ = evaluation.draw_samples(sampler, params, seed=args.seed)
    result["digits"] = np.clip(digits[:10], -1, 1).tolist()
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/one_step_mnist"))
    p.add_argument("--data", default="../shared/data/mnist")
    p.add_argument("--steps", type=int, help="training steps (default: the config's 2,400)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--w", type=float, default=2.0, help="guidance scale (FM's best in mnist/)")
    p.add_argument("--num", type=int, default=10_000, help="samples per FID")
    p.add_argument("--reference", type=int, default=10_000, help="training images for FID")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = method_config("cfm", args)
    reference = evaluation.reference_statistics(data, "train", args.reference, work)
    test = evaluation.reference_statistics(data, "test", args.reference, work)
    floor = metrics.frechet_distance(*reference, *test)
    results: dict = {}
    for name in args.methods:
        family = METHODS[name]
        config = method_config(family, args)
        seconds = _json(
            work / family / "train.json",
            lambda c=config, f=family: {"seconds": train_to_end(c, work / f / "run")},
        )["seconds"]
        run = loop.setup(config, work / family / "run", read_only=True)
        results[name] = {"train_seconds": seconds}
        for label, setting in settings(family, args).items():
            key = f"fid_{args.num}_{label.replace(' ', '')}.json"
            results[name][label] = _json(
                work / family / key, functools.partial(score, run, config, setting, reference, args)
            )
            print(f"{name} {label}: FID {results[name][label]['fid']:.2f}", flush=True)
        run.checkpointer.close()
    (work / "results.json").write_text(json.dumps({"floor": floor, "results": results}))
    (work / "results.md").write_text(report(results, floor, args))
    figure(results, work / "samples.png")
    print((work / "results.md").read_text())
    return {"floor": floor, "results": results}


def report(results: dict, floor: float, args: argparse.Namespace) -> str:
    lines = [
        "| method | FID at NFE 1 | NFE 2 | NFE 2 re-noised | NFE 10 | training s |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        cells = [f"{row[k]['fid']:.1f}" if k in row else "-" for k in COLUMNS]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['train_seconds']:.0f} |")
    lines += [
        f"| {args.reference:,} test images (floor) | {floor:.1f} | | | | |",
        "",
        f"FID of {args.num:,} samples against {args.reference:,} training images; guidance "
        f"w = {args.w:g} (FM: the guided field; the others: folded into the target); "
        f"{jax.devices()[0].device_kind}. Training s: the run's logged windows summed over every "
        "invocation (`experiments.heldout.train_seconds`), on a CPU shared with other work at "
        "times.",
        "",
    ]
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    """One row of digits 0-9 per method and NFE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, k, np.asarray(r[k]["digits"])) for n, r in results.items() for k in r if "NFE" in k]
    fig, axes = plt.subplots(len(rows), 1, figsize=(5, 0.6 * len(rows)), squeeze=False)
    for ax, (name, label, digits) in zip(axes[:, 0], rows, strict=True):
        ax.imshow(np.concatenate(list(digits[..., 0]), axis=1), cmap="gray", vmin=-1, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(f"{name}\n{label}", fontsize=6, rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()

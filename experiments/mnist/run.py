"""Class-conditional FM-OT with classifier-free guidance on MNIST, on a CPU, one command:
FID (10k samples) against the guidance scale, NFE against the solver tolerance, a grid per class.

    python -m experiments.mnist.run                     # the full experiment (README.md)
    python -m experiments.mnist.run --steps 200 --num 500 --reference 500  # a quick check

Stages, each cached in the workdir so that a rerun resumes where it stopped:
1. train `flowjax/configs/mnist.py` (label dropout 0.2 to the null class) with the training
   system (Orbax checkpoints; resumes mid-run);
2. FID reference statistics of `--reference` training images (a fixed random subset) and, as
   the floor a perfect model would score, the FID of as many test images;
3. for each guidance scale w, `--num` samples (labels cycling through the classes) from the EMA
   parameters with `--method` (`--solver-steps` steps, or rtol = atol = `--tol` for dopri5),
   their FID, mean NFE per sample and images/s;
4. at the best w, on `--sweep` samples: dopri5's mean NFE per sample and RMS deviation from a
   reference solve (rtol = atol = 1e-7) for each tolerance in `--tolerances`;
5. results.md, fid_vs_guidance.png and a per-class grid (one row per digit) for each w.
"""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments.heldout import train_to_end
from flowjax import guidance, metrics, plots, solvers
from flowjax.configs.mnist import get_config
from flowjax.models import parameter_count
from flowjax.train import evaluation, loop
from flowjax.train.config import apply_overrides

CLASSES = 10
CHUNK = 1000  # samples per jitted solve


def _json(path: Path, compute: Callable[[], dict]) -> dict:
    """`compute()` cached as JSON at `path`."""
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def solver_options(method: str, steps: int, tol: float) -> dict:
    """`solvers.sample` options: dopri5 at rtol = atol = `tol`, each sample with its own step
    sizes (so that the NFE is per sample), or `steps` uniform steps of a fixed-step method."""
    if method == "dopri5":
        return {"method": method, "rtol": tol, "atol": tol, "batch_mode": "per_sample"}
    return {"method": method, "num_steps": steps}


def sample(
    v: Callable, params: Any, w: float, num: int, seed: int, options: dict
) -> tuple[np.ndarray, np.ndarray]:
    """`num` images `[num, 28, 28, 1]` in [-1, 1] (sample i of class i mod 10) by the guided
    field at scale `w`, solved with `options`; and the NFE of each sample `[num]`."""
    field = guidance.guided(v, w, null_label=CLASSES)

    @jax.jit
    def solve(params: Any, x0: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        sol = solvers.sample(field, params, x0, cond={"y": y}, **options)
        return sol.y, sol.stats.nfe

    images, nfe = [], []
    key, chunk = jax.random.key(seed), min(CHUNK, num)
    for start in tqdm(range(0, num, chunk), desc=f"samples w={w:g}", unit="chunk"):
        n = min(chunk, num - start)
        x0 = jax.random.normal(jax.random.fold_in(key, start), (chunk, 28, 28, 1))
        y = (start + jnp.arange(chunk)) % CLASSES
        x, k = solve(params, x0, y)  # parameters as arguments, not compiled-in constants
        images.append(np.asarray(x)[:n])
        nfe.append(np.asarray(k)[:n])
    return np.concatenate(images), np.concatenate(nfe)


def class_grid(images: np.ndarray, path: Path) -> None:
    """The first 100 samples (10 per class, in class order) as a grid with one row per digit."""
    rows = images[:100].reshape(10, CLASSES, *images.shape[1:]).swapaxes(0, 1)
    plots.image_grid_png(rows.reshape(100, *images.shape[1:]), path)


def tolerance_sweep(
    v: Callable, params: Any, w: float, tolerances: list[float], num: int
) -> list[dict]:
    """Mean NFE per sample and RMS deviation from an rtol = atol = 1e-7 solve, per tolerance,
    on `num` samples at guidance `w`."""
    reference, _ = sample(v, params, w, num, seed=7, options=solver_options("dopri5", 0, 1e-7))
    rows = []
    for tol in tolerances:
        images, nfe = sample(v, params, w, num, seed=7, options=solver_options("dopri5", 0, tol))
        rms = float(np.sqrt(np.mean((images - reference) ** 2)))
        rows.append({"tol": tol, "nfe": float(nfe.mean()), "rms": rms})
    return rows


def plot(fids: dict[float, dict], floor: float, path: Path) -> None:
    """FID (and the mean NFE, where it varies) against the guidance scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws = sorted(fids)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ws, [fids[w]["fid"] for w in ws], "o-", label="FID (samples)")
    ax.axhline(floor, color="gray", ls="--", label="FID (test images)")
    ax.set_xlabel("guidance scale w")
    ax.set_ylabel("FID vs train statistics")
    if len({fids[w]["nfe"] for w in ws}) > 1:  # adaptive steps: the cost varies with w
        nfe = ax.twinx()
        nfe.plot(ws, [fids[w]["nfe"] for w in ws], "s:", color="C1")
        nfe.set_ylabel("mean NFE per sample", color="C1")
    ax.legend(loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def solver_name(args: argparse.Namespace) -> str:
    if args.method == "dopri5":
        return f"dopri5 at rtol = atol = {args.tol:g} (solved per sample)"
    return f"{args.method}, {args.solver_steps} steps"


def report(
    config: Any, args: argparse.Namespace, count: int, fids: dict, floor: float, tols: list
) -> str:
    best = min(fids, key=lambda w: fids[w]["fid"])
    lines = [
        "# MNIST, class-conditional FM-OT with classifier-free guidance",
        "",
        f"Model: {config.model.kind}, {count:,} parameters; {config.steps} steps of batch "
        f"{config.data.batch_size}, label dropout {config.flow.label_dropout}; EMA parameters. "
        f"FID of {args.num} samples against the statistics of {args.reference} training "
        f"images; samples by {solver_name(args)}.",
        "",
        "| guidance w | FID | mean NFE per sample | sampling images/s (incl. compile) |",
        "|---|---|---|---|",
        *(
            f"| {w:g} | {r['fid']:.2f} | {r['nfe']:.1f} | {r['images_per_s']:.1f} |"
            for w, r in sorted(fids.items())
        ),
        f"| test images (floor) | {floor:.2f} | | |",
        "",
        f"dopri5's NFE against tolerance at w = {best:g} ({args.sweep} samples; RMS deviation "
        "in [-1, 1] pixel units from an rtol = atol = 1e-7 solve):",
        "",
        "| rtol = atol | mean NFE | RMS deviation |",
        "|---|---|---|",
        *(f"| {r['tol']:g} | {r['nfe']:.1f} | {r['rms']:.2e} |" for r in tols),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/mnist_unet"))
    p.add_argument("--data", default="../shared/data/mnist")
    p.add_argument("--steps", type=int, help="training steps (default: the config's)")
    p.add_argument("--guidance", default="0,1,2,3", help="comma-separated scales")
    p.add_argument("--num", type=int, default=10_000, help="samples per guidance scale")
    p.add_argument("--reference", type=int, default=10_000, help="training images for FID")
    p.add_argument("--method", default="midpoint", help="sampler for the FIDs")
    p.add_argument("--solver-steps", type=int, default=5, help="steps of a fixed-step --method")
    p.add_argument("--tol", type=float, default=1e-5, help="rtol = atol of --method dopri5")
    p.add_argument("--tolerances", default="1e-2,1e-3,1e-4")
    p.add_argument("--sweep", type=int, default=100, help="samples of the tolerance sweep")
    args = p.parse_args(argv)
    if args.num < 100:
        p.error("--num must be at least 100 (the class grid shows 10 samples of each digit)")
    options = solver_options(args.method, args.solver_steps, args.tol)
    tag = f"tol{args.tol:g}" if args.method == "dopri5" else f"{args.method}{args.solver_steps}"
    overrides = [f"--config.data.path={args.data}"]
    if args.steps is not None:
        overrides.append(f"--config.steps={args.steps}")
    config = apply_overrides(get_config(), overrides)
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    seconds = train_to_end(config, work / "run")
    parts = loop.setup(config, work / "run", read_only=True)
    v, params = parts.network, parts.state.ema_params
    print(f"trained {config.steps} steps ({seconds:.0f} s of training steps)")

    model = metrics.load_inception()
    mu, sigma = evaluation.reference_statistics(config, "train", args.reference, work, model)
    test = evaluation.reference_statistics(config, "test", args.reference, work, model)
    floor = metrics.frechet_distance(mu, sigma, *test)

    def fid_at(w: float) -> dict:
        t0 = time.perf_counter()
        images, nfe = sample(v, params, w, args.num, seed=0, options=options)
        sampling = time.perf_counter() - t0
        images = np.clip(images, -1.0, 1.0)  # as saved to 8-bit images
        class_grid(images, work / f"grid_w{w:g}.png")
        score = metrics.frechet_distance(mu, sigma, *metrics.image_statistics(images, model))
        return {"fid": score, "nfe": float(nfe.mean()), "images_per_s": args.num / sampling}

    fids = {}
    for w in (float(s) for s in args.guidance.split(",")):
        fids[w] = _json(work / f"fid_{args.num}_{tag}_w{w:g}.json", lambda w=w: fid_at(w))
        print(f"w = {w:g}: FID {fids[w]['fid']:.2f}, mean NFE {fids[w]['nfe']:.1f}")
    best = min(fids, key=lambda w: fids[w]["fid"])
    tolerances = [float(s) for s in args.tolerances.split(",")]
    tols = _json(
        work / f"tolerances_{args.sweep}_w{best:g}.json",
        lambda: {"rows": tolerance_sweep(v, params, best, tolerances, args.sweep)},
    )["rows"]
    plot(fids, floor, work / "fid_vs_guidance.png")
    count = parameter_count(params)
    (work / "results.md").write_text(report(config, args, count, fids, floor, tols))
    print((work / "results.md").read_text())
    print(f"total {time.perf_counter() - start:.0f} s; outputs in {work}")
    return {"fids": fids, "floor": floor, "tolerances": tols}


if __name__ == "__main__":
    main()

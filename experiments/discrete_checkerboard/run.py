"""Discrete flow matching on the checkerboard quantized to 128 x 128 bins (Meta's discrete
example): mask and uniform sources, cross-entropy and generalized KL, with and without the
corrector, against the number of sampling steps, one command:

    python -m experiments.discrete_checkerboard.run     # 5,000 steps of batch 1,024 per model
    python -m experiments.discrete_checkerboard.run --steps 30000 --batch 4096  # Meta's budget

For each (source, loss), `flowjax/configs/checkerboard_dfm.py` (kappa_t = t^2, the token MLP
of Meta's example) is trained by the training system in `--workdir/<source>_<loss>` (cached,
resumable). With its EMA parameters: the ELBO in bits per token on `--num` fresh points (the
data's entropy, log2(128 * 64) / 2 = 6.5 bits per token, is the floor), and `--num` CTMC Euler
samples for each number of steps in `--sampling-steps` (mask source: also with the corrector
at beta = `--corrector`), scored by the total variation and KL(data || samples) of their
128 x 128 histogram to the exact data histogram. The same scores of `--num` exact data samples
are the sampling-noise floor. Writes results.md, results.json and checkerboard_dfm.png.
"""

import argparse
import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from experiments.heldout import train_to_end
from flowjax import data as toy
from flowjax.configs.checkerboard_dfm import BINS, get_config
from flowjax.contracts import SamplerSettings
from flowjax.families import DFM
from flowjax.train import loop
from flowjax.train.config import apply_overrides

VARIANTS = [(s, loss) for s in ("mask", "uniform") for loss in ("cross_entropy", "generalized_kl")]
CHUNK = 20_000  # samples per jitted call
SHORT = {"cross_entropy": "CE", "generalized_kl": "GKL"}


def data_histogram(bins: int = BINS) -> np.ndarray:
    """The exact law of the quantized checkerboard `[bins, bins]`: uniform on the cells of the
    8 squares (bin edges fall on the squares' edges when 8 divides bins)."""
    centers = -4.0 + (np.arange(bins) + 0.5) * 8.0 / bins
    grid = np.stack(np.meshgrid(centers, centers, indexing="ij"), -1).reshape(-1, 2)
    on = np.isfinite(np.asarray(toy.checkerboard_log_prob(jnp.asarray(grid)))).reshape(bins, bins)
    return on / on.sum()


def scores(tokens: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Total variation and KL(p || q) of the sample histogram q (each cell's count + 1/2, so
    that an empty cell costs a finite amount) to the data law p; the fraction off the board."""
    counts = np.zeros_like(p)
    np.add.at(counts, (tokens[:, 0], tokens[:, 1]), 1)
    q = counts / counts.sum()
    smooth = (counts + 0.5) / (counts.sum() + 0.5 * counts.size)
    on = p > 0
    return {
        "tv": 0.5 * float(np.abs(q - p).sum()),
        "kl": float(np.sum(p[on] * np.log(p[on] / smooth[on]))),
        "off_board": float(q[~on].sum()),
    }


def draw(family: DFM, run: loop.Run, steps: int, num: int, seed: int) -> np.ndarray:
    sample = jax.jit(
        lambda p, k: family.sampler(SamplerSettings("euler", steps))(run.network, p, k, CHUNK, {})[
            0
        ]
    )
    key, out = jax.random.key(seed), []
    for start in range(0, num, CHUNK):
        out.append(np.asarray(sample(run.state.ema_params, jax.random.fold_in(key, start))))
    return np.concatenate(out)[:num]


def evaluate(variant: tuple[str, str], args: argparse.Namespace, p: np.ndarray) -> dict:
    source, loss = variant
    work = args.workdir / f"{source}_{loss}"
    path = work / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    overrides = [
        f"--config.flow.source={source}",
        f"--config.flow.loss={loss}",
        f"--config.steps={args.steps}",
        f"--config.data.batch_size={args.batch}",
    ]
    config = apply_overrides(get_config(), overrides)
    seconds = train_to_end(config, work / "run")
    run = loop.setup(config, work / "run", read_only=True)
    held_out = toy.quantize(toy.sample_toy("checkerboard", jax.random.key(-2), args.num), BINS)
    (evaluator,) = run.family.evaluators(SamplerSettings("euler")).values()
    elbo = jax.jit(lambda params, x: evaluator(run.network, params, jax.random.key(0), {"x1": x}))
    bits = np.mean(
        [
            float(elbo(run.state.ema_params, held_out[i : i + CHUNK])["elbo_bits_per_token"])
            for i in range(0, args.num, CHUNK)
        ]
    )
    correctors = [0.0, args.corrector] if source == "mask" else [0.0]
    rows = []
    for corrector in correctors:
        family = DFM(dataclasses.replace(config.flow, corrector=corrector), run.data)
        for steps in tqdm(args.sampling_steps, desc=f"{source} {loss} corrector {corrector:g}"):
            tokens = draw(family, run, steps, args.num, seed=steps)
            rows.append({"corrector": corrector, "steps": steps, **scores(tokens, p)})
            if steps == max(args.sampling_steps) and corrector == 0.0:
                np.save(work / f"samples_{steps}.npy", tokens)
    run.checkpointer.close()
    result = {"source": source, "loss": loss, "train_seconds": seconds, "elbo_bits": bits}
    result["rows"] = rows
    path.write_text(json.dumps(result, indent=1))
    return result


def figure(results: list[dict], args: argparse.Namespace, p: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results) + 2, figsize=(3.2 * (len(results) + 2), 3.8))
    axes[0].imshow(p.T, origin="lower", cmap="viridis")
    axes[0].set_title("data (128 x 128 bins)")
    for ax, r in zip(axes[1:], results, strict=False):
        most = max(args.sampling_steps)
        tokens = np.load(args.workdir / f"{r['source']}_{r['loss']}" / f"samples_{most}.npy")
        counts = np.zeros_like(p)
        np.add.at(counts, (tokens[:, 0], tokens[:, 1]), 1)
        ax.imshow(counts.T, origin="lower", cmap="viridis")
        ax.set_title(f"{r['source']} source, {SHORT[r['loss']]}, {most} steps", fontsize=8)
    for ax in axes[:-1]:
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    for r in results:
        for corrector in sorted({row["corrector"] for row in r["rows"]}):
            rows = [row for row in r["rows"] if row["corrector"] == corrector]
            label = f"{r['source']}, {SHORT[r['loss']]}" + (", corrector" if corrector else "")
            ls = ":" if corrector else "-"
            ax.plot([x["steps"] for x in rows], [x["tv"] for x in rows], "o" + ls, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sampling steps (NFE)")
    ax.set_ylabel("total variation to data")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.workdir / "checkerboard_dfm.png", dpi=70)
    plt.close(fig)


def report(results: list[dict], floor: dict, args: argparse.Namespace) -> str:
    steps = args.sampling_steps
    head = "| source | loss | corrector | ELBO bits/token | " + " | ".join(
        f"TV / KL, {s} steps" for s in steps
    )
    lines = [head + " |", "|---" * (4 + len(steps)) + "|"]
    for r in results:
        for corrector in sorted({row["corrector"] for row in r["rows"]}):
            cells = {row["steps"]: row for row in r["rows"] if row["corrector"] == corrector}
            tv_kl = " | ".join(f"{cells[s]['tv']:.3f} / {cells[s]['kl']:.3f}" for s in steps)
            name = f"beta = {corrector:g}" if corrector else "none"
            lines.append(
                f"| {r['source']} | {r['loss'].replace('_', ' ')} | {name} | "
                f"{r['elbo_bits']:.3f} | {tv_kl} |"
            )
    lines.append(
        f"| exact data samples (floor) | | | {math.log2(BINS * BINS / 2) / 2:.3f} (entropy) | "
        + " | ".join(f"{floor['tv']:.3f} / {floor['kl']:.3f}" for _ in steps)
        + " |"
    )
    seconds = ", ".join(f"{r['train_seconds']:.0f}" for r in results)
    lines += [
        "",
        f"{len(results)} models, each {args.steps:,} steps of batch {args.batch} ({seconds} s); "
        f"{args.num:,} samples per cell; off-board fractions in results.json.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/discrete_checkerboard"))
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--num", type=int, default=60_000)
    p.add_argument("--corrector", type=float, default=1.0)
    p.add_argument(
        "--sampling-steps", type=lambda s: [int(x) for x in s.split(",")], default=[4, 16, 64]
    )
    args = p.parse_args(argv)
    if args.num % CHUNK:
        p.error(f"--num must be a multiple of {CHUNK}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    law = data_histogram()
    results = [evaluate(v, args, law) for v in VARIANTS]
    exact = toy.quantize(toy.sample_toy("checkerboard", jax.random.key(-3), args.num), BINS)
    floor = scores(np.asarray(exact), law)
    figure(results, args, law)
    text = report(results, floor, args)
    (args.workdir / "results.md").write_text(text)
    (args.workdir / "results.json").write_text(
        json.dumps({"results": results, "floor": floor}, indent=1)
    )
    print(text)
    return {"results": results, "floor": floor}


if __name__ == "__main__":
    main()

"""One- and few-step generation on 2-D toys: exact W2 to held-out points at NFE 1, 2 and 4 for
every objective of the MeanFlow family (flow-map samples, and re-noised ones at NFE 2 and 4)
against the core FM model (Euler at the same NFE, and dopri5), the same network and budget for
every method; one command:

    python -m experiments.one_step_2d.run                    # the CPU schedule below
    python -m experiments.one_step_2d.run --steps 200 --tag quick

Each (distribution, method) trains `flowjax/configs/toy2d.py` through the training system
with the overrides below (`--config.family=` the method's family); its final EMA parameters draw
`SAMPLES` points per setting, scored by exact W2 (`flowjax.metrics.wasserstein2`, POT's network
simplex) against `SAMPLES` fresh points of the distribution, the evaluation of
`experiments/tong2024_2d`. Writes results.md / results.json and a figure of samples per method
and NFE to `--workdir/<tag>`; a run's training seconds are kept in its directory, so a rerun
loads finished runs and only evaluates them.
"""

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from experiments.heldout import train_to_end
from experiments.timing import cpu_model
from flowjax import metrics
from flowjax.contracts import SamplerSettings
from flowjax.data import sample_toy
from flowjax.train import loop
from flowjax.train.config import apply_overrides, load_config

CONFIG = Path(__file__).parents[2] / "flowjax" / "configs" / "toy2d.py"
DISTRIBUTIONS = ("checkerboard", "8gaussians")
SAMPLES, NFES = 2000, (1, 2, 4)
# method -> (family, the sampler method at NFE k)
METHODS = {
    "FM (Euler)": ("cfm", "euler"),
    "MeanFlow": ("meanflow", "flow_map"),
    "Modular MeanFlow": ("modular_meanflow", "flow_map"),
    "SplitMeanFlow": ("splitmeanflow", "flow_map"),
    "shortcut": ("shortcut", "flow_map"),
    "AlphaFlow": ("alphaflow", "flow_map"),
    "SoFlow": ("soflow", "flow_map"),
    "TVM": ("tvm", "flow_map"),
    "Consistency FM": ("consistency_fm", "flow_map"),
}
CPU = [
    "--config.model.width=256",
    "--config.model.depth=4",
    "--config.data.batch_size=1024",
    "--config.log.every=200",
    "--config.log.sample_every=0",
    "--config.log.eval_every=0",
    "--config.compilation_cache=off",
]


def run_one(distribution: str, family: str, args: argparse.Namespace, work: Path) -> tuple:
    """The trained run's (family object, network, EMA params, training seconds)."""
    overrides = [
        *CPU,
        f"--config.family={family}",
        f"--config.data.distribution={distribution}",
        f"--config.steps={args.steps}",
        f"--config.checkpoint.every={args.steps}",
        f"--config.seed={args.seed}",
    ]
    config = apply_overrides(load_config(CONFIG), overrides)
    record = work / "train_seconds.json"  # a finished run is loaded, not retrained
    if not record.exists():
        record.write_text(json.dumps(train_to_end(config, work)))
    seconds = json.loads(record.read_text())
    run = loop.setup(config, work, read_only=True)
    run.checkpointer.close()
    return run.family, run.network, run.state.ema_params, seconds


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/one_step_2d"))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="cpu", help="a name for this setting's outputs")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = p.parse_args(argv)
    out = args.workdir / args.tag
    results: dict = {}
    pictures: dict = {}
    for distribution in DISTRIBUTIONS:
        test = np.asarray(sample_toy(distribution, jax.random.key(10_000 + args.seed), SAMPLES))
        for name in args.methods:
            family_name, method = METHODS[name]
            family, network, params, seconds = run_one(
                distribution, family_name, args, out / f"{distribution}_{family_name}"
            )
            settings = [(f"NFE {k}", method, k) for k in NFES]
            if family_name == "cfm":
                settings.append(("dopri5", "dopri5", 0))
            else:
                settings += [(f"renoise {k}", "renoise", k) for k in NFES[1:]]
            row = {"train_seconds": seconds}
            for label, solver, steps in settings:
                sample = jax.jit(
                    family.sampler(SamplerSettings(solver, steps=max(steps, 1))),
                    static_argnums=3,
                )
                x, stats = sample(network, params, jax.random.key(args.seed), SAMPLES, {})
                x = np.asarray(x)
                row[label] = {"w2": metrics.wasserstein2(x, test), "nfe": int(stats.nfe_batch)}
                pictures[(distribution, name, label)] = x
            results.setdefault(distribution, {})[name] = row
            print(distribution, name, {k: v for k, v in row.items() if k != "train_seconds"})
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results, args)
    (out / "results.md").write_text(text)
    figure(pictures, out / "samples.png")
    print(text)
    return results


def report(results: dict, args: argparse.Namespace) -> str:
    renoised = [f"renoise {k}" for k in NFES[1:]]
    lines = [
        "| distribution | method | W2 at NFE 1 | NFE 2 | NFE 4 | re-noised NFE 2 | NFE 4 "
        "| dopri5 (NFE) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for distribution, rows in results.items():
        for name, row in rows.items():
            cells = [f"{row[f'NFE {k}']['w2']:.3f}" for k in NFES]
            cells += [f"{row[label]['w2']:.3f}" if label in row else "-" for label in renoised]
            adaptive = row.get("dopri5")
            tail = f"{adaptive['w2']:.3f} ({adaptive['nfe']})" if adaptive else "-"
            lines.append(f"| {distribution} | {name} | {' | '.join(cells)} | {tail} |")
    seconds = {n: np.mean([r[n]["train_seconds"] for r in results.values()]) for n in args.methods}
    lines += [
        "",
        f"Exact W2 between {SAMPLES:,} samples and {SAMPLES:,} fresh points (re-noised: each "
        "jump to the data, the source drawn afresh at the next time); a 4 x 256 SiLU MLP, "
        f"{args.steps:,} steps of batch 1,024 (cosine lr 1e-3, EMA 0.999) for every method; "
        "training seconds per run: "
        + ", ".join(f"{n} {s:.0f}" for n, s in seconds.items())
        + f" on a 2-core {cpu_model()}.",
        "",
    ]
    return "\n".join(lines)


def figure(pictures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(m for _, m, _ in pictures))
    columns = [(d, f"NFE {k}") for d in dict.fromkeys(d for d, _, _ in pictures) for k in NFES]
    fig, axes = plt.subplots(
        len(methods), len(columns), figsize=(1.6 * len(columns), 1.6 * len(methods)), squeeze=False
    )
    for i, method in enumerate(methods):
        for j, (distribution, label) in enumerate(columns):
            ax = axes[i, j]
            x = pictures[(distribution, method, label)]
            ax.scatter(x[:, 0], x[:, 1], s=0.3, alpha=0.5, rasterized=True)
            ax.set_xlim(-5, 5), ax.set_ylim(-5, 5)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{distribution}, {label}", fontsize=7)
            if j == 0:
                ax.set_ylabel(method, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()

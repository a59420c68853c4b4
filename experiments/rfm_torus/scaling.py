"""Riemannian FM on high-dimensional tori: the log-likelihood per dimension of a wrapped normal
on T^d against d (the RFM paper's Fig. 5 study: its claim is no significant drop as d grows),
beside the target's own log-density per dimension; one command:

    python -m experiments.rfm_torus.scaling                      # d = 2 ... 128, CPU budget
    python -m experiments.rfm_torus.scaling --dims 2 8 --steps 200 --tag quick

The target is the RFM code's `wrapped_torus` data: one wrapped normal of scale 0.2 around a
uniform random centre. For each d, `POINTS` samples are written as a `.npy` of angles
(`data.kind=angles`), the same run as `experiments.rfm_torus.run` trains (the earth CPU
schedule, `experiments.rfm_earth.run.run_one`, with the network and budget below, equal for
every d), and the best checkpoint's EMA parameters are scored on the test split with the
exact divergence. Writes results.md / results.json and the figure to `--workdir/<tag>`.
"""

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from experiments.rfm_earth.run import run_one
from experiments.timing import cpu_model
from flowjax import manifolds, sources

SCALE, POINTS = 0.2, 10_000
NETWORK = ["--config.model.width=512", "--config.model.depth=3"]


def target(d: int, seed: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The centre `[d]` and `POINTS` samples `[N, d]` of the wrapped normal, saved to `path`."""
    torus = manifolds.FlatTorus(d)
    k_centre, k_points = jax.random.split(jax.random.key(seed))
    centre = torus.uniform(k_centre, ())
    points = sources.WrappedNormal(torus, centre, SCALE).sample(k_points, (POINTS, d))
    np.save(path, np.asarray(points))
    return np.asarray(centre), np.asarray(points)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/rfm_torus_scaling"))
    p.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="cpu", help="a name for this setting's outputs")
    args = p.parse_args(argv)
    results = {}
    for d in args.dims:
        work = args.workdir / args.tag / f"d{d}"
        work.mkdir(parents=True, exist_ok=True)
        centre, points = target(d, args.seed, work / "target.npy")
        data = ["--config.data.kind=angles", f"--config.data.path={work / 'target.npy'}"]
        result = run_one([*data, *NETWORK], args.seed, args, work, f"T^{d}")
        torus = manifolds.FlatTorus(d)
        true = -np.asarray(torus.log_wrapped_normal(centre, SCALE, points))
        result["true_nll"] = float(true.mean())  # all points: the test split is a sample
        result["dim"] = d
        results[d] = result
        print(
            f"d={d}: log-likelihood per dimension {-result['test_nll'] / d:.3f} (target "
            f"{-result['true_nll'] / d:.3f})"
        )
    out = args.workdir / args.tag
    (out / "results.json").write_text(json.dumps(results, indent=1))
    text = report(results, args)
    (out / "results.md").write_text(text)
    figure(results, out / "scaling.png")
    print(text)
    return results


def report(results: dict, args: argparse.Namespace) -> str:
    lines = [
        "| d | log-likelihood per dimension, RFM (this repo) | the target's own | gap |",
        "|---|---|---|---|",
    ]
    for d, r in results.items():
        model, true = -r["test_nll"] / d, -r["true_nll"] / d
        lines.append(f"| {d} | {model:.3f} | {true:.3f} | {true - model:.3f} |")
    first = next(iter(results.values()))
    seconds = np.mean([r["train_seconds"] for r in results.values()])
    lines += [
        "",
        f"Wrapped normal of scale {SCALE} (the target's log-density per dimension is "
        f"-log(0.2 sqrt(2 pi e)) = {-np.log(SCALE * np.sqrt(2 * np.pi * np.e)):.3f} up to the "
        f"winding terms); {POINTS:,} points per d ({first['test_points']:,} test), a 3 x 512 "
        f"SiLU MLP on (cos, sin) features, {args.steps:,} steps of batch 512 for every d; "
        f"{seconds:.0f} s of training per d on average on a 2-core {cpu_model()}. "
        "Uniform law: -log 2 pi = -1.838 per dimension.",
        "",
    ]
    return "\n".join(lines)


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(results)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(dims, [-results[d]["test_nll"] / d for d in dims], "o-", label="RFM (this repo)")
    ax.plot(dims, [-results[d]["true_nll"] / d for d in dims], "k:", label="target density")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dimension d"), ax.set_ylabel("log-likelihood per dimension (nats)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()

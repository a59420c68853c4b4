"""Multisample Flow Matching on the 2-D checkerboard (Pooladian et al. 2023): the independent,
entropic (Sinkhorn, "BatchEOT") and exact ("BatchOT") minibatch couplings compared by the final
joint CFM objective and by the Euler steps each flow needs to reach a fixed W2.

    python -m experiments.pooladian2023_checkerboard.run [--steps 20000] [--regs 0.1 1.0]

Each coupling trains the same 4x256 SiLU MLP on the CondOT path (sigma = 0), Adam with a
cosine decay from 1e-3, batch 256, fresh checkerboard (FFJORD's, on [-4, 4]^2) and N(0, I)
samples every step. The joint CFM objective is E ||v(x_t, t) - (x1 - x0)||^2 of the trained
field on 100 held-out batches paired by its own coupling. W2 (exact) is between 4,000 Euler
samples and 4,000 held-out data points (`--points`); the target W2 is 1.2x the worst
coupling's W2 at 128 steps, so that every flow reaches it. Writes results.md and samples.png
to the workdir.
"""

import argparse
import time
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from flowjax import couplings, losses, metrics, models, paths, solvers
from flowjax.data import sample_toy

PUBLISHED = {"independent": 10.72, "sinkhorn": 0.57, "exact": 0.24}  # Pooladian et al. 2023
EULER_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128)
BATCH = 256
PATH = paths.AffinePath(paths.CondOT())


def coupling_table(regs: list[float]) -> dict[str, couplings.Coupling]:
    """Row label -> coupling."""
    return {
        "independent": couplings.independent,
        **{f"sinkhorn (reg={r:g})": couplings.ot_coupling("sinkhorn", reg=r) for r in regs},
        "exact": couplings.ot_coupling("exact"),
    }


def train(coupling: couplings.Coupling, steps: int, seed: int) -> tuple:
    """`(v, params)` after `steps` Adam steps of CFM with `coupling`."""
    v, params = models.functional(models.MLP(2, width=256, depth=4, rngs=nnx.Rngs(seed)))
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-3, steps, alpha=0.01))
    chunk = 100

    def one(carry: tuple, key: jax.Array) -> tuple:
        params, opt_state = carry
        k_data, k_loss = jax.random.split(key)
        x1 = sample_toy("checkerboard", k_data, BATCH)
        grads = jax.grad(
            lambda p: losses.cfm_loss(v, p, k_loss, x1, path=PATH, coupling=coupling)[0]
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    run_chunk = jax.jit(lambda c, k: jax.lax.scan(one, c, jax.random.split(k, chunk))[0])
    carry = (params, optimizer.init(params))
    key = jax.random.key(seed)
    for i in tqdm(range(steps // chunk), desc="train", unit=f"x{chunk} steps", leave=False):
        carry = run_chunk(carry, jax.random.fold_in(key, i))
    return v, carry[0]


def evaluate(v, params, coupling: couplings.Coupling, seed: int, points: int) -> dict:  # noqa: ANN001
    """Joint CFM objective on held-out pairs; W2 of `points` Euler samples for each step
    count against as many held-out data points."""
    k0, k1, k_obj, k_noise, k_test = jax.random.split(jax.random.key(10_000 + seed), 5)
    n = 100 * BATCH
    x0, x1 = jax.random.normal(k0, (n, 2)), sample_toy("checkerboard", k1, n)
    objective = metrics.joint_cfm_objective(
        v, params, k_obj, x0, x1, path=PATH, coupling=coupling, batch_size=BATCH
    )
    noise = jax.random.normal(k_noise, (points, 2))
    test = sample_toy("checkerboard", k_test, points)
    w2, samples = {}, {}
    for steps in EULER_STEPS:
        y = np.asarray(solvers.sample(v, params, noise, method="euler", num_steps=steps).y)
        w2[steps], samples[steps] = metrics.wasserstein2(y, test), y
    return {"objective": float(objective), "w2": w2, "samples": samples}


def steps_to_reach(w2: dict[int, float], target: float) -> int | None:
    return next((s for s in EULER_STEPS if w2[s] <= target), None)


def report(results: dict[str, dict], target: float, steps: int, seconds: float) -> str:
    lines = [
        f"{steps} training steps per coupling, batch {BATCH}; target W2 = {target:.3f} "
        f"(1.2x the worst W2 at {EULER_STEPS[-1]} Euler steps)",
        "",
        "| coupling | joint CFM objective (ours) | published | Euler steps to W2 <= target | "
        + " | ".join(f"W2 @ {s}" for s in (1, 2, 4, 8, 128))
        + " |",
        "|---|---|---|---|" + "---|" * 5,
    ]
    for name, r in results.items():
        published = PUBLISHED["sinkhorn" if name.startswith("sinkhorn") else name]
        need = steps_to_reach(r["w2"], target)
        w2 = " | ".join(f"{r['w2'][s]:.3f}" for s in (1, 2, 4, 8, 128))
        lines.append(
            f"| {name} | {r['objective']:.3f} | {published:.2f} | "
            f"{need if need is not None else '>' + str(EULER_STEPS[-1])} | {w2} |"
        )
    lines += ["", f"wall time: {seconds:.0f} s"]
    return "\n".join(lines)


def figure(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = (1, 2, 4, 8, 128)
    fig, axes = plt.subplots(
        len(results), len(shown) + 1, figsize=(2.6 * (len(shown) + 1), 2.6 * len(results))
    )
    for i, (name, r) in enumerate(results.items()):
        for j, s in enumerate(shown):
            ax = axes[i, j]
            ax.scatter(*r["samples"][s].T, s=0.5, alpha=0.4)
            ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), xticks=[], yticks=[])
            ax.set_title(f"{s} Euler step{'s' if s > 1 else ''}", fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
        ax = axes[i, -1]
        ax.loglog(EULER_STEPS, [r["w2"][s] for s in EULER_STEPS], "o-", ms=3)
        ax.set_title("W2 vs Euler steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--regs", type=float, nargs="+", default=[0.1, 1.0], help="Sinkhorn reg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--points", type=int, default=4000, help="samples per W2 evaluation")
    p.add_argument("--workdir", type=Path, default=Path("work/pooladian2023_checkerboard"))
    args = p.parse_args(argv)
    if args.steps % 100:
        p.error("--steps must be a multiple of 100")
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {}
    for name, coupling in coupling_table(args.regs).items():
        v, params = train(coupling, args.steps, args.seed)
        results[name] = evaluate(v, params, coupling, args.seed, args.points)
        print(f"{name}: joint CFM objective {results[name]['objective']:.3f}", flush=True)
    target = 1.2 * max(r["w2"][EULER_STEPS[-1]] for r in results.values())
    text = report(results, target, args.steps, time.perf_counter() - start)
    (args.workdir / "results.md").write_text(text + "\n")
    figure(results, args.workdir / "samples.png")
    print(text)
    return {"results": results, "table": text, "target": target}


if __name__ == "__main__":
    main()

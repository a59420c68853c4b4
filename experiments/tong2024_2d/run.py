"""The 2-D benchmark of Tong et al. (TMLR 2024), as rerun in [SF]^2M Table 2: W2 and normalized
path energy (NPE) of OT-CFM, SB-CFM, RF, I-CFM and FM on four tasks, 5 seeds, one command.

    python -m experiments.tong2024_2d.run [--seeds 5] [--steps 20000] [--jobs 2]
    python -m experiments.tong2024_2d.run --seeds 1 --steps 300 --tasks gaussian-moons

Protocol (Tong et al.; see README.md): 10,000 training points per distribution, 1,000 held-out
test points; a 3x64 SELU MLP on [x, t]; AdamW (lr 1e-3, weight decay 1e-5), batch 512, 20,000
steps; sigma = 0.1 (SB-CFM 1.0); evaluation with 100 Euler steps from the test sources: W2
between generated and test targets, NPE = |path energy - W2^2(test sources, test targets)| /
W2^2. RF is 2-rectified flow: I-CFM (sigma 0), then the same training on its ODE's pairs.
Each run's result is a JSON file in the workdir (reruns skip finished runs); the table
(published beside ours) goes to results.md and the figure to samples.png.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from experiments.tong2024_2d import published

METHOD_KEYS = {"OT-CFM": "otcfm", "SB-CFM": "sbcfm", "RF": "icfm", "I-CFM": "icfm", "FM": "fm"}
SOURCES = {"gaussian": None, "moons": "moons_cfm"}
TARGETS = {"8gaussians": "8gaussians_cfm", "moons": "moons_cfm", "scurve": "scurve_cfm"}


def applies(task: str, method: str) -> bool:
    """FM needs a Gaussian source; SB-CFM was not run on moons -> 8gaussians."""
    return not (task.startswith("moons") and method in ("FM", "SB-CFM"))


def _worker_init() -> None:
    """One core per worker process: XLA must not spread each run over both cores."""
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def datasets(task: str, seed: int) -> dict[str, np.ndarray]:
    """Train (10,000) and test (1,000) points of the task's source and target."""
    import jax

    from flowjax.data import sample_toy

    source, target = task.split("-")
    key = jax.random.key(1000 + seed)
    ks, kt = jax.random.split(key)

    def draw(name: str | None, k: jax.Array) -> np.ndarray:
        if name is None:
            return np.asarray(jax.random.normal(k, (11_000, 2)))
        return np.asarray(sample_toy(name, k, 11_000))

    x0, x1 = draw(SOURCES[source], ks), draw(TARGETS[target], kt)
    return {
        "x0_train": x0[:10_000],
        "x0_test": x0[10_000:],
        "x1_train": x1[:10_000],
        "x1_test": x1[10_000:],
    }


def train(
    method: str,
    data: dict,
    x0_pairs: np.ndarray | None,
    seed: int,
    steps: int,
    gaussian_source: bool,
) -> tuple:
    """Train one model; `x0_pairs` (RF's second stage) fixes the source of each target point;
    a Gaussian source is sampled afresh each step, a data source from its training points."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from flowjax import losses, matchers, models

    sigma = 1.0 if method == "SB-CFM" else (0.0 if method == "RF" else 0.1)
    m = matchers.matcher(METHOD_KEYS[method], sigma)
    v, params = models.functional(
        models.MLP(2, width=64, depth=3, activation="selu", rngs=nnx.Rngs(seed))
    )
    optimizer = optax.adamw(1e-3, weight_decay=1e-5)
    x0_train, x1_train = jnp.asarray(data["x0_train"]), jnp.asarray(data["x1_train"])
    chunk = 100

    def one(carry, key):  # noqa: ANN001
        params, opt_state = carry
        k_idx, k_src, k_loss = jax.random.split(key, 3)
        idx = jax.random.choice(k_idx, x1_train.shape[0], (512,), replace=False)
        if x0_pairs is not None:
            x0 = jnp.asarray(x0_pairs)[idx]
        elif gaussian_source:
            x0 = jax.random.normal(k_src, (512, 2))
        else:
            x0 = x0_train[jax.random.choice(k_src, x0_train.shape[0], (512,), replace=False)]
        loss_fn = lambda p: losses.cfm_loss(  # noqa: E731
            v, p, k_loss, x1_train[idx], x0=x0, path=m.path, coupling=m.coupling
        )[0]
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    run_chunk = jax.jit(lambda c, k: jax.lax.scan(one, c, jax.random.split(k, chunk)))
    carry = (params, optimizer.init(params))
    key = jax.random.key(seed)
    for i in range(steps // chunk):
        carry, _ = run_chunk(carry, jax.random.fold_in(key, i))
    return v, carry[0]


def evaluate(v, params, data: dict) -> dict:  # noqa: ANN001
    import jax.numpy as jnp

    from flowjax import metrics, solvers

    x0, x1 = jnp.asarray(data["x0_test"]), data["x1_test"]
    grid = jnp.linspace(0.0, 1.0, 101)
    sol = solvers.sample(v, params, x0, method="euler", num_steps=100, save_at=grid)
    generated = np.asarray(sol.y)
    w2 = metrics.wasserstein2(generated, x1)
    energy = float(metrics.path_energy(v, params, x0, num_steps=100))
    w2_data = metrics.wasserstein2(np.asarray(x0), x1)
    return {
        "w2": w2,
        "npe": metrics.normalized_path_energy(energy, w2_data),
        "path_energy": energy,
        "w2_test_sets": w2_data,
        "samples": generated.tolist(),
        "trajectories": np.asarray(sol.ys[:, :25]).tolist(),
    }


def run_one(task: str, method: str, seed: int, steps: int, out: str) -> str:
    """Train and evaluate one (task, method, seed); write its JSON; return a summary line."""
    import jax.numpy as jnp

    from flowjax.matchers import reflow_pairs

    start = time.perf_counter()
    data = datasets(task, seed)
    gaussian = task.startswith("gaussian")
    v, params = train(method, data, None, seed, steps, gaussian)
    if method == "RF":  # 2-rectified flow: retrain on the first model's ODE pairs
        if gaussian:
            import jax

            source = np.asarray(jax.random.normal(jax.random.key(2000 + seed), (10_000, 2)))
        else:
            source = data["x0_train"]
        _, targets = reflow_pairs(v, params, jnp.asarray(source))
        pairs = {**data, "x1_train": np.asarray(targets)}
        v, params = train(method, pairs, source, seed + 100, steps, gaussian)
    result = evaluate(v, params, data)
    result.update(
        task=task, method=method, seed=seed, steps=steps, seconds=time.perf_counter() - start
    )
    Path(out).write_text(json.dumps(result))
    w2, npe, seconds = result["w2"], result["npe"], result["seconds"]
    return f"{task:>20} {method:>7} seed {seed}: W2 {w2:.3f} NPE {npe:.3f} ({seconds:.0f} s)"


def within_target(mean: float, published_mean: float, published_std: float) -> bool:
    """Within two published standard deviations, or 15%, of the published mean."""
    return abs(mean - published_mean) <= max(2 * published_std, 0.15 * published_mean)


def sampling_floor(task: str, seeds: int) -> tuple[float, float]:
    """W2 between each seed's 1,000 test targets and 1,000 fresh points of the same target
    (mean, std over seeds): what a perfect model scores under this protocol."""
    import jax

    from flowjax import metrics
    from flowjax.data import sample_toy

    name = TARGETS[task.split("-")[1]]
    w2 = [
        metrics.wasserstein2(
            datasets(task, s)["x1_test"],
            np.asarray(sample_toy(name, jax.random.key(5000 + s), 1000)),
        )
        for s in range(seeds)
    ]
    return float(np.mean(w2)), float(np.std(w2))


def table(
    results: list[dict],
    tasks: list[str],
    methods: list[str],
    metric: str,
    seeds: int,
    floor: dict[str, tuple[float, float]] | None = None,
) -> str:
    """Ours (mean ± std over seeds; n = runs when fewer than `seeds` finished) beside the
    published value, ✗ where outside the target."""
    reference = published.W2 if metric == "w2" else published.NPE
    head = f"| {metric.upper()} (ours / published) | " + " | ".join(tasks) + " |"
    lines = [head, "|---|" + "---|" * len(tasks)]
    if floor:
        cells = " | ".join(f"{floor[t][0]:.3f}±{floor[t][1]:.3f}" for t in tasks)
        lines.append(f"| perfect model (two target samples) | {cells} |")
    for method in methods:
        cells = []
        for task in tasks:
            values = [r[metric] for r in results if r["task"] == task and r["method"] == method]
            ref = reference[method][published.TASKS.index(task)]
            if not values or ref is None:
                cells.append("—" if ref is None else f"— / {ref[0]:.3f}±{ref[1]:.3f}")
                continue
            mean, std = float(np.mean(values)), float(np.std(values))
            mark = "" if within_target(mean, *ref) else " ✗"
            count = f" (n={len(values)})" if len(values) < seeds else ""
            cells.append(f"{mean:.3f}±{std:.3f} / {ref[0]:.3f}±{ref[1]:.3f}{mark}{count}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(results: list[dict], tasks: list[str], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(tasks), len(methods), figsize=(3 * len(methods), 3 * len(tasks)), squeeze=False
    )
    for i, task in enumerate(tasks):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            run = min(
                (r for r in results if r["task"] == task and r["method"] == method),
                key=lambda r: r["seed"],
                default=None,
            )
            if i == 0:
                ax.set_title(method)
            if j == 0:
                ax.set_ylabel(task)
            if run is None:
                continue
            samples, traj = np.asarray(run["samples"]), np.asarray(run["trajectories"])
            ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.5, c="tab:blue")
            for k in range(traj.shape[1]):
                ax.plot(traj[:, k, 0], traj[:, k, 1], lw=0.5, c="tab:red", alpha=0.7)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--tasks", nargs="+", default=list(published.TASKS), choices=published.TASKS)
    p.add_argument(
        "--methods", nargs="+", default=list(published.METHODS), choices=published.METHODS
    )
    p.add_argument("--jobs", type=int, default=2, help="worker processes (one core each)")
    p.add_argument("--workdir", type=Path, default=Path("work/tong2024_2d"))
    p.add_argument(
        "--report", action="store_true", help="only write the table of the runs finished so far"
    )
    args = p.parse_args(argv)
    if args.steps % 100:
        p.error("--steps must be a multiple of 100")
    runs_dir = args.workdir / f"runs_{args.steps}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    todo = [
        (t, m, s)
        for t in args.tasks
        for m in args.methods
        for s in range(args.seeds)
        if applies(t, m) and not (runs_dir / f"{t}_{m}_{s}.json").exists() and not args.report
    ]
    # the slowest runs (exact OT every step) first, so the two workers finish together
    todo.sort(key=lambda r: r[1] not in ("OT-CFM", "SB-CFM", "RF"))
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    # a fresh process per run: compiled programs of finished runs do not pile up in memory
    with concurrent.futures.ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=_worker_init, max_tasks_per_child=1
    ) as pool:
        futures = [
            pool.submit(run_one, t, m, s, args.steps, str(runs_dir / f"{t}_{m}_{s}.json"))
            for t, m, s in todo
        ]
        for n, future in enumerate(concurrent.futures.as_completed(futures), 1):
            print(f"[{n}/{len(futures)}] {future.result()}", flush=True)
    results = [json.loads(f.read_text()) for f in sorted(runs_dir.glob("*.json"))]
    results = [
        r
        for r in results
        if r["task"] in args.tasks and r["method"] in args.methods and r["seed"] < args.seeds
    ]
    text = "\n\n".join(
        [
            f"{args.seeds} seed(s), {args.steps} steps; ✗ = outside two published std or 15% "
            "of the published mean",
            table(
                results,
                args.tasks,
                args.methods,
                "w2",
                args.seeds,
                {t: sampling_floor(t, args.seeds) for t in args.tasks},
            ),
            table(results, args.tasks, args.methods, "npe", args.seeds),
            f"wall time of this invocation: {time.perf_counter() - start:.0f} s "
            f"({sum(r['seconds'] for r in results):.0f} s of runs)",
        ]
    )
    (args.workdir / "results.md").write_text(text + "\n")
    figure(results, args.tasks, args.methods, args.workdir / "samples.png")
    print(text)
    return {"results": results, "table": text}


if __name__ == "__main__":
    main()

"""The simplex-dimension toy of Dirichlet flow matching (Stark et al. 2024): sequences of 4
tokens, each position with its own random categorical law over K categories, learned by four
token families as K grows; KL of the generated marginals to the true ones, one command:

    python -m experiments.dirichlet_simplex.run                 # K = 4 ... 160
    python -m experiments.dirichlet_simplex.run --ks 4,40 --steps 500   # a quick check

For each K (laws `q [4, K]` drawn from Dir(1) with seed K) and each family: Dirichlet FM
(`dirichlet`, alpha_max 8), linear-path simplex FM (`catflow` with the uniform-Dirichlet
source), CatFlow (`catflow`, Gaussian source) and mask discrete FM (`dfm`, kappa_t = t), each
with the same 3 x 256 SiLU MLP (on one-hot or simplex inputs; a token MLP for DFM), trained by
the family's own loss (Adam, lr 1e-3, batch 512, fresh samples of q each step), then
`--num` samples by the family's sampler (`--sampling-steps` steps; an ODE for the first three,
the CTMC sampler for DFM) and KL(q || empirical) per position (each count + 1/2), averaged
over the 4 positions. The same KL of `--num` exact draws of q is the sampling-noise floor.
Each K's cells are cached in the workdir (a rerun resumes); writes results.md, results.json
and kl_vs_k.png there.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from flowjax import families, models
from flowjax.contracts import DataSpec, SamplerSettings

LENGTH = 4
METHODS = {
    "Dirichlet FM": ("dirichlet", {}),
    "linear simplex FM": ("catflow", {"source": "simplex"}),
    "CatFlow": ("catflow", {}),
    "mask DFM": ("dfm", {}),
}


def network(family: object, k: int) -> tuple:
    """The same 3 x 256 SiLU MLP for every family (tokens embedded for DFM)."""
    spec = family.network
    rngs = nnx.Rngs(0)
    if spec.input_dtype == "int32":
        net = models.TokenMLP((LENGTH,), vocab_size=k, width=256, depth=3, rngs=rngs)
    else:
        net = models.MLP(spec.input_shape, width=256, depth=3, activation="silu", rngs=rngs)
    return models.functional(net)


def kl_per_position(tokens: np.ndarray, q: np.ndarray) -> float:
    """Mean over positions of KL(q || counts + 1/2, normalized)."""
    out = []
    for i in range(q.shape[0]):
        counts = np.bincount(tokens[:, i], minlength=q.shape[1]) + 0.5
        p = counts / counts.sum()
        out.append(float(np.sum(q[i] * np.log(q[i] / p))))
    return float(np.mean(out))


def train_and_sample(name: str, k: int, q: np.ndarray, args: argparse.Namespace) -> dict:
    kind, options = METHODS[name]
    cls = families.get(kind)
    family = cls(cls.Config(**options), DataSpec((LENGTH,), "int32", vocab_size=k))
    v, params = network(family, k)
    optimizer = optax.adam(1e-3)
    log_q = jnp.log(jnp.asarray(q))

    @jax.jit
    def step(params, opt_state, key):  # noqa: ANN001
        kx, kl = jax.random.split(key)
        x1 = jax.random.categorical(kx, log_q, axis=-1, shape=(args.batch, LENGTH))
        loss, grads = jax.value_and_grad(lambda p: family.loss(v, p, kl, {"x1": x1})[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state, key = optimizer.init(params), jax.random.key(k)
    start = time.perf_counter()
    for i in range(args.steps):
        params, opt_state, loss = step(params, opt_state, jax.random.fold_in(key, i))
    seconds = time.perf_counter() - start
    method = "euler"
    sample = jax.jit(
        lambda p, key: family.sampler(SamplerSettings(method, args.sampling_steps))(
            v, p, key, args.num, {}
        )[0]
    )
    tokens = np.asarray(sample(params, jax.random.key(1)))
    return {"kl": kl_per_position(tokens, q), "loss": float(loss), "train_seconds": seconds}


def figure(results: dict, floor: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ks = sorted(int(k) for k in floor)
    for name in METHODS:
        ax.plot(ks, [results[str(k)][name]["kl"] for k in ks], "o-", label=name)
    ax.plot(ks, [floor[str(k)] for k in ks], "k:", label="exact samples (floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("categories K")
    ax.set_ylabel("KL(q || samples), mean per position")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("work/dirichlet_simplex"))
    p.add_argument(
        "--ks", type=lambda s: [int(x) for x in s.split(",")], default=[4, 20, 40, 80, 160]
    )
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--num", type=int, default=10_000)
    p.add_argument("--sampling-steps", type=int, default=50)
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results, floor = {}, {}
    for k in args.ks:
        q = np.random.default_rng(k).dirichlet(np.ones(k), size=LENGTH)
        exact = np.stack(
            [np.random.default_rng(k + 1).choice(k, args.num, p=row) for row in q], axis=1
        )
        floor[str(k)] = kl_per_position(exact, q)
        cache = args.workdir / f"k{k}_{args.steps}_{args.num}_{args.sampling_steps}.json"
        if not cache.is_file():
            cells = {n: train_and_sample(n, k, q, args) for n in tqdm(METHODS, desc=f"K = {k}")}
            cache.write_text(json.dumps(cells, indent=1))
        results[str(k)] = json.loads(cache.read_text())
    lines = [
        "| K | " + " | ".join(METHODS) + " | exact samples (floor) |",
        "|---" * (len(METHODS) + 2) + "|",
        *(
            f"| {k} | "
            + " | ".join(f"{results[str(k)][n]['kl']:.4f}" for n in METHODS)
            + f" | {floor[str(k)]:.4f} |"
            for k in args.ks
        ),
        "",
        f"{args.steps} training steps of batch {args.batch} per cell; {args.num:,} samples by "
        f"{args.sampling_steps} Euler steps (CTMC Euler for mask DFM).",
    ]
    text = "\n".join(lines) + "\n"
    (args.workdir / "results.md").write_text(text)
    (args.workdir / "results.json").write_text(
        json.dumps({"results": results, "floor": floor}, indent=1)
    )
    figure(results, floor, args.workdir / "kl_vs_k.png")
    print(text)
    return {"results": results, "floor": floor}


if __name__ == "__main__":
    main()

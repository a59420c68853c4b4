"""flowjax side of the discrete benchmark; prints one JSON object (see run.py).

Per workload: `TokenMLP` posterior, mixture path kappa_t = t^2, the generalized-KL loss
(`losses.dfm_loss`; with the mask source, the posterior of unmasked tokens imposed by
`paths.carry_unmasked`, as the DFM family does), Adam; a jitted step fed each batch from the
host. Sampling: `solvers.ctmc_euler`, 64 steps, one jitted call (a `lax.scan`).
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import flowjax
from experiments.bench_discrete.workloads import (
    LR,
    POLYNOMIAL_N,
    SAMPLING_STEPS,
    TIME_DIM,
    WORKLOADS,
)
from experiments.timing import timed
from flowjax import losses, models, paths, solvers, sources


def build(w: dict) -> tuple:
    net = models.TokenMLP(
        (w["length"],),
        vocab_size=w["vocab"],
        width=w["width"],
        depth=w["depth"],
        embed_dim=w["embed_dim"],
        activation="silu",
        time_dim=TIME_DIM,
        rngs=nnx.Rngs(0),
    )
    v, params = models.functional(net)
    mask = w["source"] == "mask"
    source = sources.MaskToken(w["vocab"]) if mask else sources.UniformTokens(w["vocab"])
    field = paths.carry_unmasked(v, w["vocab"]) if mask else v
    return field, params, source, paths.MixturePath(paths.Polynomial(POLYNOMIAL_N))


def train_rate(w: dict, batches: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """(steps/s, compile seconds, final loss) over the batches `[steps, B, L]`."""
    field, params, source, path = build(w)
    optimizer = optax.adam(LR)

    @jax.jit
    def step(params, opt_state, key, x1):  # noqa: ANN001
        def loss(p):  # noqa: ANN001
            return losses.dfm_loss(
                field, p, key, x1, path=path, source=source, loss="generalized_kl"
            )[0]

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    opt_state = optimizer.init(params)
    key = jax.random.key(0)
    start = time.perf_counter()
    jax.block_until_ready(step(params, opt_state, key, batches[0]))
    compile_s = time.perf_counter() - start
    state = [params, opt_state, None]

    def run() -> jax.Array:
        for i, x1 in enumerate(batches):
            state[0], state[1], state[2] = step(state[0], state[1], jax.random.fold_in(key, i), x1)
        return state[2]

    seconds = timed(run, repeats, jax.block_until_ready)
    return len(batches) / statistics.median(seconds), compile_s, float(state[2])


def sample_rate(w: dict, repeats: int) -> tuple[float, float]:
    """(tokens/s, compile seconds) of `samples` CTMC Euler samples of 64 steps."""
    field, params, source, path = build(w)
    shape = (w["samples"], w["length"])

    @jax.jit
    def sample(params, key):  # noqa: ANN001
        k0, k1 = jax.random.split(key)
        x0 = source.sample(k0, shape, jnp.int32)
        mask = w["vocab"] if w["source"] == "mask" else None
        return solvers.ctmc_euler(
            field, params, k1, x0, path=path, num_steps=SAMPLING_STEPS, mask=mask
        ).y

    start = time.perf_counter()
    jax.block_until_ready(sample(params, jax.random.key(0)))
    compile_s = time.perf_counter() - start
    keys = iter(jax.random.split(jax.random.key(1), repeats))
    seconds = timed(lambda: sample(params, next(keys)), repeats, jax.block_until_ready)
    return shape[0] * shape[1] / statistics.median(seconds), compile_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    flowjax.keep_heap()  # as `flowjax train` does on CPU devices
    data = np.load(args.data)
    out = {"jax": jax.__version__, "train": {}, "sample": {}, "compile_s": {}, "params": {}}
    for name, w in WORKLOADS.items():
        rate, compile_s, loss = train_rate(w, data[name], args.repeats)
        out["train"][name] = {"rate": rate, "loss": loss}
        out["sample"][name], sample_compile = sample_rate(w, args.repeats)
        out["compile_s"][name] = {"train": compile_s, "sample": sample_compile}
        out["params"][name] = models.parameter_count(build(w)[1])
    print(json.dumps(out))


if __name__ == "__main__":
    main()

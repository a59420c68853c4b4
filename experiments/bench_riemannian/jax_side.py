"""flowjax side of the Riemannian benchmark; prints one JSON object (see run.py).

Per workload: the MLP of `workloads.py` (`models.MLP`, raw time), `paths.GeodesicPath` and
`losses.rfm_loss` (the field made tangent, the metric loss) with Adam, a jitted step fed each
batch from the host; `solvers.manifold_sample` (projected midpoint, one jitted `lax.scan`);
`solvers.log_likelihood` of the tangent field with the exact divergence, midpoint steps.
"""

import argparse
import json
import statistics
import time

import jax
import numpy as np
import optax
from flax import nnx

from experiments.bench_riemannian.workloads import (
    DEPTH,
    LIKELIHOOD_STEPS,
    LR,
    SAMPLING_STEPS,
    WIDTH,
    WORKLOADS,
)
from experiments.timing import timed
from flowjax import losses, manifolds, models, paths, solvers, sources


def build(w: dict) -> tuple:
    net = models.MLP(w["dim"], width=WIDTH, depth=DEPTH, activation="silu", rngs=nnx.Rngs(0))
    v, params = models.functional(net)
    manifold = manifolds.by_name(w["manifold"], w["dim"])
    return v, params, manifold, sources.ManifoldUniform(manifold)


def compiled(fn, *args) -> tuple:  # noqa: ANN001
    """(the jitted fn compiled for args, compile seconds)."""
    start = time.perf_counter()
    out = jax.jit(fn).lower(*args).compile()
    return out, time.perf_counter() - start


def train_rate(w: dict, batches: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """(steps/s, compile seconds, final loss) over the batches `[steps, B, D]`."""
    v, params, manifold, source = build(w)
    path, optimizer = paths.GeodesicPath(manifold), optax.adam(LR)

    def step(params, opt_state, key, x1):  # noqa: ANN001
        def loss(p):  # noqa: ANN001
            return losses.rfm_loss(v, p, key, x1, path=path, source=source)[0]

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    opt_state, key = optimizer.init(params), jax.random.key(0)
    step, compile_s = compiled(step, params, opt_state, key, batches[0])
    state = [params, opt_state, None]

    def run() -> jax.Array:
        for i, x1 in enumerate(batches):
            state[0], state[1], state[2] = step(state[0], state[1], jax.random.fold_in(key, i), x1)
        return state[2]

    seconds = timed(run, repeats, jax.block_until_ready)
    return len(batches) / statistics.median(seconds), compile_s, float(state[2])


def sample_rate(w: dict, repeats: int) -> tuple[float, float]:
    """(points/s, compile seconds) of `samples` points by projected midpoint steps."""
    v, params, manifold, source = build(w)

    def sample(params, key):  # noqa: ANN001
        x0 = source.sample(key, (w["samples"], w["dim"]))
        return solvers.manifold_sample(
            v, params, x0, manifold=manifold, method="midpoint", num_steps=SAMPLING_STEPS
        ).y

    sample, compile_s = compiled(sample, params, jax.random.key(0))
    keys = iter(jax.random.split(jax.random.key(1), repeats))
    seconds = timed(lambda: sample(params, next(keys)), repeats, jax.block_until_ready)
    return w["samples"] / statistics.median(seconds), compile_s


def network_bound(w: dict, repeats: int) -> float:
    """Points/s of the sampling if its midpoint steps cost their network calls alone: `samples`
    over 2 x `SAMPLING_STEPS` times one call of the MLP on `samples` points (median of 10)."""
    v, params, _, source = build(w)
    x = source.sample(jax.random.key(0), (w["samples"], w["dim"]))
    t = jax.numpy.full((w["samples"],), 0.5)
    call, _ = compiled(v, params, x, t)
    call(params, x, t).block_until_ready()
    seconds = timed(lambda: call(params, x, t), 10 * repeats, jax.block_until_ready)
    return w["samples"] / (2 * SAMPLING_STEPS * statistics.median(seconds))


def likelihood_rate(w: dict, x1: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """(points/s, compile seconds, mean log-likelihood): midpoint steps, exact divergence."""
    v, params, manifold, source = build(w)
    field = manifolds.tangent_field(v, manifold)

    def likelihood(params, x1):  # noqa: ANN001
        logp, _ = solvers.log_likelihood(
            field, params, x1, source=source, method="midpoint", num_steps=LIKELIHOOD_STEPS
        )
        return logp

    likelihood, compile_s = compiled(likelihood, params, x1)
    seconds = timed(lambda: likelihood(params, x1), repeats, jax.block_until_ready)
    return len(x1) / statistics.median(seconds), compile_s, float(likelihood(params, x1).mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    data = np.load(args.data)
    out = {"jax": jax.__version__, "train": {}, "sample": {}, "likelihood": {}, "bound": {}}
    out |= {"compile_s": {}, "params": {}}
    for name, w in WORKLOADS.items():
        rate, train_compile, loss = train_rate(w, data[name], args.repeats)
        out["train"][name] = {"rate": rate, "loss": loss}
        out["sample"][name], sample_compile = sample_rate(w, args.repeats)
        out["bound"][name] = network_bound(w, args.repeats)
        rate, likelihood_compile, logp = likelihood_rate(w, data[f"{name}_held_out"], args.repeats)
        out["likelihood"][name] = {"rate": rate, "logp": logp}
        out["compile_s"][name] = {
            "train": train_compile,
            "sample": sample_compile,
            "likelihood": likelihood_compile,
        }
        out["params"][name] = models.parameter_count(build(w)[1])
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""flowjax side of the CPU benchmark; prints one JSON object (see run.py).

The same workloads as `torch_side.py`: the 2-D checkerboard training step (4x512 SiLU MLP on
[x, t], Adam 1e-3, float32, batches pre-generated) and sampling 50,000 points (Euler 100 steps;
dopri5 at rtol = atol = 1e-5, the batch as one ODE state as torchdiffeq does).

`--prepare FILE` first trains the network briefly and writes its weights (layer i: `w{i}` as
`[in, out]`, `b{i}`) so that both sides sample the same field: adaptive solvers then take
comparable steps, and samples/s compare like with like.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import numpy as np
import optax
from flax import nnx

import flowjax
from experiments.bench_cpu import workloads
from experiments.timing import timed
from flowjax import data, losses, models, paths, solvers


def make_step(v: models.Functional, fused: int):  # noqa: ANN201
    """A jitted step (or `fused` steps in one `lax.scan`), parameters and optimizer donated."""
    path = paths.AffinePath(paths.CondOT())
    optimizer = optax.adam(1e-3)

    def one(carry, xs):  # noqa: ANN001
        params, opt_state = carry
        x1, key = xs
        loss_fn = lambda p: losses.cfm_loss(v, p, key, x1, path=path)[0]  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    if fused == 1:
        step = lambda params, opt_state, x1, key: one((params, opt_state), (x1, key))  # noqa: E731
    else:
        step = lambda params, opt_state, x1, key: jax.lax.scan(  # noqa: E731
            one, (params, opt_state), (x1, jax.random.split(key, fused))
        )
    return jax.jit(step, donate_argnums=(0, 1)), optimizer


def train_rate(batch: int, steps: int, repeats: int, fused: int = 1) -> tuple[float, float]:
    v, params = network()
    step, optimizer = make_step(v, fused)
    opt_state = optimizer.init(params)
    calls = steps // fused
    shape = (batch,) if fused == 1 else (fused, batch)
    keys = jax.random.split(jax.random.key(0), calls)
    batches = [
        data.sample_toy("checkerboard", k, batch * (1 if fused == 1 else fused)).reshape(*shape, 2)
        for k in keys
    ]
    start = time.perf_counter()
    step = step.lower(params, opt_state, batches[0], keys[0]).compile()
    compile_s = time.perf_counter() - start
    state = list(step(params, opt_state, batches[0], keys[0])[0])  # one warm-up step

    def run():
        for x1, k in zip(batches, keys, strict=True):
            (state[0], state[1]), loss = step(state[0], state[1], x1, k)
        return loss

    return steps / statistics.median(timed(run, repeats, jax.block_until_ready)), compile_s


def network() -> tuple[models.Functional, nnx.State]:
    return models.functional(models.MLP(2, width=512, depth=4, rngs=nnx.Rngs(0)))


def save_weights(params: nnx.State, path: Path) -> None:
    pure = nnx.to_pure_dict(params)
    layers = [*(pure["hidden"][i] for i in sorted(pure["hidden"])), pure["out"]]
    np.savez(
        path,
        **{
            f"{k}{i}": np.asarray(layer[name])
            for i, layer in enumerate(layers)
            for k, name in (("w", "kernel"), ("b", "bias"))
        },
    )


def load_weights(path: Path) -> nnx.State:
    _, params = network()
    pure = nnx.to_pure_dict(params)
    arrays = np.load(path)
    layers = [*(pure["hidden"][i] for i in sorted(pure["hidden"])), pure["out"]]
    for i, layer in enumerate(layers):
        layer["kernel"], layer["bias"] = arrays[f"w{i}"], arrays[f"b{i}"]
    nnx.replace_by_pure_dict(params, pure)
    return params


def prepare(path: Path, steps: int) -> None:
    v, params = network()
    step, optimizer = make_step(v, fused=100)
    opt_state = optimizer.init(params)
    key = jax.random.key(42)
    for i in range(steps // 100):
        k_data, k_step = jax.random.split(jax.random.fold_in(key, i))
        x1 = data.sample_toy("checkerboard", k_data, 100 * 1024).reshape(100, 1024, 2)
        (params, opt_state), losses_ = step(params, opt_state, x1, k_step)
    print(f"trained {steps} steps, loss {float(losses_[-1]):.3f}", flush=True)
    save_weights(params, path)


def sampling(params: nnx.State, method: str, n: int, repeats: int) -> tuple[float, int, float]:
    v, _ = network()
    x0 = jax.random.normal(jax.random.key(1), (n, 2))
    options = {"num_steps": 100} if method == "euler" else {"rtol": 1e-5, "atol": 1e-5}
    run_sample = jax.jit(lambda p, x: solvers.sample(v, p, x, method=method, **options))
    start = time.perf_counter()
    run_sample = run_sample.lower(params, x0).compile()
    compile_s = time.perf_counter() - start
    rate = n / statistics.median(
        timed(lambda: run_sample(params, x0).y, repeats, jax.block_until_ready)
    )
    return rate, int(run_sample(params, x0).stats.nfe_batch), compile_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--prepare", type=Path, help="train briefly and write the weights here, then exit"
    )
    p.add_argument("--weights", type=Path, help="the weights to sample with")
    p.add_argument("--train-only", action="store_true", help="the one-call-per-step rows only")
    args = p.parse_args()
    flowjax.keep_heap()  # as `flowjax train` does on CPU devices
    if args.prepare:
        prepare(args.prepare, 200 if args.quick else 2000)
        return
    params = load_weights(args.weights)
    reps = 1 if args.quick else 3
    out = {
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "train": {},
        "compile_s": {},
        "sample": {},
    }
    for batch, steps in workloads.train(args.quick):
        rate, compile_s = train_rate(batch, steps, reps)
        out["train"][f"flowjax/{batch}"], out["compile_s"][f"train/{batch}"] = rate, compile_s
    if args.train_only:
        print(json.dumps(out))
        return
    batch, steps = workloads.train(args.quick)[-1]
    rate, compile_s = train_rate(batch, steps, reps, fused=workloads.FUSED_STEPS)
    out["train"][f"flowjax-scan/{batch}"], out["compile_s"][f"train-scan/{batch}"] = rate, compile_s
    for method, n in workloads.sample(args.quick):
        rate, nfe, compile_s = sampling(params, method, n, min(reps, 2))
        out["sample"][f"flowjax/{method}/{n}"] = {"samples_per_s": rate, "nfe": nfe}
        out["compile_s"][f"sample/{method}/{n}"] = compile_s
    print(json.dumps(out))


if __name__ == "__main__":
    main()

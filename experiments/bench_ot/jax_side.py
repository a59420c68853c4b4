"""flowjax side of the OT-coupling benchmark; prints one JSON object (see run.py).

- Coupling: `ot_coupling("exact")` (POT's `emd` on the host through `jax.pure_callback`) and
  `ot_coupling("auction")` (on the device), each called inside `jax.jit` on the batches of the
  data file; couplings/s from the median time per call.
- Training step: 3x64 SELU MLP on [x, t], AdamW (lr 1e-3, weight decay 1e-5), batch 512,
  `matcher("icfm" | "otcfm", 0.1)`; one jitted call per step, parameters and optimizer state
  donated; steps/s from the median of the repeats. "otcfm-chunked": the exact couplings of
  `--chunk` steps solved in one batched callback on all host cores, then the steps scanned.
- The same training through `flowjax train` (`flowjax.train.loop.train`, the whole loop: toy
  batches of TorchCFM's 8 Gaussians drawn on the device, the step with its non-finite guard and
  EMA, metrics, a checkpoint at the end) with `steps_per_call` K: the CondOT path (I-CFM without
  its sigma = 0.1 noise term: one draw fewer), steps/s the median of the log windows after the
  first.

JAX compilation is timed apart and excluded; every timed function is warmed up once first.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax
import ot
from flax import nnx

import flowjax
from experiments.timing import timed
from flowjax import couplings, losses, matchers, models
from flowjax.families import CFMConfig
from flowjax.train import config as cfg
from flowjax.train.loop import train


def coupling_rate(solver: str, x0: np.ndarray, x1: np.ndarray) -> tuple[float, float, float]:
    """(couplings/s over the batches `x0`, `x1` `[repeats, n, 2]`, mean squared distance of the
    first batch's pairs, compile seconds)."""
    coupling = couplings.ot_coupling(solver)
    fn = jax.jit(lambda key, a, b: coupling(key, a, b)[:2])
    key = jax.random.key(0)
    batches = [(jax.device_put(a), jax.device_put(b)) for a, b in zip(x0, x1, strict=True)]
    start = time.perf_counter()
    fn = fn.lower(key, *batches[0]).compile()
    compile_s = time.perf_counter() - start
    a, b = jax.block_until_ready(fn(key, *batches[0]))  # warm-up (imports POT in the callback)
    cost = float(np.mean(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=1)))
    it = iter(batches)
    seconds = timed(lambda: fn(key, *next(it)), len(batches), jax.block_until_ready)
    return 1.0 / statistics.median(seconds), cost, compile_s


def train_rate(name: str, x0: np.ndarray, x1: np.ndarray, repeats: int) -> tuple[float, float]:
    """(steps/s over the batches `x0`, `x1` `[steps, 512, 2]`, compile seconds)."""
    m = matchers.matcher(name, 0.1)
    v, params = models.functional(
        models.MLP(2, width=64, depth=3, activation="selu", rngs=nnx.Rngs(0))
    )
    optimizer = optax.adamw(1e-3, weight_decay=1e-5)

    def step(
        params: nnx.State, opt_state: optax.OptState, key: jax.Array, x0: jax.Array, x1: jax.Array
    ) -> tuple[nnx.State, optax.OptState, jax.Array]:
        def loss_fn(p: nnx.State) -> jax.Array:
            return losses.cfm_loss(v, p, key, x1, x0=x0, path=m.path, coupling=m.coupling)[0]

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    keys = list(jax.random.split(jax.random.key(0), len(x0)))
    batches = [(jax.device_put(a), jax.device_put(b)) for a, b in zip(x0, x1, strict=True)]
    state = [params, optimizer.init(params)]
    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(*state, keys[0], *batches[0]).compile()
    compile_s = time.perf_counter() - start
    state[0], state[1], _ = jax.block_until_ready(compiled(*state, keys[0], *batches[0]))  # warm-up

    def run() -> jax.Array:
        for key, (a, b) in zip(keys, batches, strict=True):
            state[0], state[1], loss = compiled(*state, key, a, b)
        return loss

    return len(x0) / statistics.median(timed(run, repeats, jax.block_until_ready)), compile_s


def train_rate_chunked(x0: np.ndarray, x1: np.ndarray, repeats: int, chunk: int) -> tuple:
    """OT-CFM with the exact couplings of `chunk` steps solved in one batched callback (in
    parallel host threads: the coupling does not depend on the parameters), then the `chunk`
    gradient steps in a `lax.scan`. Same (steps/s, compile seconds) as `train_rate`."""
    m = matchers.matcher("otcfm", 0.1)
    v, params = models.functional(
        models.MLP(2, width=64, depth=3, activation="selu", rngs=nnx.Rngs(0))
    )
    optimizer = optax.adamw(1e-3, weight_decay=1e-5)

    def steps(carry: tuple, keys: jax.Array, x0: jax.Array, x1: jax.Array) -> tuple:
        x0, x1, _ = jax.vmap(m.coupling)(keys, x0, x1)

        def one(carry: tuple, xs: tuple) -> tuple:
            params, opt_state = carry
            key, a, b = xs
            loss, grads = jax.value_and_grad(
                lambda p: losses.cfm_loss(v, p, key, b, x0=a, path=m.path)[0]
            )(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(one, carry, (keys, x0, x1))

    n = len(x0) // chunk
    keys = jax.random.split(jax.random.key(0), (n, chunk))
    split = lambda x: x[: n * chunk].reshape(n, chunk, *x.shape[1:])  # noqa: E731
    batches = [
        (jax.device_put(a), jax.device_put(b)) for a, b in zip(split(x0), split(x1), strict=True)
    ]
    carry = (params, optimizer.init(params))
    start = time.perf_counter()
    compiled = jax.jit(steps, donate_argnums=0).lower(carry, keys[0], *batches[0]).compile()
    compile_s = time.perf_counter() - start
    state = [jax.block_until_ready(compiled(carry, keys[0], *batches[0])[0])]  # warm-up

    def run() -> jax.Array:
        for key, (a, b) in zip(keys, batches, strict=True):
            state[0], loss = compiled(state[0], key, a, b)
        return loss

    return len(x0) / statistics.median(timed(run, repeats, jax.block_until_ready)), compile_s


def loop_rate(steps: int, k: int) -> float:
    """steps/s of `flowjax train` on the benchmark's workload with `k` steps per call."""
    config = cfg.TrainConfig(
        steps=steps,
        steps_per_call=k,
        compilation_cache="off",
        data=cfg.DataConfig(kind="toy2d", distribution="8gaussians_cfm", batch_size=512),
        model=cfg.ModelConfig("mlp", width=64, depth=3, activation="selu"),
        flow=CFMConfig(),
        optim=cfg.OptimConfig(lr=1e-3, weight_decay=1e-5),
        checkpoint=cfg.CheckpointConfig(every=steps),
        log=cfg.LogConfig(every=steps // 5, sample_every=0, eval_every=0),
    )
    with tempfile.TemporaryDirectory() as workdir:
        train(config, workdir)
        rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").open()]
    rates = [r["steps_per_s"] for r in rows if "steps_per_s" in r]
    return statistics.median(rates[1:])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="written by run.py")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each training run")
    p.add_argument("--icfm-steps", type=int, default=1000)
    p.add_argument("--otcfm-steps", type=int, default=200)
    p.add_argument("--chunk", type=int, default=50, help="OT-CFM steps per batched OT solve")
    p.add_argument("--auction", type=int, nargs="*", default=[512], help="auction batch sizes")
    p.add_argument("--auction-repeats", type=int, default=3, help="auction: first k batches")
    p.add_argument("--loop-steps", type=int, default=5000, help="I-CFM steps through the loop")
    p.add_argument("--steps-per-call", type=int, nargs="*", default=[1, 10])
    args = p.parse_args()
    flowjax.keep_heap()  # as `flowjax train` does on CPU devices
    data = np.load(args.data)
    out = {
        "jax": jax.__version__,
        "pot": ot.__version__,
        "devices": [str(d) for d in jax.devices()],
        "coupling": {},
        "train": {},
        "compile_s": {},
    }
    sizes = sorted(int(k.removeprefix("x0_")) for k in data.files if k.startswith("x0_"))
    for solver, batch in [("exact", n) for n in sizes] + [("auction", n) for n in args.auction]:
        k = args.auction_repeats if solver == "auction" else None
        x0, x1 = data[f"x0_{batch}"][:k], data[f"x1_{batch}"][:k]
        rate, cost, compile_s = coupling_rate(solver, x0, x1)
        out["coupling"][f"{solver}/{batch}"] = {"rate": rate, "cost": cost}
        out["compile_s"][f"{solver}/{batch}"] = compile_s
    for name, steps in (("icfm", args.icfm_steps), ("otcfm", args.otcfm_steps)):
        x0, x1 = data["train_x0"][:steps], data["train_x1"][:steps]
        out["train"][name], out["compile_s"][f"train/{name}"] = train_rate(
            name, x0, x1, args.repeats
        )
    x0, x1 = data["train_x0"][: args.otcfm_steps], data["train_x1"][: args.otcfm_steps]
    out["train"]["otcfm-chunked"], out["compile_s"]["train/otcfm-chunked"] = train_rate_chunked(
        x0, x1, args.repeats, min(args.chunk, args.otcfm_steps)
    )
    out["chunk"] = min(args.chunk, args.otcfm_steps)
    for k in args.steps_per_call:
        out["train"][f"icfm-loop-{k}"] = loop_rate(args.loop_steps, k)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

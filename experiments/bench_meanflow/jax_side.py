"""The JAX side of the MeanFlow benchmark: a jitted training step (the family's loss, its
gradient, an Adam update) of `flowjax.families.CFM` and of `flowjax.families.MeanFlow` on the
same network, the 2-D MLP and the MNIST UNet (the config's, unconditional here); prints one
JSON line of seconds per step."""

import json
import statistics
from typing import Any

import jax
import optax
from flax import nnx

from experiments.bench_meanflow.workloads import EPS, MLP, POWER, RATIO, REPEATS, UNET, WARMUP
from experiments.timing import timed
from flowjax import models
from flowjax.contracts import DataSpec
from flowjax.families import CFM, CFMConfig, MeanFlow, MeanFlowConfig

UNET_ARGS = dict(
    model_channels=32, num_res_blocks=1, channel_mult=(1, 2, 2), attention_resolutions=(7,)
)


def seconds_per_step(family: Any, module: nnx.Module, x1: jax.Array) -> float:
    v, params = models.functional(module)
    opt = optax.adam(1e-4)

    @jax.jit
    def step(params: Any, state: Any, key: jax.Array) -> tuple[Any, Any]:
        grads = jax.grad(lambda p: family.loss(v, p, key, {"x1": x1})[0])(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state, keys = opt.init(params), iter(jax.random.split(jax.random.key(0), WARMUP + REPEATS))

    def run() -> Any:
        nonlocal params, state
        params, state = step(params, state, next(keys))
        return params

    timed(run, WARMUP, jax.block_until_ready)
    return statistics.median(timed(run, REPEATS, jax.block_until_ready))


def main() -> None:
    config = MeanFlowConfig(ratio=RATIO, power=POWER, eps=EPS)
    out = {}
    for name, spec, make, batch in (
        (
            "mlp",
            DataSpec((MLP["dim"],)),
            lambda times: models.MLP(
                MLP["dim"], width=MLP["width"], depth=MLP["depth"], times=times, rngs=nnx.Rngs(0)
            ),
            MLP["batch"],
        ),
        (
            "unet",
            DataSpec(UNET["shape"]),
            lambda times: models.UNet(UNET["shape"], **UNET_ARGS, times=times, rngs=nnx.Rngs(0)),
            UNET["batch"],
        ),
    ):
        x1 = jax.random.normal(jax.random.key(1), (batch, *spec.event_shape)) + 2.0
        out[name] = {
            "fm": seconds_per_step(CFM(CFMConfig(), spec), make(1), x1),
            "meanflow": seconds_per_step(MeanFlow(config, spec), make(2), x1),
        }
    print(json.dumps({"jax": jax.__version__, "mlp": out["mlp"], "unet": out["unet"]}))


if __name__ == "__main__":
    main()

"""GPU cost of the one-step CIFAR-10 runs (`meanflow.py`, `soflow.py`): each config's network
built abstractly, its parameter count beside the released code's, and the FLOPs of its real
training step (the family's loss, gradients, optimizer update and EMA, as `flowjax train`
builds it) from XLA's cost analysis, projected onto H100s.

    python -m experiments.one_step_cifar10.cost [--utilization 0.4]

The step is lowered at the config's full batch of 1,024 with abstract inputs (`flowjax.train.
aot.program`, unsharded, on this host) and analysed before compilation (`perf.step_flops`), so
no batch scaling is needed and nothing is compiled. GPU-hours = steps x FLOPs per step / (989
TFLOP/s x utilization): 989 TFLOP/s is the H100 SXM's dense BF16 Tensor Core peak (NVIDIA H100
data sheet; 1,979 with sparsity), i.e. a run with `--config.precision=bfloat16`; the papers
train in float32 (TF32), whose dense peak is half of it. The one measured figure published:
py-meanflow's README, 0.21 s per iteration on 8 H200s (same dense BF16 peak) for its
16,000-epoch script.
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # lowered on this host, not run

import jax
import jax.numpy as jnp

from flowjax.models import parameter_count
from flowjax.train import aot, build
from flowjax.train.config import TrainConfig, load_config
from flowjax.train.inputs import abstract_spec

HERE = Path(__file__).parent
CONFIGS = {"MeanFlow": HERE / "meanflow.py", "SoFlow": HERE / "soflow.py"}
# py-meanflow's and SoFlow's CIFAR-10 SongUNets, instantiated with torch (the same network)
RELEASED_PARAMETERS = {"MeanFlow": 55_932_419, "SoFlow": 55_932_419}
PUBLISHED_FID = {"MeanFlow": "2.92 (paper; 2.80 code)", "SoFlow": "2.86 / 2.28 at 2 NFE"}
H100_BF16_TFLOPS = 989.0  # NVIDIA H100 SXM data sheet, dense BF16
PY_MEANFLOW_SECONDS_PER_STEP, PY_MEANFLOW_GPUS = 0.21, 8  # its README, 8x H200


def forward_flops(config: TrainConfig) -> tuple[int, float]:
    """`(parameters, FLOPs of one network call per image)` of the config's network."""
    family = build.family(config, abstract_spec(config))
    v, params = build.network(config, family.network, abstract=True)
    x = jax.ShapeDtypeStruct((1, *family.network.input_shape), jnp.float32)
    t = jax.ShapeDtypeStruct((1,), jnp.float32)
    lowered = jax.jit(v).lower(params, x, (t, t))
    return parameter_count(params), float(lowered.cost_analysis()["flops"])


def step_flops(config: TrainConfig) -> float:
    """FLOPs of one training step at the config's batch (one device, nothing sharded)."""
    return aot.program(config, jax.devices()[:1])[3]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utilization", type=float, default=0.4, help="of the BF16 peak")
    args = parser.parse_args(argv)
    start, rows = time.perf_counter(), []
    peak = H100_BF16_TFLOPS * 1e12 * args.utilization
    for name, path in CONFIGS.items():
        config = load_config(path)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=None))
        params, forward = forward_flops(config)
        flops = step_flops(config)
        hours = config.steps * flops / peak / 3600
        rows.append(
            dict(
                name=name,
                params=params,
                released=RELEASED_PARAMETERS[name],
                steps=config.steps,
                batch=config.data.batch_size,
                forward_gflop=forward / 1e9,
                step_tflop=flops / 1e12,
                ratio=flops / (forward * config.data.batch_size),
                gpu_hours=hours,
                fid=PUBLISHED_FID[name],
            )
        )
    print(f"| run | parameters (ours / released code) | steps x batch | forward GFLOP per image "
          f"| TFLOP per step (x forward) | H100-hours at {args.utilization:.0%} of 989 "
          f"TFLOP/s | days on 8 H100 | published 1-NFE FID-50k |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {r['params']:,} / {r['released']:,} | {r['steps']:,} x "
            f"{r['batch']} | {r['forward_gflop']:.2f} | {r['step_tflop']:.1f} "
            f"({r['ratio']:.2f}x) | {r['gpu_hours']:,.0f} | {r['gpu_hours'] / 8 / 24:.1f} | "
            f"{r['fid']} |"
        )
    meanflow = rows[0]
    measured = meanflow["steps"] * PY_MEANFLOW_SECONDS_PER_STEP * PY_MEANFLOW_GPUS / 3600
    achieved = meanflow["step_tflop"] / PY_MEANFLOW_SECONDS_PER_STEP / PY_MEANFLOW_GPUS
    print(
        f"\npy-meanflow's measured 0.21 s/step on 8 H200 (README): {measured:,.0f} H200-hours "
        f"for {meanflow['steps']:,} steps, {measured / 8 / 24:.1f} days; with the FLOPs above "
        f"{achieved:.0f} TFLOP/s per GPU, {achieved / H100_BF16_TFLOPS:.0%} of the dense BF16 "
        "peak (it trains in float32)."
    )
    print(f"\n(lowered and analysed in {time.perf_counter() - start:.0f} s on {jax.devices()[0]})")
    return rows


if __name__ == "__main__":
    main()

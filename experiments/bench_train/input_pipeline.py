"""Input-pipeline throughput on this machine: images/s that `GrainBatches` delivers as global
arrays (decode or cache, dequantize, flip, batch of 256), for MNIST and CIFAR-10 JPEG.

    python -m experiments.bench_train.input_pipeline [--batches 60] [--workers 0 2]
"""

import argparse
import os
import time
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from flowjax.data import records
from flowjax.data.pipeline import GrainBatches, ImageToFloat
from flowjax.train.sharding import batch_sharding

DATA = Path(os.environ.get("FLOWJAX_SHARED_DATA", Path(__file__).parents[3] / "shared" / "data"))


def rate(source, workers: int, batches: int, flip: bool) -> float:  # noqa: ANN001
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "fsdp"))
    it = GrainBatches(
        source,
        batch_size=256,
        seed=0,
        sharding={"x1": batch_sharding(mesh, 4)},
        transform=ImageToFloat(flip=flip, dequantize=True, labels=False),
        workers=workers,
        prefetch=4,
    )
    jax.block_until_ready(next(it))  # start-up (and worker spawn) excluded
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    jax.block_until_ready(batch)
    return batches * 256 / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = p.parse_args()
    start = time.perf_counter()
    cifar = records.image_folder(DATA / "cifar10-jpeg", "train")
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    cifar_cached = cifar.decoded()
    decode_s = time.perf_counter() - start
    cases = [
        ("MNIST (IDX, in memory)", records.mnist(DATA / "mnist"), False),
        ("CIFAR-10 JPEG, decoded per record", cifar, True),
        ("CIFAR-10 JPEG, decoded cache", cifar_cached, True),
    ]
    print(f"CIFAR-10 train: read tarball {read_s:.1f} s; decode all 50,000 once {decode_s:.1f} s")
    print("| dataset | " + " | ".join(f"{w} workers (images/s)" for w in args.workers) + " |")
    print("|---|" + "---|" * len(args.workers))
    for name, source, flip in cases:
        rates = [rate(source, w, args.batches, flip) for w in args.workers]
        print(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)


if __name__ == "__main__":
    main()

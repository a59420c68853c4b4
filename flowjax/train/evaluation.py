"""Periodic evaluation on the EMA parameters: samples (and a PNG) and the test NLL.

These run on every process (the parameters are global arrays); outputs are replicated so that
process 0 can write them.
"""

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax import guidance, metrics, solvers
from flowjax.data.toy2d import sample_toy
from flowjax.train.config import TrainConfig
from flowjax.train.inputs import image_source


def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def make_sampler(v: Callable, config: TrainConfig, mesh: Mesh, event_shape: tuple) -> Callable:
    """A jitted `(params, key) -> (samples [n, *event], nfe)` drawing `n = log.num_samples`
    samples with `log.eval_method` (`log.eval_steps`), replicated over `mesh`. A
    class-conditional model draws sample i from class i mod num_classes, guided with scale
    `log.guidance`. Build it once and call it with new keys: it compiles once."""
    n, classes = config.log.num_samples, config.model.num_classes
    cond = {} if classes is None else {"y": jnp.arange(n) % classes}
    field = v if classes is None else guidance.guided(v, config.log.guidance, classes)

    @jax.jit
    def run(params: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        x0 = jax.random.normal(key, (n, *event_shape))
        sol = solvers.sample(
            field,
            params,
            x0,
            cond=cond,
            method=config.log.eval_method,
            num_steps=config.log.eval_steps,
        )
        return jax.lax.with_sharding_constraint(sol.y, _replicated(mesh)), sol.stats.nfe_batch

    return run


def draw_samples(sampler: Callable, params: Any, seed: int) -> tuple[np.ndarray, int]:
    """Samples (host array) and NFE from a `make_sampler` sampler, with the key of `seed`."""
    y, nfe = sampler(params, jax.random.key(seed))
    return np.asarray(y.addressable_data(0)), int(nfe)


def toy_test_nll(v: Callable, params: Any, config: TrainConfig, mesh: Mesh, seed: int) -> dict:
    """Test NLL (exact divergence, dopri5) of fresh points of the toy distribution."""
    x1 = sample_toy(
        config.data.distribution, jax.random.key(seed), min(config.log.num_samples, 2048)
    )

    @jax.jit
    def run(params: Any, x1: jax.Array) -> tuple[jax.Array, jax.Array]:
        logp, sol = solvers.log_likelihood(v, params, x1)
        return -jnp.mean(logp), sol.stats.nfe_batch

    nll, nfe = run(params, x1)
    return {"eval/nll": float(nll), "eval/nll_nfe": int(nfe)}


def image_bits_per_dim(
    v: Callable, params: Any, config: TrainConfig, source: Any, seed: int, count: int = 64
) -> dict:
    """Bits/dim of `count` held-out images (uniform dequantization, Hutchinson divergence with
    one Rademacher probe, dopri5 at 1e-5), averaged over the images."""
    images = np.stack([np.asarray(source[i]["image"]) for i in range(min(count, len(source)))])
    key = jax.random.key(seed)

    def log_likelihood(k: jax.Array, y: jax.Array) -> jax.Array:
        return solvers.log_likelihood(v, params, y, key=k, divergence="hutchinson")[0]

    bpd = jax.jit(lambda x: metrics.bits_per_dim(log_likelihood, key, x))(images)
    return {"eval/bits_per_dim": float(jnp.mean(bpd))}


def reference_statistics(
    config: TrainConfig, split: str, num: int | None, cache: Path, model: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """FID statistics `(mu, sigma)` of `num` images of the run's dataset split (a fixed random
    subset; None: all of them), cached in `cache` as `.npz`."""
    path = cache / f"fid_reference_{split}_{num or 'all'}.npz"
    if not path.is_file():
        data = dataclasses.replace(config.data, split=split)
        source = image_source(dataclasses.replace(config, data=data))
        n = len(source) if num is None else min(num, len(source))
        order = np.sort(np.random.default_rng(0).permutation(len(source))[:n])
        batches = (
            np.stack([np.asarray(source[int(i)]["image"]) for i in order[s : s + 100]])
            for s in range(0, n, 100)
        )
        mu, sigma = metrics.image_statistics(batches, model)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mu=mu, sigma=sigma)
    stats = np.load(path)
    return stats["mu"], stats["sigma"]


def sample_fid(
    v: Callable,
    params: Any,
    config: TrainConfig,
    mesh: Mesh,
    event_shape: tuple,
    reference: tuple[np.ndarray, np.ndarray],
    num: int,
    *,
    seed: int = 0,
    chunk: int = 500,
    model: Any = None,
) -> dict:
    """FID of `num` samples (drawn in chunks of `chunk`, clipped to [-1, 1] as if saved as 8-bit
    images) against `reference = (mu, sigma)`, and the mean NFE per chunk."""
    drawn = dataclasses.replace(config, log=dataclasses.replace(config.log, num_samples=chunk))
    sampler = make_sampler(v, drawn, mesh, event_shape)
    nfe = []

    def batches() -> Iterator[np.ndarray]:
        for i, start in enumerate(range(0, num, chunk)):
            images, calls = draw_samples(sampler, params, seed=seed + i)
            nfe.append(calls)
            yield np.clip(images[: num - start], -1.0, 1.0)

    score = metrics.frechet_distance(*reference, *metrics.image_statistics(batches(), model))
    return {"fid": score, "num": num, "nfe": float(np.mean(nfe))}


def write_samples_png(samples: np.ndarray, path: Path, title: str) -> None:
    """A scatter plot for 2-D vectors, an image grid for `[N, H, W, C]` images in [-1, 1]."""
    if samples.ndim == 4:
        image_grid_png(samples, path)
    elif samples.ndim == 2 and samples.shape[1] == 2:
        scatter_png(samples, path, title)


def image_grid_png(images: np.ndarray, path: Path, columns: int = 10) -> None:
    """Up to 100 images in [-1, 1] as one PNG grid."""
    from PIL import Image

    images = images[: columns * columns]
    rows = -(-len(images) // columns)
    pad = np.zeros((rows * columns - len(images), *images.shape[1:]), images.dtype) - 1.0
    grid = np.concatenate([images, pad]).reshape(rows, columns, *images.shape[1:])
    grid = grid.transpose(0, 2, 1, 3, 4).reshape(
        rows * images.shape[1], columns * images.shape[2], -1
    )
    pixels = np.clip((grid + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)


def scatter_png(samples: np.ndarray, path: Path, title: str) -> None:
    """A 2-D scatter plot of samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(samples[:, 0], samples[:, 1], s=0.5, alpha=0.5, rasterized=True)
    ax.set_title(title)
    ax.set_aspect("equal")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)

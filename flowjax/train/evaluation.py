"""Periodic evaluation on the EMA parameters: samples (and a PNG) and the test NLL.

These run on every process (the parameters are global arrays); outputs are replicated so that
process 0 can write them.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax import guidance, metrics, solvers
from flowjax.data.toy2d import sample_toy
from flowjax.train.config import TrainConfig


def _replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def draw_samples(
    v: Callable, params: Any, config: TrainConfig, mesh: Mesh, event_shape: tuple, seed: int
) -> tuple[np.ndarray, int]:
    """`log.num_samples` samples with `log.eval_method`, and the NFE taken. A class-conditional
    model draws sample i from class i mod num_classes, guided with scale `log.guidance`."""
    n, classes = config.log.num_samples, config.model.num_classes
    x0 = jax.random.normal(jax.random.key(seed), (n, *event_shape))
    cond = {} if classes is None else {"y": jnp.arange(n) % classes}
    guided = classes is not None and config.log.guidance != 1.0  # w = 1: the conditional field
    field = guidance.guided(v, config.log.guidance, classes) if guided else v

    @jax.jit
    def run(params: Any, x0: jax.Array) -> tuple[jax.Array, jax.Array]:
        sol = solvers.sample(
            field, params, x0, cond=cond, method=config.log.eval_method, num_steps=100
        )
        return jax.lax.with_sharding_constraint(sol.y, _replicated(mesh)), sol.stats.nfe_batch

    y, nfe = run(params, x0)
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

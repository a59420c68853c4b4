"""Fréchet Inception Distance (Heusel et al. 2017) with the TF FID Inception-v3's pool3 features.

Images are NHWC, either uint8 pixels in `[0, 255]` or floats in `[-1, 1]` (the model space of
`flowjax.data`), with 3 channels or 1 (grayscale, repeated to RGB). Float images are clipped to
`[-1, 1]` and, by default, quantized to 8 bits as if saved to PNG, so that samples and data go
through the same pipeline; the TF graph then resizes to 299 x 299 (see `inception.preprocess`).

Reference statistics are usually computed once: `mu, sigma = image_statistics(data)` and saved
with `np.savez`; `frechet_distance(mu, sigma, *image_statistics(samples))` is then the FID.
"""

import functools
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from flowjax._utils import Array
from flowjax.metrics.inception import InceptionV3, load_inception, preprocess

Images = Array | np.ndarray


def _check_images(images: Images, name: str = "images") -> None:
    """ValueError unless `images` is `[N, H, W, 1 or 3]`, uint8 or float in `[-1, 1]`."""
    shape, dtype = getattr(images, "shape", None), getattr(images, "dtype", None)
    if shape is None or len(shape) != 4 or shape[-1] not in (1, 3):
        hint = " (grayscale needs a channel axis: x[..., None])" if len(shape or ()) == 3 else ""
        raise ValueError(f"{name} must have shape [N, H, W, 1 or 3], got {shape}{hint}")
    if dtype == np.uint8:
        return
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be uint8 in [0, 255] or float in [-1, 1], got {dtype}")
    xp = np if isinstance(images, np.ndarray) else jnp
    peak = float(xp.max(xp.abs(images))) if shape[0] else 0.0
    if not peak <= 2.0:  # also catches NaN
        raise ValueError(
            f"float {name} must be in [-1, 1] (values a little beyond are clipped), got values up "
            f"to {peak}; pass uint8 for pixels in [0, 255]"
        )


@functools.partial(jax.jit, static_argnames="quantize")
def _to_network_input(images: Array, quantize: bool) -> Array:
    """`[B, H, W, 1 or 3]` uint8 or float in `[-1, 1]` -> `[B, 299, 299, 3]` network input."""
    if images.dtype == jnp.uint8:
        pixels = images.astype(jnp.float32)
    else:
        pixels = (jnp.clip(images.astype(jnp.float32), -1.0, 1.0) + 1.0) * 127.5
        pixels = jnp.round(pixels) if quantize else pixels
    if pixels.shape[-1] == 1:
        pixels = jnp.repeat(pixels, 3, axis=-1)
    return preprocess(pixels)


@functools.partial(jax.jit, static_argnums=0)
def _pool3(graphdef: nnx.GraphDef, state: nnx.State, x: Array) -> Array:
    return nnx.merge(graphdef, state).features(x)


def _batches(images: Images | Iterable[Images], batch_size: int) -> Iterable[Images]:
    """Chunks of at most `batch_size` from an array or from each array of an iterable."""
    for array in [images] if hasattr(images, "shape") else images:
        _check_images(array)
        for start in range(0, array.shape[0], batch_size):
            yield array[start : start + batch_size]


def inception_features(
    images: Images | Iterable[Images],
    model: InceptionV3 | None = None,
    *,
    batch_size: int = 100,
    quantize: bool = True,
    progress: bool = True,
) -> np.ndarray:
    """pool3 features `float32 [N, 2048]` of `images: [N, H, W, 1 or 3]` (uint8 or float in
    `[-1, 1]`, see the module docstring), or of an iterable of such batches (yield batches of
    `batch_size` for full throughput).

    Runs jitted in batches of `batch_size` (the last one padded, so the network compiles once per
    batch size; resizing compiles once per input size). `model` defaults to `load_inception()`:
    pass one to avoid reloading the weights on each call. `progress` shows a tqdm bar.
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    if hasattr(images, "shape"):
        _check_images(images)  # before loading weights
        if images.shape[0] == 0:
            raise ValueError("images is empty")
    model = load_inception() if model is None else model
    graphdef, state = nnx.split(model)
    total = images.shape[0] if hasattr(images, "shape") else None
    out, pending = [], None
    with tqdm(total=total, unit="img", desc="Inception features", disable=not progress) as bar:
        for batch in _batches(images, batch_size):
            n = batch.shape[0]
            if n < batch_size:
                xp = np if isinstance(batch, np.ndarray) else jnp
                pad = xp.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)
                batch = xp.concatenate([batch, pad])
            features = _pool3(graphdef, state, _to_network_input(jnp.asarray(batch), quantize))
            if pending is not None:  # fetch the previous batch while this one runs
                out.append(np.asarray(pending[0])[: pending[1]])
                bar.update(pending[1])
            pending = (features, n)
        if pending is not None:
            out.append(np.asarray(pending[0])[: pending[1]])
            bar.update(pending[1])
    if not out:
        raise ValueError("images is empty")
    return np.concatenate(out)


def fid_statistics(features: Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `[D]` and covariance `[D, D]` (unbiased, as `np.cov`) of `features: [N, D]`, float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must have shape [N, D] with N >= 2, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def image_statistics(
    images: Images | Iterable[Images], model: InceptionV3 | None = None, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """FID statistics `(mu [2048], sigma [2048, 2048])` of images; `kwargs` go to
    `inception_features`."""
    return fid_statistics(inception_features(images, model, **kwargs))


def _drop_round_off(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those below its round-off level set to 0 (their square
    roots would otherwise add up to a visible bias in a rank-deficient 2048-D covariance)."""
    tol = (
        eigenvalues.size
        * np.finfo(np.float64).eps
        * max(float(np.max(np.abs(eigenvalues))), 1e-300)
    )
    return np.where(eigenvalues > tol, eigenvalues, 0.0)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """`||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))`, the squared 2-Wasserstein
    distance between two Gaussians, in float64 on the host.

    `tr (sigma1 sigma2)^(1/2)` is computed as the sum of the square roots of the eigenvalues of
    the symmetric `R sigma2 R`, `R = sigma1^(1/2)` (the same spectrum as `sigma1 sigma2`): two
    symmetric eigendecompositions, exact for singular covariances (fewer samples than
    dimensions) and free of the complex round-off of a general `sqrtm` (a second in 2048-D).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must have the same shape [D], got {mu1.shape}, {mu2.shape}")
    d = mu1.shape[0]
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        if sigma.shape != (d, d):
            raise ValueError(f"{name} must have shape [D, D] = {(d, d)}, got {sigma.shape}")
    w, q = np.linalg.eigh(sigma1)
    root = (q * np.sqrt(_drop_round_off(w))) @ q.T
    product = root @ sigma2 @ root
    trace_sqrt = np.sum(np.sqrt(_drop_round_off(np.linalg.eigvalsh((product + product.T) / 2))))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def fid(
    images1: Images | Iterable[Images],
    images2: Images | Iterable[Images],
    model: InceptionV3 | None = None,
    **kwargs: Any,
) -> float:
    """FID between two image sets (see `inception_features` for formats and `kwargs`)."""
    for name, images in (("images1", images1), ("images2", images2)):
        if hasattr(images, "shape"):
            _check_images(images, name)  # before loading weights
    model = load_inception() if model is None else model
    return frechet_distance(
        *image_statistics(images1, model, **kwargs), *image_statistics(images2, model, **kwargs)
    )

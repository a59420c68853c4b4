"""PNG pictures of samples on the host: scatter plots of 2-D points and grids of images."""

from pathlib import Path

import numpy as np

from flowjax.manifolds import to_rotation_vector


def token_samples(samples: np.ndarray, vocabulary: str | None, path: Path, title: str) -> None:
    """Token samples `[n, *event]`: with a `vocabulary` and sequences `[n, L]`, the decoded text,
    one sample per line (newlines shown as U+21B5), at `path` with suffix .txt; two-token
    samples `[n, 2]` as points on the vocabulary grid (PNG at `path`); others: nothing."""
    if vocabulary is not None and samples.ndim == 2:
        lines = ["".join(vocabulary[t] for t in row).replace("\n", "\u21b5") for row in samples]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".txt").write_text(f"# {title}\n" + "\n".join(lines) + "\n")
    elif samples.shape[1:] == (2,):
        samples_png(samples.astype(np.float32), path, title)


def samples_png(samples: np.ndarray, path: Path, title: str) -> None:
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


def _manifold_coordinates(samples: np.ndarray, manifold: str) -> tuple[list, tuple, tuple]:
    """(pairs of coordinate arrays to scatter, their limits, their labels) for `manifold_png`."""
    if manifold in ("sphere", "bumpy_sphere") and samples.shape[-1] == 3:
        samples = samples / np.linalg.norm(samples, axis=-1, keepdims=True)  # the direction
        lon = np.degrees(np.arctan2(samples[:, 1], samples[:, 0]))
        lat = np.degrees(np.arcsin(np.clip(samples[:, 2], -1.0, 1.0)))
        return [(lon, lat)], ((-180, 180), (-90, 90)), ("longitude", "latitude")
    if manifold == "so3":
        w = np.asarray(to_rotation_vector(samples))
        pairs = [(w[:, 0], w[:, 1]), (w[:, 0], w[:, 2]), (w[:, 1], w[:, 2])]
        return pairs, ((-np.pi, np.pi),) * 2, ("rotation vector i", "rotation vector j")
    if manifold == "hyperbolic":  # the Poincare ball
        samples = samples[:, 1:] / (1.0 + samples[:, :1])
        limits, labels = ((-1, 1), (-1, 1)), ("Poincare ball i", "Poincare ball i + 1")
    else:
        limits, labels = ((0, 2 * np.pi), (0, 2 * np.pi)), ("angle i", "angle i + 1")
    d = samples.shape[-1]
    pairs = [(samples[:, i], samples[:, (i + 1) % d]) for i in range(0, d - d % 2 or 1, 2)]
    return pairs, limits, labels


def manifold_png(samples: np.ndarray, manifold: str, path: Path, title: str) -> None:
    """Points of S^2 (`[N, 3]`; of a bumpy sphere, their directions) as longitude / latitude
    in degrees (an equirectangular map), angles of a torus (`[N, D]`) as the pairs (0, 1),
    (2, 3), ... side by side, rotations as
    pairs of their rotation vectors' coordinates, hyperbolic points in the Poincare ball."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs, limits, labels = _manifold_coordinates(samples, manifold)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.2), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        ax.scatter(a, b, s=1.0, alpha=0.5, rasterized=True)
        ax.set_xlim(*limits[0]), ax.set_ylim(*limits[1])
        ax.set_xlabel(labels[0]), ax.set_ylabel(labels[1])
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)

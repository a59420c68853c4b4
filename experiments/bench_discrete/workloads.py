"""The workloads of the discrete benchmark, shared by both sides (importable without JAX or
PyTorch): the same token MLP, data, path and step counts on each side."""

from pathlib import Path

import numpy as np

# name -> the token MLP (as `flowjax.models.TokenMLP`), the data, the training and sampling
WORKLOADS = {
    "checkerboard": {
        "what": "2-D checkerboard, 128 bins (Meta's discrete example): uniform source",
        "vocab": 128,
        "length": 2,
        "embed_dim": 128,
        "width": 128,
        "depth": 3,
        "source": "uniform",
        "batch": 4096,
        "samples": 20_000,
    },
    "text": {
        "what": "tiny-shakespeare, 32-character windows: mask source",
        "vocab": 65,
        "length": 32,
        "embed_dim": 64,
        "width": 1024,
        "depth": 4,
        "source": "mask",
        "batch": 256,
        "samples": 1024,
    },
}
TIME_DIM = 64  # sinusoidal time features (TokenMLP's default)
POLYNOMIAL_N = 2.0  # kappa_t = t^2, as Meta's example
SAMPLING_STEPS = 64
LR = 1e-3


def checkerboard_tokens(rng: np.random.Generator, n: int, bins: int = 128) -> np.ndarray:
    """Meta's `inf_train_gen`: the checkerboard on a bins x bins grid, `[n, 2]` int32."""
    q = bins // 4
    a = rng.integers(0, bins, n)
    b = rng.integers(0, q, n) + 2 * q - rng.integers(0, 2, n) * 2 * q + (a // q) % 2 * q
    return np.stack([a, b], axis=1).astype(np.int32)


def text_windows(path: str, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """`n` random character windows of the file (token = index in its sorted characters)."""
    text = Path(path).read_text()
    lookup = {c: i for i, c in enumerate(sorted(set(text)))}
    tokens = np.array([lookup[c] for c in text], np.int32)
    starts = rng.integers(0, len(tokens) - length, n)
    return tokens[starts[:, None] + np.arange(length)]


def make_data(path: str, text: str, steps: int, seed: int = 0) -> None:
    """`<name>`: `[steps, batch, length]` training batches of each workload, in `path`."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, w in WORKLOADS.items():
        n = steps * w["batch"]
        x = checkerboard_tokens(rng, n) if name == "checkerboard" else None
        if x is None:
            x = text_windows(text, rng, n, w["length"])
        arrays[name] = x.reshape(steps, w["batch"], w["length"])
    np.savez(path, **arrays)

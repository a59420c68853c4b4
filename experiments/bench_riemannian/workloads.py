"""The workloads of the Riemannian benchmark, shared by both sides (importable without JAX or
PyTorch): the same MLP (`[x, t]` -> 4 x 256 SiLU -> ambient vector, made tangent), data,
manifold and step counts on each side."""

import numpy as np

# name -> the manifold, its data file, and the sizes of training, sampling and likelihoods
WORKLOADS = {
    "sphere": {
        "what": "S^2, fire events",
        "manifold": "sphere",
        "dim": 3,
        "batch": 512,
        "samples": 10_000,
        "likelihood_points": 2_000,
    },
    "torus": {
        "what": "T^7, RNA torsions",
        "manifold": "torus",
        "dim": 7,
        "batch": 512,
        "samples": 10_000,
        "likelihood_points": 1_000,
    },
}
WIDTH, DEPTH, LR = 256, 4, 1e-3
SAMPLING_STEPS = 100  # projected midpoint steps (2 network calls each)
LIKELIHOOD_STEPS = 50  # midpoint steps of the likelihood ODE, exact divergence


def make_data(path: str, points: dict[str, np.ndarray], steps: int, seed: int = 0) -> None:
    """`<name>`: `[steps, batch, dim]` training batches drawn from each workload's points,
    and `<name>_held_out`: the points whose likelihoods are computed, in `path`."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, w in WORKLOADS.items():
        x = points[name].astype(np.float32)
        arrays[name] = x[rng.integers(0, len(x), (steps, w["batch"]))]
        arrays[f"{name}_held_out"] = x[rng.integers(0, len(x), w["likelihood_points"])]
    np.savez(path, **arrays)

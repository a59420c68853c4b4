"""Datasets of points on manifolds, from the files as the benchmarks ship them: earth-event
locations (latitude, longitude in degrees) as points of S^2 in R^3, RNA backbone torsion
angles (degrees) as points of the flat torus T^7 (any T^D from a `.npy` of radians),
rotations (frames, e.g. of protein residues: a `.npy` of matrices or quaternions) as points
of SO(3), and points of a generated mesh (a `.npy` `[N, 3]`); per-seed random
train/valid/test splits of the sizes the Riemannian FM code draws (80/10/10).
"""

import math
from pathlib import Path
from typing import Any

import numpy as np

from flowjax.manifolds import SO3, from_quaternion
from flowjax.manifolds.mesh import generated

SPLITS = ("train", "valid", "test")
TORSIONS = 7  # alpha, beta, gamma, delta, epsilon, zeta, chi


def _numeric_rows(path: Path, delimiter: str) -> list[list[str]]:
    """The rows of a delimited file without `#` comment lines and a header line."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(delimiter)]
        if not rows and not _is_number(fields[0]) and not _is_number(fields[-1]):
            continue  # the header
        rows.append(fields)
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def lat_lon_to_sphere(degrees: np.ndarray) -> np.ndarray:
    """`[N, 2]` latitude, longitude in degrees -> unit vectors `[N, 3]` (z towards the north
    pole, x towards longitude 0)."""
    lat, lon = np.radians(degrees[:, 0]), np.radians(degrees[:, 1])
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def earth_events(path: str | Path) -> np.ndarray:
    """The events of one earth-science CSV (volcanoes, earthquakes, floods, fires) as points
    of S^2, `[N, 3]` float32."""
    rows = _numeric_rows(Path(path), ",")
    degrees = np.array([[float(a), float(b)] for a, b in rows], np.float64)
    if len(degrees) == 0 or np.abs(degrees[:, 0]).max() > 90 or np.abs(degrees[:, 1]).max() > 360:
        raise ValueError(f"{path} does not hold latitude,longitude rows in degrees")
    return lat_lon_to_sphere(degrees).astype(np.float32)


def torsion_angles(path: str | Path) -> np.ndarray:
    """The 7 backbone torsion angles of each nucleotide of `rna.tsv` (structure id, base, 7
    angles in degrees) as points of T^7 in [0, 2 pi), `[N, 7]` float32 (RFM's `% 360`)."""
    rows = _numeric_rows(Path(path), "\t")
    if not rows or any(len(r) != 2 + TORSIONS for r in rows):
        raise ValueError(f"{path}: expected rows of an id, a base and {TORSIONS} angles")
    degrees = np.array([[float(a) for a in r[2:]] for r in rows], np.float64)
    return np.radians(np.mod(degrees, 360.0)).astype(np.float32) % np.float32(2 * math.pi)


def angles(path: str | Path) -> np.ndarray:
    """Points of a flat torus T^D from a `.npy` of angles `[N, D]` in radians, wrapped to
    [0, 2 pi) float32."""
    values = np.load(Path(path), allow_pickle=False)
    if values.ndim != 2 or len(values) == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{path}: expected finite angles [N, D], got shape {values.shape}")
    return (np.mod(values, 2 * math.pi)).astype(np.float32) % np.float32(2 * math.pi)


def rotations(path: str | Path, tolerance: float = 1e-3) -> np.ndarray:
    """The rotations in a `.npy` file, matrices `[N, 3, 3]` (or flattened `[N, 9]`, row-major)
    or unit quaternions `[N, 4]` (w, x, y, z), as points of SO(3) `[N, 9]` float32; matrices
    must be orthogonal with determinant 1 within `tolerance` (they are re-projected)."""
    values = np.load(Path(path), allow_pickle=False).astype(np.float64)
    if values.ndim == 2 and values.shape[1] == 4:
        return np.asarray(from_quaternion(values.astype(np.float32)))
    if values.ndim not in (2, 3) or math.prod(values.shape[1:]) != 9 or len(values) == 0:
        raise ValueError(f"{path}: expected rotations [N, 3, 3] or [N, 9] or quaternions [N, 4]")
    matrices = values.reshape(-1, 3, 3)
    error = np.abs(matrices @ matrices.transpose(0, 2, 1) - np.eye(3)).max()
    if error > tolerance or np.abs(np.linalg.det(matrices) - 1).max() > tolerance:
        raise ValueError(f"{path}: not rotation matrices (|R R^T - I| up to {error:.2g})")
    return np.asarray(SO3().projx(matrices.reshape(-1, 9).astype(np.float32)))


def surface_points(
    path: str | Path, mesh: str = "bumpy_sphere", tolerance: float = 1e-3
) -> np.ndarray:
    """Points `[N, 3]` float32 of a generated mesh (`flowjax.manifolds.mesh.GENERATED`) from a
    `.npy`; each must lie within `tolerance` of the surface (they are re-projected)."""
    values = np.load(Path(path), allow_pickle=False)
    if values.ndim != 2 or values.shape[1] != 3 or len(values) == 0:
        raise ValueError(f"{path}: expected points [N, 3], got shape {values.shape}")
    points = np.asarray(generated(mesh).projx(values.astype(np.float32)))
    error = np.abs(points - values).max()
    if error > tolerance:
        raise ValueError(f"{path}: points up to {error:.2g} off the {mesh} surface")
    return points


def random_split(n: int, split: str, seed: int) -> np.ndarray:
    """The sorted indices of `split` among `n` records: `n // 10` each for valid and test, the
    rest train, from a random permutation drawn from `seed` (the counts of Riemannian FM's
    `get_loaders`; its permutation comes from torch's generator, so the members differ)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    held_out = n // 10
    train = n - 2 * held_out
    order = np.random.default_rng(seed).permutation(n)
    ends = {"train": (0, train), "valid": (train, train + held_out), "test": (train + held_out, n)}
    lo, hi = ends[split]
    return np.sort(order[lo:hi])


class ManifoldPoints:
    """One split of a dataset of manifold points as records `{"x": float32 [D]}`: `points`
    `[N, D]` (from `earth_events` or `torsion_angles`) split by `random_split`."""

    def __init__(self, points: np.ndarray, split: str = "train", seed: int = 0) -> None:
        self.points = points[random_split(len(points), split, seed)]

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.points[i]}

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The records at `rows: int [K]`, stacked: `{"x": float32 [K, D]}`."""
        return {"x": self.points[rows]}

"""Earth events and RNA torsions from the shipped files: row counts of the provenance, points
on S^2 and T^7, and per-seed random splits that partition the records; rotations from `.npy`
matrices or quaternions."""

import math

import jax
import numpy as np
import pytest

from flowjax.data import manifold_records as mr
from flowjax.manifolds import mesh
from flowjax.train.config import DataConfig
from flowjax.train.inputs import _point_spec
from tests.shared_data import shared_data

EARTH = {"volerup": 827, "quakes_all": 6120, "flood": 4875, "fire": 12809}


@pytest.mark.parametrize("name", EARTH)
def test_earth_events_are_unit_vectors_with_the_provenance_counts(name):
    x = mr.earth_events(shared_data() / "earth-sphere" / f"{name}.csv")
    assert x.shape == (EARTH[name], 3) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-6)


def test_lat_lon_to_sphere_closed_forms():
    points = mr.lat_lon_to_sphere(np.array([[90.0, 0.0], [0.0, 0.0], [0.0, 90.0], [-45.0, 180.0]]))
    h = math.sqrt(0.5)
    np.testing.assert_allclose(points, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [-h, 0, -h]], atol=1e-12)


def test_rna_torsions_on_the_seven_torus(tmp_path):
    x = mr.torsion_angles(shared_data() / "rna-torsions" / "rna.tsv")
    assert x.shape == (9478, 7) and x.min() >= 0 and x.max() < 2 * math.pi
    # the first row of the file: alpha = -69.168933 degrees
    assert float(x[0, 0]) == pytest.approx(math.radians(360 - 69.168933), rel=1e-6)
    bad = tmp_path / "bad.tsv"
    bad.write_text("402d\tG\t1.0\t2.0\n")
    with pytest.raises(ValueError, match="7 angles"):
        mr.torsion_angles(bad)


def test_random_splits_partition_the_records_per_seed():
    parts = {s: mr.random_split(1001, s, seed=3) for s in mr.SPLITS}
    assert [len(parts[s]) for s in mr.SPLITS] == [801, 100, 100]  # n // 10 held out twice
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(1001))
    np.testing.assert_array_equal(parts["test"], mr.random_split(1001, "test", seed=3))
    assert not np.array_equal(parts["test"], mr.random_split(1001, "test", seed=4))
    points = mr.ManifoldPoints(np.arange(2002, dtype=np.float32).reshape(1001, 2), "valid", 3)
    assert len(points) == 100 and points[0]["x"].shape == (2,)
    with pytest.raises(ValueError, match="split must be one of"):
        mr.random_split(10, "validation", 0)


def test_rotations_from_matrices_or_quaternions(tmp_path):
    """A `.npy` of matrices `[N, 3, 3]`, flattened `[N, 9]` or quaternions `[N, 4]` reads as
    the same points of SO(3); non-rotations are refused."""
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q.T
    matrices = np.stack(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    ).transpose(2, 0, 1)
    read = {}
    for name, values in [("m", matrices), ("flat", matrices.reshape(50, 9)), ("q", q)]:
        np.save(tmp_path / f"{name}.npy", values)
        read[name] = mr.rotations(tmp_path / f"{name}.npy")
        assert read[name].shape == (50, 9) and read[name].dtype == np.float32
    np.testing.assert_allclose(read["m"], matrices.reshape(50, 9), atol=1e-6)
    np.testing.assert_allclose(read["flat"], read["m"], atol=1e-6)
    np.testing.assert_allclose(read["q"], read["m"], atol=1e-6)
    np.save(tmp_path / "reflections.npy", -matrices)
    with pytest.raises(ValueError, match="not rotation matrices"):
        mr.rotations(tmp_path / "reflections.npy")
    np.save(tmp_path / "vectors.npy", rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match=r"expected rotations \[N, 3, 3\]"):
        mr.rotations(tmp_path / "vectors.npy")


def test_angles_and_mesh_points_from_npy(tmp_path):
    """Angles in radians wrap to [0, 2 pi) on T^D; points of the generated mesh are kept (to
    its projection) and points off it are refused; the run's spec takes D from the file."""
    angles = np.array([[-0.5, 7.0, 3.0], [2 * math.pi, 0.0, -7.0]])
    np.save(tmp_path / "angles.npy", angles)
    read = mr.angles(tmp_path / "angles.npy")
    np.testing.assert_allclose(np.cos(read), np.cos(angles), atol=1e-6)
    assert read.dtype == np.float32 and read.min() >= 0 and read.max() < 2 * math.pi
    spec = _point_spec(DataConfig(kind="angles", path=str(tmp_path / "angles.npy")))
    assert spec.event_shape == (3,) and spec.manifold == "torus"
    np.save(tmp_path / "nan.npy", angles * np.nan)
    with pytest.raises(ValueError, match="finite angles"):
        mr.angles(tmp_path / "nan.npy")
    surface = mesh.generated("bumpy_sphere")
    points = np.asarray(surface.uniform(jax.random.key(0), (100,)))
    np.save(tmp_path / "points.npy", points)
    np.testing.assert_allclose(mr.surface_points(tmp_path / "points.npy"), points, atol=2e-6)
    np.save(tmp_path / "off.npy", 1.5 * points)
    with pytest.raises(ValueError, match="off the bumpy_sphere surface"):
        mr.surface_points(tmp_path / "off.npy")

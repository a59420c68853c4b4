"""Earth events and RNA torsions from the shipped files: row counts of the provenance, points
on S^2 and T^7, and per-seed random splits that partition the records."""

import math

import numpy as np
import pytest

from flowjax.data import manifold_records as mr
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

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import data
from flowjax.data.toy2d import checkerboard_log_prob

N = 20_000


@pytest.mark.parametrize("name", data.DISTRIBUTIONS)
def test_samplers_are_pure_and_shaped(name):
    a = data.sample_toy(name, jax.random.key(0), 1001)
    assert a.shape == (1001, 2) and a.dtype == jnp.float32 and bool(jnp.isfinite(a).all())
    np.testing.assert_array_equal(a, data.sample_toy(name, jax.random.key(0), 1001))
    assert not np.allclose(a, data.sample_toy(name, jax.random.key(1), 1001))
    assert jax.jit(data.DISTRIBUTIONS[name], static_argnums=1)(jax.random.key(0), 16).shape == (
        16,
        2,
    )


def test_checkerboard_support_and_density():
    x = data.sample_toy("checkerboard", jax.random.key(0), N)
    assert bool(jnp.isfinite(checkerboard_log_prob(x)).all())
    off_board = jnp.array([[1.0, -1.0], [-3.0, -1.0], [5.0, 0.0]])
    assert bool(jnp.isinf(checkerboard_log_prob(off_board)).all())
    # uniform on the board: each of the 8 squares of side 2 holds 1/8 of the mass
    squares = (jnp.floor(x[:, 0] / 2) + 2) * 4 + (jnp.floor(x[:, 1] / 2) + 2)
    counts = np.bincount(np.asarray(squares, int), minlength=16)
    assert (counts > 0).sum() == 8
    np.testing.assert_allclose(counts[counts > 0] / N, 1 / 8, atol=0.01)
    assert pytest.approx(math.log(32)) == data.CHECKERBOARD_ENTROPY


def test_quantized_toy_batches_are_tokens_of_the_bins():
    x = jnp.array([[-4.0, 3.999], [0.0, -0.001], [-9.0, 9.0]])
    np.testing.assert_array_equal(data.quantize(x, 128), [[0, 127], [64, 63], [0, 127]])
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from flowjax.data.generated import GeneratedBatches

    sharding = NamedSharding(Mesh(np.array(jax.devices()[:1]), ("data",)), PartitionSpec("data"))
    points = next(GeneratedBatches("checkerboard", 512, 3, sharding))["x1"]
    tokens = next(GeneratedBatches("checkerboard", 512, 3, sharding, bins=16))["x1"]
    assert tokens.dtype == jnp.int32 and int(tokens.min()) >= 0 and int(tokens.max()) < 16
    np.testing.assert_array_equal(tokens, data.quantize(points, 16))  # the same draws


def test_ffjord_eight_gaussians_geometry():
    x = data.sample_toy("8gaussians", jax.random.key(0), N)
    r = jnp.linalg.norm(x, axis=1)
    assert float(jnp.median(r)) == pytest.approx(4 / 1.414, abs=0.1)


def test_torchcfm_variants():
    g = data.sample_toy("8gaussians_cfm", jax.random.key(0), 8 * 2000)
    angles = jnp.round(jnp.arctan2(g[:, 1], g[:, 0]) / (np.pi / 4)) % 8
    counts = np.bincount(np.asarray(angles, int), minlength=8)
    assert counts.min() > 1500  # eight clusters on the circle of radius 5 ...
    centers = 5 * jnp.stack(
        [jnp.cos(jnp.arange(8) * np.pi / 4), jnp.sin(jnp.arange(8) * np.pi / 4)], 1
    )
    nearest = jnp.argmin(jnp.linalg.norm(g[:, None] - centers[None], axis=2), axis=1)
    resid = g - centers[nearest]
    assert float(resid.std()) == pytest.approx(1.0, abs=0.1)  # ... with unit std
    key = jax.random.key(3)
    np.testing.assert_allclose(
        data.sample_toy("scurve_cfm", key, 100),
        1.5 * data.sample_toy("scurve", key, 100),
        rtol=1e-6,
    )
    m = data.sample_toy("moons_cfm", key, N)
    # sklearn moons span x in [-1, 2], y in [-0.5, 1]; x2 then x - 1: x in [-3, 3], y in [-1, 2]
    np.testing.assert_allclose(np.percentile(m[:, 0], [0.1, 99.9]), [-3, 3], atol=0.3)
    np.testing.assert_allclose(np.percentile(m[:, 1], [0.1, 99.9]), [-1, 2], atol=0.3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown distribution 'spiral'"):
        data.sample_toy("spiral", jax.random.key(0), 10)
    with pytest.raises(ValueError, match="n must be a positive int"):
        data.sample_toy("moons", jax.random.key(0), 0)

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import metrics, paths
from tests.gaussian import GaussianTarget


def test_w2_of_identical_and_shifted_sets():
    x = np.asarray(jax.random.normal(jax.random.key(0), (500, 2)))
    assert metrics.wasserstein2(x, x) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([3.0, -4.0])
    assert metrics.wasserstein2(x, x + shift) == pytest.approx(5.0, rel=1e-9)
    # different sizes are fine (uniform weights)
    assert metrics.wasserstein2(x[:200], x[:300] + shift) == pytest.approx(5.0, rel=0.1)


def test_normalized_path_energy_of_the_ot_map_is_zero():
    """N(0, I) -> N(mu, s^2 I): the OT map x -> mu + s x, followed along straight lines, has
    path energy W2^2; the marginal flow of independent CondOT pairs curves and spends more."""
    mu, s = jnp.array([1.0, -2.0]), 0.5

    def displacement(mu, x, t):  # McCann interpolation: x_t = t mu + (1 - t + t s) x0
        x0 = (x - t[:, None] * mu) / (1.0 - t + t * s)[:, None]
        return mu + (s - 1.0) * x0

    x0 = jax.random.normal(jax.random.key(1), (20_000, 2))
    w2 = float(jnp.sqrt(jnp.sum(mu**2) + 2 * (s - 1) ** 2))  # closed form between the Gaussians
    energy = float(metrics.path_energy(displacement, mu, x0, num_steps=50))
    assert energy == pytest.approx(float(jnp.mean(jnp.sum((mu + (s - 1) * x0) ** 2, 1))), rel=1e-4)
    assert metrics.normalized_path_energy(energy, w2) < 0.01
    target = GaussianTarget(mu=mu, cov=np.eye(2) * s**2)
    marginal = float(metrics.path_energy(target.velocity(paths.CondOT()), mu, x0, num_steps=50))
    assert metrics.normalized_path_energy(marginal, w2) > 0.03


@pytest.mark.slow
def test_w2_at_ten_thousand_points():
    x = np.asarray(jax.random.normal(jax.random.key(2), (10_000, 2)))
    y = np.asarray(jax.random.normal(jax.random.key(3), (10_000, 2))) + np.array([1.0, 0.0])
    assert metrics.wasserstein2(x, y) == pytest.approx(
        1.0, abs=0.05
    )  # two unit Gaussians, shifted by 1

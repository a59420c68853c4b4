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


def _on_circle(angles):
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def _geodesic2(x, y, xp=np):
    """Squared geodesic (arc-length) distances between unit vectors `[n, 2], [m, 2] -> [n, m]`:
    the angle between them, as atan2(|x cross y|, x . y) (accurate also for tiny angles)."""
    cross = x[:, :1] * y[:, 1] - x[:, 1:] * y[:, 0]
    return xp.arctan2(xp.abs(cross), x @ y.T) ** 2


def test_w2_on_the_circle_is_the_rotation_angle_under_the_geodesic_cost():
    """Points on an arc of 0.8 rad and the same points rotated by theta: the geodesic W2 is
    theta (on an arc the circle is a line, where a shift's W2 is its length); the Euclidean
    (chord) W2 is 2 sin(theta / 2) (a convex function of the arc length below pi / 2, so the
    rotation is optimal for it too). 2100 points: the cost is evaluated in two row chunks."""
    theta, n = 0.5, 2100
    uniform = jax.random.uniform(jax.random.key(0), (n,), minval=-0.4, maxval=0.4)
    angles = np.pi + np.asarray(uniform, np.float64)  # float64: the rotation itself is exact
    x = _on_circle(angles)
    y = _on_circle(angles + theta)[np.asarray(jax.random.permutation(jax.random.key(1), n))]
    assert metrics.wasserstein2(x, y, cost=_geodesic2) == pytest.approx(theta, rel=1e-9)
    chord = metrics.wasserstein2(x, y)
    assert chord == pytest.approx(2 * np.sin(theta / 2), rel=1e-9)
    assert theta - chord > 5e-3


def test_w2_with_a_custom_cost_of_identical_sets_and_shape_check():
    x = _on_circle(np.asarray(jax.random.uniform(jax.random.key(2), (300,), maxval=6.0)))
    jax_cost = lambda a, b: _geodesic2(jnp.asarray(a), jnp.asarray(b), xp=jnp)  # noqa: E731
    assert metrics.wasserstein2(x, x, cost=jax_cost) == pytest.approx(0.0, abs=1e-6)
    assert metrics.wasserstein2(x, np.roll(x, 1, axis=1), cost=jax_cost) > 0.1
    with pytest.raises(ValueError, match=r"\[n, m\] = \[300, 200\].*got shape \(200, 300\)"):
        metrics.wasserstein2(x, x[:200], cost=lambda a, b: _geodesic2(b, a))

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import metrics, paths, solvers
from tests.gaussian import GaussianTarget


def test_uniform_model_has_eight_bits_per_dim():
    x = jax.random.randint(jax.random.key(0), (4, 3, 3, 3), 0, 256)
    uniform = lambda key, y: jnp.full(y.shape[0], -y[0].size * math.log(2.0))  # noqa: E731
    np.testing.assert_allclose(
        metrics.bits_per_dim(uniform, jax.random.key(1), x, num_draws=3), 8.0, rtol=1e-6
    )


def test_dequantization_stays_in_its_bin():
    x = jnp.arange(256).reshape(1, 256)
    y = metrics.dequantize(jax.random.key(0), x, low=0.0, high=256.0)
    assert bool(((y >= x) & (y < x + 1)).all())


def test_bits_per_dim_through_a_flow_matches_the_gaussian_density():
    """A flow to N(mu, Sigma) in [-1, 1] units: the ODE bpd equals the analytic one."""
    target = GaussianTarget(mu=[0.1, -0.2], cov=[[0.09, 0.02], [0.02, 0.04]])
    v = target.velocity(paths.CondOT())
    x = jax.random.randint(jax.random.key(2), (6, 2), 80, 170)

    def flow_logp(key, y):
        return solvers.log_likelihood(v, target.mu, y)[0]

    def exact_logp(key, y):
        return target.log_prob(y)

    a = metrics.bits_per_dim(flow_logp, jax.random.key(3), x, num_draws=2)
    b = metrics.bits_per_dim(exact_logp, jax.random.key(3), x, num_draws=2)
    np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="num_draws must be a positive int"):
        metrics.bits_per_dim(exact_logp, jax.random.key(3), x, num_draws=0)


def test_bits_per_dim_of_quantized_gaussian_data_is_its_entropy():
    """8-bit data quantized from N(128, 20^2) per pixel has a known discrete entropy H; the
    exact flow to the matching Gaussian in [-1, 1] units scores H bits/dim (up to the
    within-bin curvature of the density, ~1e-4 bits, and Monte Carlo error)."""
    from scipy.stats import norm

    std = 20.0
    edges = norm.cdf((np.arange(257) - 128.0) / std)
    p = np.diff(edges)
    entropy = -np.sum(p[p > 0] * np.log2(p[p > 0]))  # bits per pixel
    z = jax.random.normal(jax.random.key(4), (2000, 2))
    x = jnp.clip(jnp.floor(128.0 + std * z), 0, 255).astype(jnp.int32)
    target = GaussianTarget(mu=[0.0, 0.0], cov=[[(std / 128) ** 2, 0.0], [0.0, (std / 128) ** 2]])
    v = target.velocity(paths.CondOT())

    def flow_logp(key, y):
        return solvers.log_likelihood(v, target.mu, y)[0]

    bpd = metrics.bits_per_dim(flow_logp, jax.random.key(5), x)
    assert abs(float(jnp.mean(bpd)) - entropy) < 0.06  # standard error ~0.016 bits


def test_joint_cfm_objective_of_the_exact_field_is_the_conditional_variance(target):
    """For independent pairs N(0, I) -> N(mu, Sigma) on the CondOT path, the exact marginal
    field leaves E_t tr Cov(x1 - x0 | x_t) = sum_d int_0^1 lam_d / (t^2 lam_d + (1 - t)^2) dt."""
    sched = paths.CondOT()
    k0, k1, k = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k0, (51_200, 2))
    x1 = target.mu + (jax.random.normal(k1, (51_200, 2)) * jnp.sqrt(target.lam)) @ target.q.T
    value = metrics.joint_cfm_objective(
        target.velocity(sched), target.mu, k, x0, x1, path=paths.AffinePath(sched)
    )
    t = np.linspace(0.0, 1.0, 100_001)
    lam = np.asarray(target.lam, np.float64)[:, None]
    expected = np.sum(np.trapezoid(lam / (t**2 * lam + (1 - t) ** 2), t, axis=1))
    np.testing.assert_allclose(float(value), expected, rtol=0.03)
    with pytest.raises(ValueError, match="at least batch_size = 256"):
        metrics.joint_cfm_objective(
            target.velocity(sched), target.mu, k, x0[:10], x1[:10], path=paths.AffinePath(sched)
        )

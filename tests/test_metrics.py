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

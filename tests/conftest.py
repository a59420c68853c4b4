import jax
import pytest

from tests.gaussian import GaussianTarget


@pytest.fixture
def target():
    """A correlated 2-D Gaussian target (off-diagonal covariance)."""
    return GaussianTarget(mu=[1.0, -2.0], cov=[[0.5, 0.3], [0.3, 0.4]])


@pytest.fixture
def key():
    return jax.random.key(0)

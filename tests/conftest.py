import os

# the TPU compiler of the tpu-compile extra is no TPU: tests (and their subprocesses) run on CPU
os.environ.setdefault("JAX_PLATFORMS", "cpu")

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

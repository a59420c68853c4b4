import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import time_samplers as ts

N = 200_000


def test_uniform_moments_and_clipping(key):
    t = ts.Uniform()(key, (N,))
    assert t.shape == (N,) and float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    np.testing.assert_allclose([t.mean(), t.var()], [0.5, 1 / 12], atol=3e-3)
    clipped = ts.Uniform(eps=0.1)(key, (N,))
    assert float(clipped.min()) == pytest.approx(0.1) and float(clipped.max()) == pytest.approx(0.9)


def test_logit_normal_has_normal_logits(key):
    t = ts.LogitNormal(mean=0.5, std=0.8)(key, (N,))
    logits = jnp.log(t) - jnp.log1p(-t)
    np.testing.assert_allclose([logits.mean(), logits.std()], [0.5, 0.8], atol=1e-2)


def test_edm_lognormal_is_the_skewed_sampler(key):
    t = ts.EDMLogNormal()(key, (N,))
    sigma = (1.0 - t) / t  # the EDM noise level, log-normal(-1.2, 1.2)
    np.testing.assert_allclose(
        [jnp.log(sigma).mean(), jnp.log(sigma).std()], [-1.2, 1.2], atol=2e-2
    )
    assert float(t.max()) <= 1.0 and float(t.min()) >= 1e-4
    assert float(jnp.median(t)) == pytest.approx(1 / (1 + np.exp(-1.2)), abs=5e-3)  # skewed to data


def test_samplers_vmap_over_keys(key):
    keys = jax.random.split(key, 4)
    t = jax.vmap(lambda k: ts.LogitNormal()(k, (8,)))(keys)
    assert t.shape == (4, 8) and len(np.unique(np.asarray(t))) == 32

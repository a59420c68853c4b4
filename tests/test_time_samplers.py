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


def _logit(t):
    return jnp.log(t) - jnp.log1p(-t)


def test_time_pairs_of_one_sampler_draw_what_they_drew_before(key):
    """The default pairs: two draws of the sampler at once, sorted, e = s on 1 - ratio."""
    sampler = ts.LogitNormal(0.4, 1.0)
    s, e = ts.TimePairs(sampler, 0.25)(key, (1000,))
    k_times, k_equal = jax.random.split(key)
    a, b = sampler(k_times, (2, 1000))
    expected_e = jnp.where(jax.random.uniform(k_equal, (1000,)) >= 0.25, s, jnp.maximum(a, b))
    np.testing.assert_array_equal(s, jnp.minimum(a, b))
    np.testing.assert_array_equal(e, expected_e)


@pytest.mark.parametrize("pairing", ["sort", "max"])
def test_time_pairs_of_two_samplers_are_py_meanflow_s_in_our_time(key, pairing):
    """py-meanflow's v0 / v1 samplers (t ~ LN(-0.6, 1.6), r ~ LN(-4, 1.6) at t = 1 noise),
    simulated in its convention, against ours with s = 1 - t, e = 1 - r: the same laws."""
    pairs = ts.TimePairs(ts.LogitNormal(0.6, 1.6), 0.75, ts.LogitNormal(4.0, 1.6), pairing)
    s, e = pairs(key, (N,))
    n_t, n_r, u = jax.random.normal(jax.random.key(5), (3, N))
    t, r = jax.nn.sigmoid(-0.6 + 1.6 * n_t), jax.nn.sigmoid(-4.0 + 1.6 * n_r)
    equal = jax.scipy.stats.norm.cdf(u) < 0.25
    if pairing == "sort":  # v0: sorted, then r = t on 1 - ratio
        t, r = jnp.maximum(t, r), jnp.minimum(t, r)
        r = jnp.where(equal, t, r)
    else:  # v1: r = t on 1 - ratio, then r = min(t, r)
        r = jnp.minimum(t, jnp.where(equal, t, r))
    assert bool(jnp.all(s <= e))
    for ours, theirs in ((s, 1 - t), (e, 1 - r)):
        assert float(_logit(ours).mean()) == pytest.approx(float(_logit(theirs).mean()), abs=0.03)
        assert float(ours.mean()) == pytest.approx(float(theirs.mean()), abs=4e-3)
    assert float(jnp.mean(s == e)) == pytest.approx(float(jnp.mean(t == r)), abs=6e-3)
    if pairing == "max":  # s is the first draw itself: logit-normal (0.6, 1.6)
        np.testing.assert_allclose([_logit(s).mean(), _logit(s).std()], [0.6, 1.6], atol=0.02)
    with pytest.raises(ValueError, match="pairing"):
        ts.TimePairs(pairing="min")

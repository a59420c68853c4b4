import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import paths, solvers
from flowjax.solvers.likelihood import exact_divergence, hutchinson_divergence
from tests.gaussian import Marginal


def _data(target, key, n):
    return target.mu + jax.random.normal(key, (n, 2)) @ jnp.linalg.cholesky(target.cov).T


@pytest.mark.parametrize("batch_mode", solvers.BATCH_MODES)
@pytest.mark.parametrize("sched", [paths.CondOT(), paths.VP()], ids=["condot", "vp"])
def test_exact_likelihood_equals_the_analytic_density(sched, batch_mode, target):
    x1 = _data(target, jax.random.key(1), 32)
    t0 = 1.0 - 1e-5 if isinstance(sched, paths.VP) else 1.0
    # the exact p_0 of the path (N(0, I) up to VP's small alpha_0 offset)
    logp, sol = solvers.log_likelihood(
        target.velocity(sched),
        target.mu,
        x1,
        source=Marginal(target, sched, 0.0),
        t0=t0,
        rtol=1e-6,
        atol=1e-6,
        batch_mode=batch_mode,
    )
    expected = target.log_prob(x1, sched, jnp.full(32, t0))
    np.testing.assert_allclose(logp, expected, atol=1e-4)
    assert bool(sol.stats.success.all()) and int(sol.stats.nfe_batch) > 0


@pytest.mark.parametrize("probe", solvers.PROBES)
def test_hutchinson_is_unbiased_within_its_standard_error(probe, target):
    sched = paths.CondOT()
    v = target.velocity(sched)
    x1 = _data(target, jax.random.key(2), 4)
    exact, _ = solvers.log_likelihood(v, target.mu, x1)

    @jax.jit
    def estimate(key):
        return solvers.log_likelihood(
            v,
            target.mu,
            x1,
            key=key,
            divergence="hutchinson",
            probe=probe,
            method="rk4",
            num_steps=16,
        )[0]

    draws = jax.vmap(estimate)(jax.random.split(jax.random.key(3), 400))  # [400, 4]
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(draws.shape[0])
    assert float(se.min()) > 1e-3  # the estimator is noisy (correlated target) ...
    np.testing.assert_array_less(jnp.abs(mean - exact), 4 * se + 1e-3)  # ... and unbiased
    more_probes, _ = solvers.log_likelihood(
        v, target.mu, x1, key=jax.random.key(4), divergence="hutchinson", probe=probe, num_probes=64
    )
    np.testing.assert_allclose(more_probes, exact, atol=10 * float(se.max()))


def test_divergences_on_image_shaped_fields():
    w = jax.random.normal(jax.random.key(5), (4, 4, 3))
    x = jax.random.normal(jax.random.key(6), (2, 4, 4, 3))

    def f(x):  # per-sample, elementwise and a cross-pixel term
        return jnp.tanh(x) * w + jnp.roll(x, 1, axis=1)

    expected = jnp.sum(w * (1 - jnp.tanh(x) ** 2), axis=(1, 2, 3))
    for chunk in (None, 1, 7, 48):
        fx, div = exact_divergence(f, x, chunk_size=chunk)
        np.testing.assert_allclose(div, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fx, f(x))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        exact_divergence(f, x, chunk_size=0)
    probes = jax.random.rademacher(jax.random.key(7), (4000, 2, 4, 4, 3), jnp.float32)
    _, estimate = hutchinson_divergence(f, x, probes)
    np.testing.assert_allclose(estimate, expected, atol=0.3)


def test_likelihood_gradient_matches_the_analytic_score_in_mu(target):
    """Maximum likelihood works: d/dmu log p(x) through the ODE equals Sigma^-1 (x - mu)."""
    v = target.velocity(paths.CondOT())
    x1 = _data(target, jax.random.key(8), 3)

    def mean_logp(mu):
        return solvers.log_likelihood(v, mu, x1, rtol=1e-6, atol=1e-6)[0].mean()

    grad = jax.jit(jax.grad(mean_logp))(target.mu)
    expected = jnp.linalg.solve(target.cov, (x1 - target.mu).mean(0))
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-3)


def test_likelihood_bad_inputs(target):
    v = target.velocity(paths.CondOT())
    x1 = jnp.zeros((2, 2))
    with pytest.raises(ValueError, match="key is required"):
        solvers.log_likelihood(v, target.mu, x1, divergence="hutchinson")
    with pytest.raises(ValueError, match="unknown divergence 'trace'"):
        solvers.log_likelihood(v, target.mu, x1, divergence="trace")
    with pytest.raises(ValueError, match="unknown probe 'sphere'"):
        solvers.log_likelihood(
            v, target.mu, x1, key=jax.random.key(0), divergence="hutchinson", probe="sphere"
        )
    with pytest.raises(ValueError, match="num_probes must be a positive int"):
        solvers.log_likelihood(
            v, target.mu, x1, key=jax.random.key(0), divergence="hutchinson", num_probes=0
        )
    with pytest.raises(ValueError, match=r"unknown keyword arguments \['tol'\]"):
        solvers.log_likelihood(v, target.mu, x1, tol=1e-3)

"""Dirichlet flow matching: the incomplete beta function and its parameter derivative against
scipy and finite differences, the conditional velocity transports the Beta marginals, and the
exact posterior's flow samples the data law, unguided and guided."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from flowjax import families, guidance, paths
from flowjax.contracts import DataSpec, SamplerSettings


@pytest.mark.parametrize("b", [1, 3, 19, 159])
def test_incomplete_beta_and_its_derivative_in_a(b):
    a, x = np.meshgrid([1.0, 1.5, 3.0, 7.9, 20.0], [0.02, 0.3, 0.6, 0.9, 0.99])
    np.testing.assert_allclose(
        paths.betainc_integer_b(a, b, x), special.betainc(a, b, x), atol=3e-5
    )
    h = 1e-5  # central finite differences of scipy's float64 betainc in a
    fd = (special.betainc(a + h, b, x) - special.betainc(a - h, b, x)) / (2 * h)
    np.testing.assert_allclose(paths.betainc_da(a, b, x), fd, atol=3e-5)


def test_velocity_coefficient_against_its_definition():
    h = 1e-6
    for b in (1, 3, 19):
        a, x = np.meshgrid([1.0, 2.0, 7.9], [0.05, 0.2, 0.4, 0.6])
        fd = (special.betainc(a + h, b, x) - special.betainc(a - h, b, x)) / (2 * h)
        definition = -fd * special.beta(a, b) / ((1 - x) ** b * x ** (a - 1))
        ours = paths.velocity_coefficient(x, a, b + 1)
        np.testing.assert_allclose(ours, definition, rtol=2e-3)
    # K = 2 (b = 1) in closed form, C = -x log x / (a (1 - x)), up to the vertices, where the
    # finite sum of dI/da cancels
    a, x = np.meshgrid([1.0, 3.0, 50.0], [1e-4, 0.01, 0.5, 0.99, 0.9999])
    closed = -x * np.log(x) / (a * (1 - x))
    np.testing.assert_allclose(paths.velocity_coefficient(x, a, 2), closed, rtol=1e-4)
    assert bool(jnp.all(paths.velocity_coefficient(x, a, 160) > 0))


def test_the_conditional_flow_transports_the_uniform_dirichlet_to_the_path():
    """Integrating u_t(x | x1 = 0) from Dir(1, 1, 1, 1) lands on Dir(alpha_max, 1, 1, 1):
    its first coordinate is Beta(alpha_max, 3) (KS test), and points stay on the simplex."""
    path = paths.DirichletPath(4, alpha_max=8.0)
    x = jax.random.dirichlet(jax.random.key(0), jnp.ones(4), (4000,))
    x1 = jnp.zeros(4000, jnp.int32)
    field = lambda params, x, t: path.conditional_velocity(x, x1, t)  # noqa: E731
    from flowjax import solvers

    end = solvers.sample(field, None, x, method="rk4", num_steps=200).y
    np.testing.assert_allclose(end.sum(-1), 1.0, atol=1e-4)
    assert float(end.min()) > -1e-4
    assert stats.kstest(np.asarray(end[:, 0]), stats.beta(8.0, 3.0).cdf).pvalue > 1e-3


def test_the_flow_of_the_exact_posterior_samples_the_data_law():
    """With the exact posterior, p(i | x) proportional to q_i x_i^(alpha - 1), the sampled
    tokens follow q (chi-square), for each token independently."""
    q = jnp.array([0.5, 0.2, 0.2, 0.1])
    family = families.DirichletFM(
        families.DirichletFMConfig(alpha_max=20.0), DataSpec((2,), "int32", vocab_size=4)
    )

    def field(params, x, t, y=None):
        alpha = family.path.alpha(jnp.broadcast_to(t, x.shape[:1]))[:, None, None]
        return jnp.log(q) + (alpha - 1.0) * jnp.log(jnp.clip(x, 1e-12))

    sample = jax.jit(family.sampler(SamplerSettings("euler", steps=200)), static_argnums=(0, 3))
    tokens, solve_stats = sample(field, None, jax.random.key(1), 20_000, {})
    assert tokens.shape == (20_000, 2) and int(solve_stats.nfe_batch) == 201
    for i in range(2):
        counts = np.bincount(np.asarray(tokens[:, i]), minlength=4)
        assert stats.chisquare(counts, np.asarray(q, np.float64) * 20_000).pvalue > 1e-3
    loss, aux = family.loss(field, None, jax.random.key(2), {"x1": tokens[:512]})
    assert bool(jnp.isfinite(loss)) and 0.25 < float(aux["accuracy"]) < 1.0
    with pytest.raises(ValueError, match="alpha_max must be > 1"):
        families.DirichletFMConfig(alpha_max=1.0).check()


@pytest.mark.parametrize("w", [0.0, 1.0, 2.0])
def test_guided_sampling_follows_the_tilted_law_in_one_call_per_evaluation(w):
    """Guidance on the logits of exact class posteriors, log q_y(i) + (alpha - 1) log x_i, is
    the exact posterior of the tilted law q_w ∝ q_y^w q_null^(1 - w) (the x terms cancel):
    w = 1 samples the class, w = 0 the marginal, w = 2 the sharpened law; each evaluation is
    one network call on the doubled batch (w = 0, 1: on the batch alone)."""
    q = jnp.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.3, 0.5]])
    marginal = q.mean(0)
    family = families.DirichletFM(
        families.DirichletFMConfig(alpha_max=20.0), DataSpec((1,), "int32", vocab_size=4)
    )
    batches = []

    def field(params, x, t, y):
        batches.append(x.shape[0])
        alpha = family.path.alpha(jnp.broadcast_to(t, x.shape[:1]))[:, None, None]
        log_q = jnp.where((y == guidance.NULL_LABEL)[:, None], jnp.log(marginal), jnp.log(q[y]))
        return log_q[:, None] + (alpha - 1.0) * jnp.log(jnp.clip(x, 1e-12))

    n = 20_000
    sample = jax.jit(family.sampler(SamplerSettings("euler", 200, w)), static_argnums=(0, 3))
    y = jnp.arange(n) % 2
    tokens, _ = sample(field, None, jax.random.key(3), n, {"y": y})
    assert set(batches) == {n if w in (0.0, 1.0) else 2 * n}
    tilted = np.asarray(q, np.float64) ** w * np.asarray(marginal, np.float64) ** (1.0 - w)
    tilted /= tilted.sum(1, keepdims=True)
    for label in (0, 1):
        counts = np.bincount(np.asarray(tokens[y == label, 0]), minlength=4)
        assert stats.chisquare(counts, tilted[label] * counts.sum()).pvalue > 1e-3

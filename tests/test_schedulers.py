import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import paths

SCHEDULERS = {
    "condot": paths.CondOT(),
    "condot_smin": paths.CondOT(sigma_min=1e-2),
    "poly3": paths.Polynomial(n=3.0),
    "vp": paths.VP(),
    "linear_vp": paths.LinearVP(),
    "cosine": paths.Cosine(),
    "ve": paths.VE(sigma_min=0.01, sigma_max=50.0),
}
INTERIOR = jnp.linspace(0.02, 0.98, 49)


@pytest.mark.parametrize(
    ("name", "at0", "at1"),
    [
        ("condot", (0.0, 1.0), (1.0, 0.0)),
        ("condot_smin", (0.0, 1.0), (1.0, 1e-2)),
        ("poly3", (0.0, 1.0), (1.0, 0.0)),
        (
            "vp",
            (math.exp(-0.5 * (0.1 + 0.5 * 19.9)), math.sqrt(1 - math.exp(-(0.1 + 0.5 * 19.9)))),
            (1.0, 0.0),
        ),
        ("linear_vp", (0.0, 1.0), (1.0, 0.0)),
        ("cosine", (0.0, 1.0), (1.0, 0.0)),
        ("ve", (1.0, 50.0), (1.0, 0.01)),
    ],
)
def test_boundary_values(name, at0, at1):
    s = SCHEDULERS[name]
    np.testing.assert_allclose([s.alpha(0.0), s.sigma(0.0)], at0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([s.alpha(1.0), s.sigma(1.0)], at1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_closed_form_derivatives_match_jvp(name):
    s = SCHEDULERS[name]
    ones = jnp.ones_like(INTERIOR)
    d_alpha = jax.jvp(s.alpha, (INTERIOR,), (ones,))[1]
    d_sigma = jax.jvp(s.sigma, (INTERIOR,), (ones,))[1]
    np.testing.assert_allclose(s.d_alpha(INTERIOR), d_alpha, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.d_sigma(INTERIOR), d_sigma, rtol=1e-5, atol=1e-6)
    # and a finite difference, so that alpha/sigma and their derivatives agree with the math
    h = 1e-3
    fd = (s.sigma(INTERIOR + h) - s.sigma(INTERIOR - h)) / (2 * h)
    np.testing.assert_allclose(s.d_sigma(INTERIOR), fd, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("name", SCHEDULERS)
def test_snr_inverse_round_trips(name):
    s = SCHEDULERS[name]
    np.testing.assert_allclose(s.snr_inverse(s.snr(INTERIOR)), INTERIOR, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["condot", "poly3", "vp", "linear_vp", "cosine"])
def test_snr_inverse_is_finite_at_the_ends(name):
    s = SCHEDULERS[name]
    np.testing.assert_allclose(s.snr_inverse(jnp.inf), 1.0, atol=1e-6)


def test_base_class_derivatives_by_jvp():
    class Quadratic(paths.Scheduler):
        def alpha(self, t):
            return t**2

        def sigma(self, t):
            return 1.0 - t**2

    c = Quadratic()(INTERIOR)
    np.testing.assert_allclose(c.d_alpha, 2 * INTERIOR, rtol=1e-6)
    np.testing.assert_allclose(c.d_sigma, -2 * INTERIOR, rtol=1e-6)
    with pytest.raises(NotImplementedError, match="SNR inverse"):
        Quadratic().snr_inverse(1.0)


def test_schedulers_are_pytrees_that_jit_and_differentiate():
    s = paths.CondOT(sigma_min=0.1)
    leaves = jax.tree.leaves(s)
    assert leaves == [0.1]

    @jax.jit
    def sigma_at_half(sched):
        return sched.sigma(0.5)

    assert float(sigma_at_half(s)) == pytest.approx(0.55)
    grad = jax.grad(lambda smin: paths.CondOT(sigma_min=smin).sigma(0.5))(0.1)
    assert float(grad) == pytest.approx(0.5)
    chex.assert_trees_all_close(jax.vmap(s.alpha)(INTERIOR), INTERIOR)

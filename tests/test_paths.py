import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import paths
from tests.test_schedulers import SCHEDULERS

KINDS = ("velocity", "x1", "epsilon", "score")


def _batch(key, shape):
    k0, k1, kt = jax.random.split(key, 3)
    x0 = jax.random.normal(k0, shape)
    x1 = jax.random.normal(k1, shape) + 1.0
    t = jax.random.uniform(kt, shape[:1], minval=0.05, maxval=0.95)
    return x0, x1, t


class PathTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_sample_is_the_affine_interpolant_and_its_derivative(self):
        path = paths.AffinePath(paths.Cosine())
        x0, x1, t = _batch(jax.random.key(1), (5, 4, 4, 3))
        x_t, dx_t = self.variant(path.sample)(x0, x1, t)
        a, s = jnp.sin(jnp.pi * t / 2), jnp.cos(jnp.pi * t / 2)
        np.testing.assert_allclose(
            x_t, a[:, None, None, None] * x1 + s[:, None, None, None] * x0, atol=1e-6
        )
        # dx_t is the time derivative of x_t: jax.jvp through the path
        _, jvp = jax.jvp(lambda t: path.sample(x0, x1, t).x_t, (t,), (jnp.ones_like(t),))
        np.testing.assert_allclose(dx_t, jvp, rtol=1e-5, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_velocity_from_x1_is_the_conditional_velocity(self):
        for name, sched in SCHEDULERS.items():
            path = paths.AffinePath(sched)
            x0, x1, t = _batch(jax.random.key(2), (6, 2))
            x_t, dx_t = path.sample(x0, x1, t)
            np.testing.assert_allclose(
                self.variant(path.velocity_from_x1)(x1, x_t, t),
                dx_t,
                rtol=2e-4,
                atol=2e-4,
                err_msg=name,
            )
            np.testing.assert_allclose(
                path.epsilon_from_velocity(dx_t, x_t, t), x0, rtol=2e-4, atol=2e-4
            )
            np.testing.assert_allclose(
                path.x1_from_velocity(dx_t, x_t, t), x1, rtol=2e-4, atol=2e-4
            )


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("shape", [(7, 2), (3, 4, 4, 3)])
def test_all_conversions_round_trip(name, shape):
    path = paths.AffinePath(SCHEDULERS[name])
    x0, x1, t = _batch(jax.random.key(3), shape)
    x_t, _ = path.sample(x0, x1, t)
    pred = jax.random.normal(jax.random.key(4), shape)
    for src, dst in itertools.permutations(KINDS, 2):
        there = path.convert(pred, x_t, t, src=src, dst=dst)
        back = path.convert(there, x_t, t, src=dst, dst=src)
        np.testing.assert_allclose(
            back, pred, rtol=1e-3, atol=1e-3, err_msg=f"{name}: {src}->{dst}"
        )


@pytest.mark.parametrize("name", ["condot", "vp", "cosine", "linear_vp"])
def test_score_conversion_matches_the_gaussian_marginal(name, target):
    sched = SCHEDULERS[name]
    path = paths.AffinePath(sched)
    x = jax.random.normal(jax.random.key(5), (16, 2))
    t = jnp.linspace(0.1, 0.9, 16)
    score = target.score(sched, x, t)
    v = target.velocity(sched)(target.mu, x, t)
    np.testing.assert_allclose(path.velocity_from_score(score, x, t), v, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(path.score_from_velocity(v, x, t), score, rtol=1e-3, atol=1e-3)
    # E[x1 | x_t] -> velocity through the generic wrapper
    v_from_x1 = paths.as_velocity(target.mean_x1(sched), path, "x1")
    np.testing.assert_allclose(v_from_x1(target.mu, x, t), v, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("trained", "new"), [("condot", "cosine"), ("cosine", "vp"), ("vp", "linear_vp")]
)
def test_scheduler_change_gives_the_new_schedulers_marginal_field(trained, new, target):
    """A field trained on one scheduler, re-timed, is the exact marginal field of the other."""
    v_new = paths.change_scheduler(
        target.velocity(SCHEDULERS[trained]), SCHEDULERS[trained], SCHEDULERS[new]
    )
    x = jax.random.normal(jax.random.key(6), (32, 2))
    r = jnp.linspace(0.1, 0.9, 32)
    expected = target.velocity(SCHEDULERS[new])(target.mu, x, r)
    np.testing.assert_allclose(v_new(target.mu, x, r), expected, rtol=2e-3, atol=2e-3)


def test_bad_inputs_name_the_argument():
    path = paths.AffinePath(paths.CondOT())
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="t must be a scalar or have shape"):
        path.sample(x, x, jnp.zeros(3))
    with pytest.raises(ValueError, match="x0 and x1 must have the same shape"):
        path.sample(x, jnp.zeros((4, 3)), 0.5)
    with pytest.raises(ValueError, match="unknown parameterization 'noise'"):
        path.convert(x, x, 0.5, src="noise", dst="velocity")
    with pytest.raises(ValueError, match="unknown parameterization"):
        paths.as_velocity(lambda p, x, t: x, path, "eps")

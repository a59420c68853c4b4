import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import losses, matchers, paths


def test_brownian_bridge_velocity_is_the_time_derivative_of_its_path():
    """u_t = d/dt [mu_t + s_t eps] for fixed (x0, x1, eps): a jvp through the sample."""
    path = paths.NoisyPath(paths.CondOT(), paths.BrownianBridge(sigma=0.7))
    x0, x1 = jax.random.normal(jax.random.key(0), (2, 16, 3))
    t = jnp.linspace(0.05, 0.95, 16)
    key = jax.random.key(1)
    x_t, u_t = path.sample(x0, x1, t, key=key)
    _, jvp = jax.jvp(lambda t: path.sample(x0, x1, t, key=key).x_t, (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(u_t, jvp, rtol=1e-4, atol=1e-4)
    eps = jax.random.normal(key, x1.shape)
    mean = t[:, None] * x1 + (1 - t[:, None]) * x0
    np.testing.assert_allclose(x_t, mean + 0.7 * jnp.sqrt(t * (1 - t))[:, None] * eps, atol=1e-6)
    # TorchCFM's form: u_t = x1 - x0 + (1 - 2t) / (2 t (1 - t)) (x_t - mu_t)
    lam = (1 - 2 * t) / (2 * t * (1 - t))
    np.testing.assert_allclose(u_t, x1 - x0 + lam[:, None] * (x_t - mean), rtol=1e-4, atol=1e-4)
    assert bool(jnp.isfinite(path.sample(x0, x1, jnp.zeros(16), key=key).dx_t).all())


@pytest.mark.parametrize("name", list(matchers.MATCHERS))
def test_every_matcher_trains_through_the_loss(name):
    m = matchers.matcher(name, 0.1)
    x1 = jax.random.normal(jax.random.key(2), (64, 2)) + 3.0
    v = lambda w, x, t: w * x  # noqa: E731
    loss, _ = jax.jit(lambda w, k: losses.cfm_loss(v, w, k, x1, path=m.path, coupling=m.coupling))(
        jnp.float32(0.5), jax.random.key(3)
    )
    grad = jax.grad(
        lambda w: losses.cfm_loss(v, w, jax.random.key(3), x1, path=m.path, coupling=m.coupling)[0]
    )(0.5)
    assert np.isfinite(float(loss)) and np.isfinite(float(grad)) and float(grad) != 0.0


def test_vp_and_target_fm_paths_match_torchcfm_formulas():
    x0, x1 = jax.random.normal(jax.random.key(4), (2, 8, 2))
    t = jnp.linspace(0.1, 0.9, 8)[:, None]
    vp = matchers.matcher("vpcfm", 0.0).path.sample(x0, x1, t[:, 0], key=jax.random.key(5))
    np.testing.assert_allclose(
        vp.x_t, jnp.cos(jnp.pi * t / 2) * x0 + jnp.sin(jnp.pi * t / 2) * x1, atol=1e-6
    )
    np.testing.assert_allclose(
        vp.dx_t,
        jnp.pi / 2 * (jnp.cos(jnp.pi * t / 2) * x1 - jnp.sin(jnp.pi * t / 2) * x0),
        atol=1e-5,
    )
    sigma = 0.1
    fm = matchers.matcher("fm", sigma).path.sample(x0, x1, t[:, 0])
    np.testing.assert_allclose(fm.x_t, t * x1 + (1 - (1 - sigma) * t) * x0, atol=1e-6)
    np.testing.assert_allclose(
        fm.dx_t, (x1 - (1 - sigma) * fm.x_t) / (1 - (1 - sigma) * t), rtol=1e-4, atol=1e-4
    )


def test_matcher_arguments():
    with pytest.raises(ValueError, match="unknown matcher 'rf'"):
        matchers.matcher("rf", 0.1)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        matchers.matcher("icfm", -1.0)
    with pytest.raises(ValueError, match="needs a key"):
        matchers.matcher("icfm", 0.1).path.sample(jnp.zeros((2, 2)), jnp.zeros((2, 2)), 0.5)


def test_reflow_pairs_of_the_exact_gaussian_field_are_the_ot_map(target):
    """N(0, I) -> N(mu, Sigma) on the CondOT path: the marginal flow's map is the OT map
    x -> mu + Sigma^(1/2) x, so rectified flow's new pairs are optimal (cost W2^2)."""
    x0 = jax.random.normal(jax.random.key(0), (512, 2))
    sched = paths.CondOT()
    _, x1 = matchers.reflow_pairs(
        target.velocity(sched), target.mu, x0, method="dopri5", rtol=1e-6, atol=1e-6
    )
    root = (target.q * jnp.sqrt(target.lam)) @ target.q.T
    np.testing.assert_allclose(x1, target.mu + x0 @ root, atol=2e-3)

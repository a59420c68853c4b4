import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import losses, models, paths
from flowjax.time_samplers import Uniform

B = 8192


def _data(target, key, n=B):
    z = jax.random.normal(key, (n, 2))
    return target.mu + z @ jnp.linalg.cholesky(target.cov).T


@pytest.mark.parametrize("sched", [paths.CondOT(), paths.VP()])
def test_marginal_field_minimizes_the_loss(sched, target, key):
    """The CFM loss is minimized by the marginal velocity: any perturbation raises it."""
    path = paths.AffinePath(sched)
    x1 = _data(target, jax.random.key(1))
    v_star = target.velocity(sched)

    def loss_at(eps):
        def v(mu, x, t):
            return v_star(mu, x, t) + eps * jnp.stack([jnp.sin(x[:, 1]), t], axis=1)

        return losses.cfm_loss(v, target.mu, key, x1, path=path, time_sampler=Uniform(eps=1e-3))[0]

    l0, lp, lm = loss_at(0.0), loss_at(0.3), loss_at(-0.3)
    assert l0 < lp and l0 < lm
    # the loss is quadratic in eps; its fitted minimizer is near 0 (Monte-Carlo error only)
    eps_star = -0.3 * (lp - lm) / (2 * (lp + lm - 2 * l0))
    assert abs(float(eps_star)) < 0.05


def test_parameterizations_have_their_optimum(target, key):
    sched = paths.CondOT()
    path = paths.AffinePath(sched)
    x1 = _data(target, jax.random.key(2))
    f_star = target.mean_x1(sched)

    def loss_at(eps):
        f = lambda mu, x, t: f_star(mu, x, t) + eps  # noqa: E731
        return losses.cfm_loss(f, target.mu, key, x1, path=path, parameterization="x1")[0]

    assert loss_at(0.0) < loss_at(0.2) and loss_at(0.0) < loss_at(-0.2)
    # epsilon target: the identity model predicting x_t has loss E||x_t - x0||^2 > 0
    l_eps, aux = losses.cfm_loss(
        lambda p, x, t: x, None, key, x1, path=path, parameterization="epsilon"
    )
    assert float(l_eps) > 0 and set(aux) == {"mse", "target_rms", "pred_rms"}


def test_weighting_and_explicit_source(target, key):
    path = paths.AffinePath(paths.CondOT())
    x1 = _data(target, key, 64)
    x0 = jnp.zeros_like(x1)
    v = lambda p, x, t: p * x  # noqa: E731
    l1, _ = losses.cfm_loss(v, 1.0, key, x1, path=path, x0=x0)
    l2, _ = losses.cfm_loss(
        v, 1.0, key, x1, path=path, x0=x0, weighting=lambda t: 2 * jnp.ones_like(t)
    )
    np.testing.assert_allclose(l2, 2 * l1, rtol=1e-6)
    # x0 = 0 and v = x: x_t = t x1, target dx_t = x1, so the loss is E (1 - t)^2 |x1|^2 / 2
    t = Uniform()(jax.random.split(key, 3)[2], (64,))
    expected = jnp.mean((1 - t) ** 2 * jnp.mean(x1**2, axis=1))
    np.testing.assert_allclose(l1, expected, rtol=1e-5)


def test_coupling_and_conditioning_are_passed_through(key):
    seen = {}

    def reversed_coupling(key, x0, x1, **labels):
        seen["labels"] = labels
        return x0, x1[::-1], {k: v[::-1] for k, v in labels.items()}

    def v(params, x, t, y):
        seen["y"] = y
        return jnp.zeros_like(x)

    x1 = jnp.arange(8.0).reshape(4, 2)
    y = jnp.arange(4)
    losses.cfm_loss(
        v,
        None,
        key,
        x1,
        path=paths.AffinePath(paths.CondOT()),
        cond={"y": y},
        coupling=reversed_coupling,
    )
    np.testing.assert_array_equal(seen["labels"]["y"], y)
    np.testing.assert_array_equal(seen["y"], y[::-1])


def test_loss_composes_with_grad_jit_vmap_and_an_nnx_model(key):
    model = models.MLP(2, width=32, depth=2, num_classes=3, rngs=nnx.Rngs(0))
    v, params = models.functional(model)
    path = paths.AffinePath(paths.CondOT())
    x1 = jax.random.normal(key, (16, 2))
    y = jnp.arange(16) % 3

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss_fn(params, key):
        return losses.cfm_loss(v, params, key, x1, path=path, cond={"y": y})[0]

    grads = jax.grad(loss_fn)(params, key)
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and max(norms) > 0
    per_key = jax.vmap(loss_fn, in_axes=(None, 0))(params, jax.random.split(key, 5))
    assert per_key.shape == (5,) and len(np.unique(np.asarray(per_key))) == 5
    loss_fn(params, jax.random.key(9))  # a new key does not retrace


def test_bad_inputs(key):
    path = paths.AffinePath(paths.CondOT())
    x1 = jnp.zeros((4, 2))
    v = lambda p, x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="unknown parameterization 'score'"):
        losses.cfm_loss(v, None, key, x1, path=path, parameterization="score")
    with pytest.raises(ValueError, match="x0 and x1 must have the same shape"):
        losses.cfm_loss(v, None, key, x1, path=path, x0=jnp.zeros((4, 3)))
    with pytest.raises(TypeError, match="unexpected keyword argument 'label'"):
        losses.cfm_loss(v, None, key, x1, path=path, cond={"label": jnp.zeros(4)})

"""Library inputs outside their domain are a ValueError naming the argument, when concrete;
traced values pass (jit and vmap of the same objects keep working)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import couplings, losses, models, paths, solvers, sources, time_samplers

X = jnp.ones((4, 2))

BAD = [
    (lambda: paths.CondOT(sigma_min=1.0), r"CondOT sigma_min must lie in \[0, 1\)"),
    (lambda: paths.CondOT(sigma_min=-0.1), "CondOT sigma_min"),
    (lambda: paths.Polynomial(n=0.0), r"Polynomial n must lie in \(0, inf\]"),
    (lambda: paths.VP(beta_min=-1.0), "VP beta_min"),
    (lambda: paths.VP(beta_min=5.0, beta_max=1.0), "VP beta_max - beta_min"),
    (lambda: paths.VE(sigma_min=0.0), "VE sigma_min"),
    (lambda: paths.VE(sigma_min=10.0, sigma_max=1.0), "VE sigma_max - sigma_min"),
    (lambda: paths.Constant(-1.0), "Constant sigma"),
    (lambda: paths.BrownianBridge(-1.0), "BrownianBridge sigma"),
    (lambda: sources.Gaussian(0.0), r"Gaussian scale must lie in \(0, inf\]"),
    (lambda: sources.MaskToken(-1), "MaskToken mask"),
    (lambda: sources.UniformTokens(0), "UniformTokens vocab_size"),
    (lambda: time_samplers.Uniform(eps=0.5), "Uniform eps"),
    (lambda: time_samplers.LogitNormal(std=0.0), "LogitNormal std"),
    (lambda: time_samplers.EDMLogNormal(p_std=-1.0), "EDMLogNormal p_std"),
    (lambda: paths.AffinePath(paths.CondOT()).sample(X, X, 1.5), r"t must lie in \[0, 1\]"),
    (
        lambda: paths.NoisyPath(paths.CondOT(), paths.Constant(0.1)).sample(
            X, X, -0.1, key=jax.random.key(0)
        ),
        "t must lie in",
    ),
    (lambda: solvers.sample(lambda p, x, t: x, None, X, t1=1.5), "t1 must lie in"),
    (lambda: solvers.fixed_step(lambda p, x, t: x, None, X, t0=-1.0), "t0 must lie in"),
    (
        lambda: solvers.fixed_step(lambda p, x, t: x, None, X, ts=jnp.array([0.0, 2.0])),
        "ts must lie in",
    ),
    (lambda: solvers.log_likelihood(lambda p, x, t: x, None, X, t0=2.0), "t0 must lie in"),
    (
        lambda: couplings.ot_coupling("exact", within="y")(jax.random.key(0), X, X),
        r"ot_coupling\(within='y'\) needs the labels as y=\.\.\., got none",
    ),
    (
        lambda: losses.cfm_loss(
            lambda p, x, t, y: x,
            None,
            jax.random.key(0),
            X,
            path=paths.AffinePath(paths.CondOT()),
            cond={"y": jnp.zeros(3, int)},
        ),
        r"conditioning 'y' must be batched like x: shape \[B, \.\.\.\] with B = 4",
    ),
    (
        lambda: solvers.sample(lambda p, x, t, y: x, None, X, cond={"y": jnp.zeros(5, int)}),
        "conditioning 'y' must be batched like x",
    ),
    (
        lambda: models.MLP(2, width=8, depth=1, num_classes=3, rngs=nnx.Rngs(0))(
            X, 0.5, y=jnp.array([0, 1, 2, 7])
        ),
        r"labels must lie in \[0, 3\) \(or be the null class -1 or 3\), got \[7\]",
    ),
    (
        lambda: models.MLP(2, width=8, depth=1, num_classes=3, rngs=nnx.Rngs(0))(
            X, 0.5, y=jnp.array([0, -2, 1, 2])
        ),
        r"got \[-2\]",
    ),
]


@pytest.mark.parametrize(("make", "message"), BAD, ids=[m for _, m in BAD])
def test_out_of_domain_is_a_value_error_naming_it(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_traced_values_are_not_checked_and_still_compose():
    """Schedulers with traced parameters (vmap over sigma_min), traced times and traced labels
    work as before; the null labels -1 and num_classes are valid labels."""
    sigma = jax.vmap(lambda s: paths.CondOT(sigma_min=s).sigma(1.0))(jnp.array([0.0, 0.5]))
    np.testing.assert_allclose(sigma, [0.0, 0.5])
    path = paths.AffinePath(paths.CondOT())
    x_t = jax.jit(lambda t: path.sample(X, 2 * X, t).x_t)(jnp.full(4, 0.25))
    np.testing.assert_allclose(x_t, 1.25 * X)
    mlp = models.MLP(2, width=8, depth=1, num_classes=3, rngs=nnx.Rngs(0))
    null = mlp(X, 0.5, y=jnp.array([-1, 3, 0, 2]))
    assert null.shape == X.shape
    v, params = models.functional(mlp)
    traced = jax.jit(lambda y: v(params, X, 0.5, y=y))(jnp.array([0, 1, 2, 9]))
    assert traced.shape == X.shape  # inside jit the trainer's data check is the guard

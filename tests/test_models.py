import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models


@pytest.mark.parametrize("embedding", models.TIME_EMBEDDINGS)
def test_mlp_shapes_time_dependence_and_functional_round_trip(embedding):
    model = models.MLP(
        3, width=16, depth=3, activation="selu", time_embedding=embedding, rngs=nnx.Rngs(0)
    )
    x = jax.random.normal(jax.random.key(1), (5, 3))
    out = model(x, jnp.full(5, 0.3))
    assert out.shape == (5, 3)
    assert not np.allclose(out, model(x, 0.7))  # depends on t; a scalar t broadcasts
    v, params = models.functional(model)
    np.testing.assert_allclose(v(params, x, 0.3), out, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(v)(params, x, 0.3), out, rtol=1e-5, atol=1e-5)
    doubled = jax.tree.map(lambda p: 2 * p, params)
    rebuilt = v.module(doubled)
    assert isinstance(rebuilt, models.MLP)
    np.testing.assert_allclose(rebuilt(x, 0.3), v(doubled, x, 0.3), rtol=1e-6)
    assert not np.allclose(rebuilt(x, 0.3), out)


def test_mlp_class_conditioning_and_null_label():
    model = models.MLP(2, width=16, depth=2, num_classes=4, rngs=nnx.Rngs(0))
    x = jnp.ones((4, 2))
    by_label = model(x, 0.5, y=jnp.arange(4))
    assert len({tuple(np.round(r, 5)) for r in np.asarray(by_label)}) == 4
    np.testing.assert_allclose(model(x, 0.5), model(x, 0.5, y=jnp.full(4, 4)))  # y=None: null class
    with pytest.raises(ValueError, match="without num_classes"):
        models.MLP(2, width=8, depth=1, rngs=nnx.Rngs(0))(x, 0.5, y=jnp.zeros(4, int))


def test_mlp_gradients_and_bad_arguments():
    model = models.MLP(2, width=8, depth=2, time_embedding="learned", rngs=nnx.Rngs(0))
    v, params = models.functional(model)
    grads = jax.grad(lambda p: jnp.sum(v(p, jnp.ones((3, 2)), 0.2) ** 2))(params)
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match=r"x must have shape \[B, \*\[2\]\]"):
        model(jnp.ones((3, 3)), 0.2)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        models.MLP(2, activation="swish", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown time_embedding"):
        models.MLP(2, time_embedding="fourier", rngs=nnx.Rngs(0))


def test_sinusoidal_embedding():
    e = models.sinusoidal_embedding(jnp.array([0.0, 0.5]), 8)
    assert e.shape == (2, 8)
    np.testing.assert_allclose(e[0], [1, 1, 1, 1, 0, 0, 0, 0], atol=1e-7)
    with pytest.raises(ValueError, match="dim must be even"):
        models.sinusoidal_embedding(jnp.zeros(2), 7)


def test_mlp_flattens_image_events():
    model = models.MLP((4, 4, 1), width=16, depth=1, rngs=nnx.Rngs(0))
    x = jnp.ones((3, 4, 4, 1))
    assert model(x, 0.5).shape == (3, 4, 4, 1)

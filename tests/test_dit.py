import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models
from flowjax.guidance import NULL_LABEL
from flowjax.models.dit import DiT, sincos_positions
from flowjax.models.functional import parameter_count

# DiT-XL/2 of Peebles & Xie (latent 32x32x4, 1000 classes) has 675,129,632 parameters in the
# official code, counting its fixed position table (256 x 1152) and the learned-sigma half of
# the output layer (1152 x 16 + 16); neither exists here.
XL2 = 675_129_632 - 256 * 1152 - (1152 * 16 + 16)


def test_parameter_count_matches_the_paper_model():
    preset = DiT.PRESETS["XL/2"]
    shape = nnx.eval_shape(lambda: DiT((32, 32, 4), **preset, num_classes=1000, rngs=nnx.Rngs(0)))
    assert parameter_count(shape) == XL2


def _randomized(model):
    """adaLN-Zero makes the initial output exactly zero; give every parameter a value."""
    v, params = models.functional(model)
    v = jax.jit(v)
    keys = iter(jax.random.split(jax.random.key(1), len(jax.tree.leaves(params))))
    return v, jax.tree.map(lambda p: 0.05 * jax.random.normal(next(keys), p.shape), params)


def test_shapes_zero_init_conditioning_and_null_class():
    model = DiT((16, 16, 3), size="S", depth=2, width=64, heads=4, num_classes=10, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
    y = jnp.array([0, 1, 2, 3])
    out = nnx.jit(lambda m, x: m(x, 0.3))(model, x)  # y = None: the null class
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, 0.0)  # adaLN-Zero: gates and output layer start at zero
    v, params = _randomized(model)
    t = jnp.full(4, 0.3)
    a, b = v(params, x, t, y=y), v(params, x, t, y=jnp.full(4, 9))
    assert np.abs(a - b).max() > 1e-3
    null = v(params, x, t, y=jnp.full(4, 10))
    np.testing.assert_allclose(null, v(params, x, t), atol=1e-6)  # y = None: label 10
    np.testing.assert_array_equal(v(params, x, t, y=jnp.full(4, NULL_LABEL)), null)  # label -1
    mixed = v(params, x, t, y=jnp.array([0, NULL_LABEL, 2, NULL_LABEL]))
    np.testing.assert_allclose(mixed[1::2], null[1::2], atol=1e-6)
    np.testing.assert_allclose(mixed[::2], a[::2], atol=1e-6)
    assert np.abs(a - v(params, x, t + 0.4, y=y)).max() > 1e-3
    grads = jax.grad(lambda p: jnp.sum(v(p, x, t, y=y) ** 2))(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_bfloat16_compute_matches_float32():
    kwargs = {"size": "S", "depth": 2, "width": 64, "heads": 4, "rngs": nnx.Rngs(0)}
    v32, params = _randomized(DiT((8, 8, 1), **kwargs))
    v16 = jax.jit(models.functional(DiT((8, 8, 1), dtype=jnp.bfloat16, **kwargs))[0])
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    want = v32(params, x, 0.5)
    got = v16(params, x, 0.5)
    assert got.dtype == jnp.float32
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_position_table_and_bad_configs():
    table = sincos_positions(4, 8)
    assert table.shape == (16, 8)
    np.testing.assert_array_equal(table[0], [0, 0, 1, 1, 0, 0, 1, 1])  # row 0, column 0
    with pytest.raises(ValueError, match="divisible by patch 2"):
        DiT((15, 15, 3), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown DiT size 'M'"):
        DiT((16, 16, 3), size="M", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="built without num_classes"):
        DiT((8, 8, 1), depth=1, width=32, heads=2, rngs=nnx.Rngs(0))(
            jnp.zeros((1, 8, 8, 1)), 0.5, jnp.zeros(1, int)
        )

"""The shared time and label embeddings: each model's embedding against its formula computed by
hand, two times, the null class."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models
from flowjax.guidance import NULL_LABEL
from flowjax.models import LabelEmbedding, TimeEmbedding, sinusoidal_embedding

T = jnp.array([0.0, 0.1, 0.5, 0.93])


def _mlp_by_hand(branch, features, act):
    """`W2 act(W1 f + b1) + b2` from a branch's weights."""
    h = features @ branch.hidden.kernel[...] + branch.hidden.bias[...]
    return act(h) @ branch.out.kernel[...] + branch.out.bias[...]


def _randomized(module, scale=0.3):
    """`module` with every parameter drawn from N(0, scale^2) (zero-initialized layers too)."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    leaves = [
        scale * jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves, strict=True)
    ]
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves), rest)


@pytest.mark.parametrize("kind", models.TIME_EMBEDDINGS)
def test_mlp_time_embedding_is_the_old_formula(kind):
    model = models.MLP(
        2, width=8, depth=1, activation="tanh", time_embedding=kind, time_dim=6, rngs=nnx.Rngs(0)
    )
    got = model.time_embed(T)
    if kind == "raw":
        want = T[:, None]
    elif kind == "sinusoidal":
        want = sinusoidal_embedding(T, 6)
    else:
        want = _mlp_by_hand(model.time_embed.branches[0], T[:, None], jnp.tanh)
    np.testing.assert_array_equal(got, want)
    assert model.time_embed.out_features == {"raw": 1}.get(kind, 6)
    assert model.hidden[0].in_features == 2 + model.time_embed.out_features


def test_unet_time_embedding_is_the_old_formula():
    config = dict(image_shape=(4, 4, 1), model_channels=32, channel_mult=(1,))
    unet = lambda **kw: nnx.eval_shape(  # noqa: E731
        lambda: models.UNet(**config, attention_resolutions=(), **kw, rngs=nnx.Rngs(0))
    )
    embed = _randomized(unet(time_scale=3.0).time_embed)
    want = _mlp_by_hand(embed.branches[0], sinusoidal_embedding(T, 32, scale=3.0), jax.nn.silu)
    got = embed(T)
    assert got.shape == (4, 128)  # 4 * model_channels
    np.testing.assert_array_equal(got, want)
    # the dtypes: parameters in param_dtype, compute in dtype
    embed16 = unet(dtype=jnp.bfloat16, param_dtype=jnp.bfloat16).time_embed
    params = nnx.state(embed16, nnx.Param)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    assert _randomized(embed16)(T).dtype == jnp.bfloat16


def test_dit_time_embedding_is_the_old_formula():
    model = nnx.eval_shape(
        lambda: models.DiT((8, 8, 1), depth=1, width=32, heads=2, rngs=nnx.Rngs(0))
    )
    embed = _randomized(model.time_embed)
    want = _mlp_by_hand(embed.branches[0], sinusoidal_embedding(T, 256), jax.nn.silu)
    np.testing.assert_array_equal(embed(T), want)
    assert embed.out_features == 32


def test_pytorch_like_kernel_init():
    """The UNet's time-embedding kernels: uniform, |w| <= 1 / sqrt(fan_in); biases zero."""
    kernel_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
    embed = TimeEmbedding(dim=64, width=256, kernel_init=kernel_init, rngs=nnx.Rngs(0))
    for layer, fan_in in ((embed.branches[0].hidden, 64), (embed.branches[0].out, 256)):
        w = np.asarray(layer.kernel[...])
        assert np.abs(w).max() <= 1 / np.sqrt(fan_in)
        assert 0.9 < w.var() * 3 * fan_in < 1.1
        assert not np.any(layer.bias[...])


@pytest.mark.parametrize("encoding", ["raw", "sinusoidal"])
def test_two_times_start_as_the_first_time_and_load_one_time_weights(encoding):
    one = TimeEmbedding(encoding, dim=8, width=16, rngs=nnx.Rngs(0))
    two = TimeEmbedding(encoding, dim=8, width=16, times=2, rngs=nnx.Rngs(0))
    r, t = T, T[::-1]
    assert two.out_features == one.out_features == 16
    new = two.branches[1]
    assert not np.any(new.out.kernel[...]) and not np.any(new.out.bias[...])  # zero output layer
    assert np.any(new.hidden.kernel[...])
    np.testing.assert_array_equal(two((r, t)), one(r))  # same seed: branch 0 is the same
    # a trained one-time embedding, loaded into the two-time one: the new branch adds zero
    trained = _randomized(one)
    nnx.update(two, nnx.state(trained, nnx.Param))
    np.testing.assert_array_equal(two((r, t)), trained(r))
    np.testing.assert_array_equal(two((r, 0.7)), trained(r))
    # once the new branch has weights, the second time matters, added to the first branch
    two = _randomized(two)
    features = [two._encode(s) for s in (r, t)]
    want = _mlp_by_hand(two.branches[0], features[0], jax.nn.silu) + _mlp_by_hand(
        two.branches[1], features[1], jax.nn.silu
    )
    np.testing.assert_allclose(two((r, t)), want, rtol=1e-6, atol=1e-6)
    assert np.abs(two((r, t)) - two((r, r))).max() > 1e-3


def test_two_times_without_layers_are_concatenated():
    raw = TimeEmbedding("raw", times=2, rngs=nnx.Rngs(0))
    assert raw.out_features == 2
    np.testing.assert_array_equal(raw((T, 0.5)), jnp.stack([T, jnp.full(4, 0.5)], axis=-1))
    sin = TimeEmbedding("sinusoidal", dim=8, times=2, rngs=nnx.Rngs(0))
    assert sin.out_features == 16
    want = jnp.concatenate([sinusoidal_embedding(T, 8), sinusoidal_embedding(T[::-1], 8)], -1)
    np.testing.assert_array_equal(sin((T, T[::-1])), want)
    assert jax.tree.leaves(nnx.state(sin, nnx.Param)) == []  # no parameters


def test_time_shapes_and_errors():
    embed = TimeEmbedding(dim=8, width=16, times=2, rngs=nnx.Rngs(0))
    assert embed((0.2, 0.5)).shape == (16,)  # scalars alone
    np.testing.assert_array_equal(embed((0.2, T)), embed((jnp.full(4, 0.2), T)))
    with pytest.raises(ValueError, match=r"takes a tuple of 2, e\.g\. \(r, t\), got 1 times"):
        embed(T)
    with pytest.raises(ValueError, match="takes one time t, got 2 times"):
        TimeEmbedding(dim=8, rngs=nnx.Rngs(0))((T, T))
    with pytest.raises(ValueError, match=r"scalars or have shape \[B\]"):
        embed((T[:, None], T[:, None]))
    with pytest.raises(ValueError, match="unknown time encoding 'fourier'"):
        TimeEmbedding("fourier", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="times must be positive"):
        TimeEmbedding(times=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dim must be even"):
        TimeEmbedding(dim=7, rngs=nnx.Rngs(0))(T)


def test_label_embedding_null_class():
    embed = LabelEmbedding(3, 5, rngs=nnx.Rngs(0))
    table = embed.embedding[...]
    assert table.shape == (4, 5)  # num_classes + 1 rows
    null = table[3]
    np.testing.assert_array_equal(embed(None, 2), jnp.stack([null, null]))
    y = jnp.array([0, NULL_LABEL, 2, 3])  # -1 and num_classes: the null row
    np.testing.assert_array_equal(embed(y, 4), table[jnp.array([0, 3, 2, 3])])
    bf16 = LabelEmbedding(3, 5, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert bf16(y, 4).dtype == jnp.bfloat16 and bf16.embedding.dtype == jnp.float32
    with pytest.raises(ValueError, match=r"must have shape \[B\] = \(4,\), got \(4, 1\)"):
        embed(y[:, None], 4)
    with pytest.raises(ValueError, match="must be integers"):
        embed(jnp.zeros(4), 4)

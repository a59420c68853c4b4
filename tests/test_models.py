import inspect
import types
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models
from flowjax.guidance import NULL_LABEL


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
    null = model(x, 0.5)  # y=None: the null class, as label NULL_LABEL = -1 and label 4
    np.testing.assert_array_equal(null, model(x, 0.5, y=jnp.full(4, 4)))
    np.testing.assert_array_equal(null, model(x, 0.5, y=jnp.full(4, NULL_LABEL)))
    mixed = model(x, 0.5, y=jnp.array([0, NULL_LABEL, 2, NULL_LABEL]))
    np.testing.assert_allclose(mixed[1::2], null[1::2], atol=1e-6)
    np.testing.assert_allclose(mixed[::2], by_label[::2], atol=1e-6)
    _, params = models.functional(model)
    assert params["class_embed"]["embedding"].shape == (5, 64)  # the path the trainer reads
    with pytest.raises(ValueError, match=r"y must have shape \[B\] = \(4,\), got \(4, 1\)"):
        model(x, 0.5, y=jnp.zeros((4, 1), int))
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


# The counts of the MLP before the shared embeddings (same layers, same numbers); the first:
# 4 x 512, raw time: 3 * 512 + 512 + 3 * (512^2 + 512) + 512 * 2 + 2.
MLP_COUNTS = [
    ({}, 791_042),
    ({"time_embedding": "sinusoidal"}, 823_298),
    ({"time_embedding": "learned", "num_classes": 10}, 861_058),
    (
        {"width": 64, "depth": 3, "time_embedding": "learned", "time_dim": 32, "num_classes": 4},
        16_226,
    ),
    ({"width": 64, "depth": 3, "time_every_layer": True}, 3 * 64 + 64 + 2 * 4224 + 65 * 2 + 2),
]


def test_mlp_time_every_layer_reaches_past_the_input_layer():
    model = models.MLP(2, width=16, depth=3, time_every_layer=True, rngs=nnx.Rngs(0))
    model.hidden[0].kernel[2:] = 0.0  # the input layer no longer sees t
    x = jnp.ones((4, 2))
    assert float(jnp.abs(model(x, 0.9) - model(x, 0.1)).max()) > 1e-3
    plain = models.MLP(2, width=16, depth=3, rngs=nnx.Rngs(0))
    plain.hidden[0].kernel[2:] = 0.0
    np.testing.assert_array_equal(plain(x, 0.9), plain(x, 0.1))


@pytest.mark.parametrize(("kwargs", "count"), MLP_COUNTS)
def test_mlp_parameter_counts(kwargs, count):
    model = nnx.eval_shape(lambda: models.MLP(2, **kwargs, rngs=nnx.Rngs(0)))
    assert models.parameter_count(model) == count


def test_functional_passes_a_dropout_key_only_to_models_that_take_one():
    model = models.MLP(2, width=8, depth=1, rngs=nnx.Rngs(0))
    v, params = models.functional(model)
    assert not v.takes_key
    x = jnp.ones((3, 2))
    np.testing.assert_array_equal(v(params, x, 0.3, key=jax.random.key(0)), v(params, x, 0.3))
    jitted = jax.jit(v)(params, x, 0.3, key=jax.random.key(1))  # a traced key, dropped
    np.testing.assert_allclose(jitted, v(params, x, 0.3), rtol=1e-6)
    with pytest.raises(TypeError):
        model(x, 0.3, key=jax.random.key(0))  # the module itself takes none
    dit = lambda: models.DiT((8, 8, 1), depth=1, width=32, heads=2, rngs=nnx.Rngs(0))  # noqa: E731
    assert not models.functional(nnx.eval_shape(dit))[0].takes_key
    # the UNet takes one: see tests/test_unet.py::test_dropout_acts_only_with_a_key


PLAIN = (int, float, str, bool)


def _plain(hint) -> bool:
    """int, float, str, bool, a tuple of int / float, or a union of these (and None)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return all(a is type(None) or _plain(a) for a in args)
    if typing.get_origin(hint) is tuple:
        return len(args) == 2 and args[1] is Ellipsis and args[0] in (int, float)
    return hint in PLAIN


def test_registry_presets_and_parseable_constructors():
    assert {
        "mlp": models.MLP,
        "unet": models.UNet,
        "dit": models.DiT,
        "token_mlp": models.TokenMLP,
        "token_transformer": models.TokenTransformer,
        "song_unet": models.SongUNet,
    } == models.MODELS
    for cls in models.MODELS.values():
        signature = inspect.signature(cls.__init__)
        hints = typing.get_type_hints(cls.__init__)
        first = list(signature.parameters.values())[1]
        assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD  # the event shape
        assert first.name in ("dim", "image_shape", "event_shape")
        keyword = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
        for name in set(keyword) - {"rngs", "dtype", "param_dtype"}:
            assert _plain(hints[name]), (cls.__name__, name, hints[name])
        assert isinstance(cls.PRESETS, dict)
        for preset in cls.PRESETS.values():
            assert set(preset) <= {*keyword, first.name}, (cls.__name__, preset)
    assert typing.get_type_hints(models.UNet.__init__)["channel_mult"] == tuple[float, ...] | None
    assert models.UNet.PRESETS is models.UNET_PRESETS
    assert models.MLP.PRESETS == {}
    dit = models.DiT.PRESETS
    assert len(dit) == 12 and dit["XL/2"] == {"size": "XL", "patch": 2}
    assert dit["S/4"] == {"size": "S", "patch": 4} and set(dit["B/8"]) == {"size", "patch"}
    s4 = nnx.eval_shape(lambda: models.DiT((32, 32, 4), **dit["S/4"], rngs=nnx.Rngs(0)))
    assert s4.patch == 4 and len(s4.blocks) == 12 and s4.width == 384


def test_token_mlp_maps_tokens_and_the_mask_to_logits():
    net = models.TokenMLP((3, 2), vocab_size=5, width=16, depth=2, num_classes=2, rngs=nnx.Rngs(0))
    v, params = models.functional(net)
    x = jnp.array([[[0, 5], [4, 1], [5, 5]]] * 4)  # 5 is the mask token
    logits = v(params, x, jnp.linspace(0, 1, 4), y=jnp.array([0, 1, -1, 1]))
    assert logits.shape == (4, 3, 2, 5) and bool(jnp.isfinite(logits).all())
    other = v(params, x.at[:, 0, 0].set(3), jnp.linspace(0, 1, 4), y=jnp.array([0, 1, -1, 1]))
    assert not np.allclose(logits, other)  # every token is seen
    with pytest.raises(ValueError, match="integer tokens"):
        v(params, x.astype(jnp.float32), 0.5)
    with pytest.raises(ValueError, match="positive"):
        models.TokenMLP((3,), vocab_size=0, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("positions", ["rotary", "learned"])
@pytest.mark.parametrize("causal", [False, True])
def test_token_transformer_sees_every_token_or_only_the_past(positions, causal):
    net = models.TokenTransformer(
        (4, 3),
        vocab_size=6,
        depth=2,
        width=32,
        heads=4,
        positions=positions,
        causal=causal,
        num_classes=3,
        rngs=nnx.Rngs(0),
    )
    v, params = models.functional(net)
    # adaLN-Zero starts every block and the output at zero: perturb to see the dependencies
    params = jax.tree.map(
        lambda p: p + 0.2 * jax.random.normal(jax.random.key(p.size), p.shape), params
    )
    x = jax.random.randint(jax.random.key(1), (5, 4, 3), 0, 7)  # 6 is the mask token
    y = jnp.array([0, 1, 2, -1, 1])
    logits = v(params, x, jnp.linspace(0, 1, 5), y=y)
    assert logits.shape == (5, 4, 3, 6) and logits.dtype == jnp.float32
    changed = v(params, x.at[:, 2, 1].set((x[:, 2, 1] + 1) % 7), jnp.linspace(0, 1, 5), y=y)
    moved = np.abs(np.asarray(logits - changed)).max(axis=(0, 3)).reshape(-1)  # per position
    position = 2 * 3 + 1  # row-major
    assert (moved[position:] > 1e-6).all()
    assert (moved[:position] == 0).all() if causal else (moved[:position] > 1e-6).all()
    # bf16 compute: integer tokens in, float32 logits out, close to the float32 network
    low = models.TokenTransformer(
        (4, 3),
        vocab_size=6,
        depth=2,
        width=32,
        heads=4,
        positions=positions,
        causal=causal,
        num_classes=3,
        dtype=jnp.bfloat16,
        rngs=nnx.Rngs(0),
    )
    v16, _ = models.functional(low)
    logits16 = v16(params, x, jnp.linspace(0, 1, 5), y=y)
    assert logits16.dtype == jnp.float32
    np.testing.assert_allclose(logits16, logits, atol=0.15 * float(jnp.abs(logits).max()))
    with pytest.raises(ValueError, match="integer tokens"):
        v(params, x.astype(jnp.float32), 0.5, y=y)
    with pytest.raises(ValueError, match="width / heads even"):
        models.TokenTransformer((4,), vocab_size=6, width=30, heads=4, rngs=nnx.Rngs(0))

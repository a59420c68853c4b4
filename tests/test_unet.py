"""The ADM UNet: TorchCFM's parameter counts, shapes, conditioning, bf16, jit/grad, dropout, errors.

Numerical parity with TorchCFM's network is checked by `experiments/unet_parity` (needs torch).
Models here are built abstractly (`nnx.eval_shape`) and filled with random weights in one call:
running the initializers of every layer costs seconds of XLA compilation on a CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models
from flowjax.guidance import NULL_LABEL
from flowjax.models import UNet, parameter_count

# Two levels (down- and upsampling); attention only in the middle block, to compile quickly.
TINY = dict(
    image_shape=(16, 16, 1),
    model_channels=32,
    num_res_blocks=1,
    channel_mult=(1, 2),
    attention_resolutions=(),
    num_head_channels=32,
    num_classes=10,
)

# The smallest UNet: one level, so no resampling; attention only in the middle block.
MICRO = dict(
    image_shape=(4, 4, 1),
    model_channels=32,
    num_res_blocks=1,
    channel_mult=(1,),
    attention_resolutions=(),
    num_classes=3,
)


def abstract(**config) -> UNet:
    return nnx.eval_shape(lambda: UNet(**config, rngs=nnx.Rngs(0)))


def random_unet(config: dict, **overrides):
    """`(v, params)` of a UNet of `config` (with overrides): weights N(0, 0.05^2) and norm scales
    1 + N(0, 0.05^2), so that no output is zero."""
    v, shapes = models.functional(abstract(**{**config, **overrides}))
    leaves, treedef = jax.tree.flatten(shapes)
    sizes = [s.size for s in leaves]
    flat = 0.05 * np.random.default_rng(0).standard_normal(sum(sizes), np.float32)
    chunks = np.split(flat, np.cumsum(sizes)[:-1])
    arrays = [a.reshape(s.shape) for a, s in zip(chunks, leaves, strict=True)]
    params = jax.tree.unflatten(treedef, arrays)
    params = jax.tree.map_with_path(
        lambda path, a: jnp.asarray(a + 1.0 if path[-2].key == "scale" else a), params
    )
    return v, params


@pytest.mark.parametrize(
    ("preset", "torchcfm_count"),
    [
        ("lipman_cifar10", 142_861_315),  # UNetModelWrapper(dim=(3, 32, 32), num_channels=256, ...)
        ("torchcfm_cifar10", 35_746_307),  # their examples/images/cifar10 training script
        ("mnist", 1_114_081),  # ours; TorchCFM's embedding has no null row: 4 * 32 fewer
    ],
)
def test_parameter_counts_match_torchcfm(preset, torchcfm_count):
    model = nnx.eval_shape(lambda: UNet.from_preset(preset, rngs=nnx.Rngs(0)))
    null_row = 0 if model.num_classes is None else 4 * model.model_channels
    assert parameter_count(model) == torchcfm_count + null_row
    assert parameter_count(nnx.state(model, nnx.Param)) == parameter_count(model)  # the state


def test_mnist_preset_output_shape():
    v, params = models.functional(abstract(**models.UNET_PRESETS["mnist"]))
    x = jax.ShapeDtypeStruct((3, 28, 28, 1), jnp.float32)
    out = jax.eval_shape(v, params, x, jnp.zeros(3), y=jnp.zeros(3, int))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_class_conditioning_and_time_dependence():
    v, params = random_unet(TINY, use_scale_shift_norm=True, resblock_updown=True)
    f = jax.jit(v)
    x = jax.random.normal(jax.random.key(1), (4, 16, 16, 1))
    t, labels = jnp.full(4, 0.3), jnp.array([0, 1, 2, 3])
    by_label = f(params, x, t, y=labels)
    assert by_label.shape == x.shape and by_label.dtype == x.dtype
    x_same = jnp.broadcast_to(x[:1], x.shape)  # one image, four labels
    out = np.asarray(f(params, x_same, t, y=labels))
    assert len({tuple(np.round(r.ravel(), 6)) for r in out}) == 4
    assert not np.allclose(f(params, x, t, y=jnp.full(4, 10)), by_label, atol=1e-4)  # null
    assert not np.allclose(f(params, x, jnp.full(4, 0.7), y=labels), by_label, atol=1e-4)


@pytest.fixture(scope="module")
def micro():
    """A jitted MICRO network with dropout, shared by the tests below (fewer compilations)."""
    v, params = random_unet(MICRO, dropout=0.2)
    x = jax.random.normal(jax.random.key(1), (2, 4, 4, 1))
    return v, jax.jit(v), params, x


def test_null_class_and_scalar_time(micro):
    _, f, params, x = micro
    null = f(params, x, 0.3)  # y=None: the null class; a scalar t broadcasts to [B]
    np.testing.assert_allclose(null, f(params, x, jnp.full(2, 0.3), y=jnp.full(2, 3)), rtol=1e-5)
    np.testing.assert_array_equal(null, f(params, x, 0.3, y=jnp.full(2, NULL_LABEL)))
    mixed = f(params, x, 0.3, y=jnp.array([1, NULL_LABEL]))
    np.testing.assert_allclose(mixed[1], null[1], atol=1e-6)
    np.testing.assert_allclose(mixed[0], f(params, x, 0.3, y=jnp.array([1, 1]))[0], atol=1e-6)


def test_bfloat16_compute_matches_float32(micro):
    _, f, params, x = micro
    v16, params16 = random_unet(MICRO, dropout=0.2, dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params16))  # param_dtype
    out32, out16 = f(params, x, 0.3), jax.jit(v16)(params, x, 0.3)
    assert out16.dtype == jnp.float32  # cast back to x's dtype
    scale = float(jnp.max(jnp.abs(out32)))
    assert scale > 0.1
    assert float(jnp.max(jnp.abs(out16 - out32))) < 0.03 * scale  # measured: 0.012 * scale


def test_jit_grad_through_functional(micro):
    v, _, params, x = micro

    def loss(params):
        return jnp.mean(v(params, x, jnp.array([0.2, 0.9]), y=jnp.array([0, 2])) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    assert np.isfinite(value)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads))


def test_dropout_acts_only_with_a_key(micro):
    v, f, params, x = micro
    assert v.takes_key  # `functional` passes the key on (and drops it for models without one)
    a, b = f(params, x, 0.3, key=jax.random.key(0)), f(params, x, 0.3, key=jax.random.key(1))
    assert not np.allclose(a, b, atol=1e-4)
    deterministic = f(params, x, 0.3)
    assert not np.allclose(a, deterministic, atol=1e-4)
    v_no_dropout, _ = random_unet(MICRO)  # same parameters, dropout 0
    np.testing.assert_array_equal(jax.jit(v_no_dropout)(params, x, 0.3), deterministic)


def test_bad_configs_and_inputs_raise():
    with pytest.raises(ValueError, match="divisible by the 32 GroupNorm groups"):
        abstract(**{**TINY, "model_channels": 48})
    with pytest.raises(ValueError, match=r"image size 28x28 must be divisible by .* = 8"):
        abstract(**{**TINY, "image_shape": (28, 28, 1), "channel_mult": (1, 2, 2, 2)})
    with pytest.raises(ValueError, match=r"attention_resolutions \[16\] not reachable"):
        abstract(**{**TINY, "image_shape": (28, 28, 1), "attention_resolutions": "16"})
    with pytest.raises(ValueError, match="num_head_channels=24 must divide"):
        abstract(**{**TINY, "num_head_channels": 24})
    with pytest.raises(ValueError, match="no default channel_mult for image height 20"):
        abstract(**{**TINY, "image_shape": (20, 20, 1), "channel_mult": None})
    with pytest.raises(ValueError, match="dropout must be in"):
        abstract(**{**TINY, "dropout": 1.0})
    with pytest.raises(ValueError, match="unknown preset 'imagenet'"):
        UNet.from_preset("imagenet", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError):
        abstract(**{**TINY, "num_channels": 32})  # unknown keyword
    v, params = models.functional(abstract(**TINY))
    x = jax.ShapeDtypeStruct((2, 16, 16, 1), jnp.float32)
    with pytest.raises(ValueError, match=r"x must have shape \[B, \*\[16, 16, 1\]\]"):
        jax.eval_shape(v, params, jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32), 0.5)
    with pytest.raises(ValueError, match=r"y must have shape \[B\] = \(2,\), got \(2, 1\)"):
        jax.eval_shape(v, params, x, 0.5, y=jnp.zeros((2, 1), int))
    v, params = models.functional(abstract(**{**TINY, "num_classes": None}))
    with pytest.raises(ValueError, match="without num_classes"):
        jax.eval_shape(v, params, x, 0.5, y=jnp.zeros(2, int))


def test_initialization_zeroes_the_output_convolutions():
    """ADM's zero_module: residual blocks and attention start as the identity and the network's
    output at 0. (Initialized under jit with "rbg" keys, which compile much faster on a CPU.)"""
    rngs = lambda: nnx.Rngs(jax.random.key(0, impl="rbg"))  # noqa: E731
    params = jax.jit(lambda: nnx.state(UNet(**MICRO, rngs=rngs()), nnx.Param))()
    assert params["class_embed"]["embedding"].shape == (4, 128)  # 3 classes and the null row
    zeroed = {"conv2", "proj", "conv_out"}
    for path, p in nnx.to_flat_state(params):
        if path[-2] in zeroed:
            assert not np.any(p[...]), path
        elif path[-1] != "bias":  # biases start at zero everywhere
            assert np.any(p[...]), path
        if path[-1] == "kernel":  # PyTorch's default: uniform, |w| <= 1 / sqrt(fan_in)
            fan_in = np.prod(p.shape[:-1])
            assert np.abs(p[...]).max() <= 1 / np.sqrt(fan_in), path

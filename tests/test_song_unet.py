"""EDM's SongUNet (DDPM++): the released CIFAR-10 networks' parameter counts, FIR resampling
against a NumPy reference of PyTorch's semantics, time features, conditioning, dropout, jit,
and the one-step CIFAR-10 configs.

Models are built abstractly (`nnx.eval_shape`) and filled with random weights in one call.
Numerical parity with py-meanflow's PyTorch network (weights transferred one to one, the full
CIFAR-10 preset, max relative error 1e-6) was checked outside this suite, with torch.
"""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from flowjax import models
from flowjax.guidance import NULL_LABEL
from flowjax.models import SongUNet, parameter_count
from flowjax.models.song_unet import fir_downsample, fir_filter, fir_upsample

# py-meanflow's `SongUNet(**MODEL_CONFIGS["unet"], dropout=0.2, augment_dim=6)` (cifar10_v0.sh,
# --use_edm_aug) and SoFlow's `models.py` network, instantiated with torch: 55,932,419 each.
RELEASED_COUNT = 55_932_419

SMALL = dict(
    event_shape=(16, 16, 3),
    model_channels=16,
    channel_mult=(1, 2),
    num_blocks=1,
    attn_resolutions=(8,),
    dropout=0.1,
)
TAPS = (1, 3, 3, 1)


def edm_count(
    image: int, c: int, model_channels: int, channel_mult: tuple, num_blocks: int, attn: tuple,
    noise_mult: int, augment_dim: int, times: int,
) -> int:  # fmt: skip
    """Parameters of EDM's SongUNet by the formulas of its layers (DDPM++, standard encoder
    and decoder, resample_proj, no labels; `times` noise embeddings concatenated)."""
    emb, noise = 4 * model_channels, times * noise_mult * model_channels

    def block(c_in: int, c_out: int, attention: bool = False, resample: bool = False) -> int:
        n = 2 * c_in + 9 * c_in * c_out + c_out + emb * c_out + c_out + 2 * c_out
        n += 9 * c_out * c_out + c_out
        if c_in != c_out or resample:
            n += c_in * c_out + c_out
        if attention:
            n += 2 * c_out + 3 * c_out * c_out + 3 * c_out + c_out * c_out + c_out
        return n

    n = augment_dim * noise + noise * emb + emb + emb * emb + emb
    cout = model_channels
    n += 9 * c * cout + cout
    skips = [cout]
    for level, mult in enumerate(channel_mult):
        if level:
            n += block(cout, cout, resample=True)
            skips.append(cout)
        for _ in range(num_blocks):
            n += block(cout, model_channels * mult, (image >> level) in attn)
            cout = model_channels * mult
            skips.append(cout)
    for level, mult in reversed(list(enumerate(channel_mult))):
        if level == len(channel_mult) - 1:
            n += block(cout, cout, True) + block(cout, cout)
        else:
            n += block(cout, cout, resample=True)
        for i in range(num_blocks + 1):
            attention = i == num_blocks and (image >> level) in attn
            n += block(cout + skips.pop(), model_channels * mult, attention)
            cout = model_channels * mult
    return n + 2 * cout + 9 * cout * c + c


def abstract(**config) -> SongUNet:
    return nnx.eval_shape(lambda: SongUNet(**config, rngs=nnx.Rngs(0)))


def random_net(**config):
    """`(v, params)`: weights N(0, 0.05^2), norm scales 1 + N(0, 0.05^2) (no zero outputs)."""
    v, shapes = models.functional(abstract(**config))
    leaves, treedef = jax.tree.flatten(shapes)
    rng = np.random.default_rng(0)
    arrays = [0.05 * rng.standard_normal(s.shape).astype(np.float32) for s in leaves]
    params = jax.tree.unflatten(treedef, arrays)
    params = jax.tree.map_with_path(
        lambda path, a: jnp.asarray(a + 1.0 if path[-2].key == "scale" else a), params
    )
    return v, params


def images(n: int = 2, shape: tuple = (16, 16, 3)) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (n, *shape))


@pytest.mark.parametrize("preset", ["meanflow_cifar10", "soflow_cifar10"])
def test_presets_have_the_released_parameter_count(preset):
    model = nnx.eval_shape(lambda: SongUNet.from_preset(preset, times=2, rngs=nnx.Rngs(0)))
    assert parameter_count(model) == RELEASED_COUNT
    config = {k: v for k, v in SongUNet.PRESETS[preset].items() if k != "dropout"}
    assert edm_count(
        32, 3, config["model_channels"], config["channel_mult"], config["num_blocks"],
        config["attn_resolutions"], config["channel_mult_noise"], config["augment_dim"], 2,
    ) == RELEASED_COUNT  # fmt: skip


@pytest.mark.parametrize("times", [1, 2])
@pytest.mark.parametrize("augment_dim", [0, 6])
def test_small_networks_match_the_layer_formulas(times, augment_dim):
    model = abstract(**SMALL, times=times, augment_dim=augment_dim)
    expected = edm_count(16, 3, 16, (1, 2), 1, (8,), 2, augment_dim, times)
    assert parameter_count(model) == expected


def test_fir_filter_is_the_normalized_outer_product():
    np.testing.assert_allclose(fir_filter(TAPS), np.outer(TAPS, TAPS) / 64, rtol=1e-7)


def _reference_down(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """PyTorch's `conv2d(x, f, stride=2, padding=(k - 1) // 2)` per channel, by loops."""
    k, p = f.shape[0], (f.shape[0] - 1) // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = (x.shape[1] + 2 * p - k) // 2 + 1, (x.shape[2] + 2 * p - k) // 2 + 1
    out = np.zeros((x.shape[0], h, w, x.shape[3]))
    for i in range(h):
        for j in range(w):
            window = padded[:, 2 * i : 2 * i + k, 2 * j : 2 * j + k]
            out[:, i, j] = np.einsum("bhwc,hw->bc", window, f)
    return out


def _reference_up(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """PyTorch's `conv_transpose2d(x, 4 f, stride=2, padding=(k - 1) // 2)` per channel: each
    input pixel scatters `4 f` to the output at `2 i + a - p`."""
    k, p = f.shape[0], (f.shape[0] - 1) // 2
    b, h, w, c = x.shape
    full = np.zeros((b, 2 * h + k, 2 * w + k, c))
    for i in range(h):
        for j in range(w):
            full[:, 2 * i : 2 * i + k, 2 * j : 2 * j + k] += np.einsum(
                "bc,hw->bhwc", x[:, i, j], 4 * f
            )
    size = (h - 1) * 2 - 2 * p + k
    return full[:, p : p + size, p : p + size]


def test_fir_resampling_matches_pytorch_semantics():
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    f = fir_filter(TAPS)
    down, up = fir_downsample(jnp.asarray(x), TAPS), fir_upsample(jnp.asarray(x), TAPS)
    assert down.shape == (2, 4, 4, 3) and up.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(down, _reference_down(x, f), atol=1e-5)
    np.testing.assert_allclose(up, _reference_up(x, f), atol=1e-5)


def test_fir_resampling_of_constant_and_linear_images():
    c = jnp.full((1, 8, 8, 2), 3.0)
    down, up = fir_downsample(c, TAPS), fir_upsample(c, TAPS)
    np.testing.assert_allclose(down[:, 1:-1, 1:-1], 3.0, rtol=1e-6)  # the filter sums to 1
    np.testing.assert_allclose(down[:, 0, 1:-1], 3.0 * 7 / 8, rtol=1e-6)  # zero padding counts
    np.testing.assert_allclose(down[:, 0, 0], 3.0 * 49 / 64, rtol=1e-6)
    np.testing.assert_allclose(up[:, 1:-1, 1:-1], 3.0, rtol=1e-6)
    np.testing.assert_allclose(up[:, 0, 1:-1], 3.0 * 3 / 4, rtol=1e-6)
    # a ramp along H: downsampled pixels sit at 2i + 1/2, upsampled ones at o/2 - 1/4
    ramp = jnp.broadcast_to(jnp.arange(16.0)[None, :, None, None], (1, 16, 8, 1))
    rows = lambda a: np.asarray(a[0, 1:-1, 1, 0])  # noqa: E731
    np.testing.assert_allclose(rows(fir_downsample(ramp, TAPS)), 2 * np.arange(1, 7) + 0.5)
    np.testing.assert_allclose(rows(fir_upsample(ramp, TAPS)), np.arange(1, 31) / 2 - 0.25)
    # up then down is the identity on linear images, away from the border
    round_trip = fir_downsample(fir_upsample(ramp, TAPS), TAPS)
    np.testing.assert_allclose(rows(round_trip), np.arange(1.0, 15.0), atol=1e-5)


def test_time_features_are_edm_positional_of_s_and_the_interval():
    model = abstract(**SMALL, times=2)  # 32 features per time: 16 frequencies
    x = images(3)
    s, e = jnp.array([0.1, 0.5, 0.9]), jnp.array([0.4, 0.5, 1.0])
    features = model.time_features((s, e), x)
    freqs = 10_000.0 ** (-np.arange(16) / 15)  # endpoint: the last frequency is 1e-4
    for tau, part in ((s, features[:, :32]), (e - s, features[:, 32:])):
        args = np.asarray(tau)[:, None] * freqs
        np.testing.assert_allclose(part, np.concatenate([np.sin(args), np.cos(args)], 1), atol=1e-6)
    one = abstract(**SMALL).time_features(s, x)
    np.testing.assert_allclose(one, features[:, :32], atol=1e-7)


def test_output_two_times_jit_dropout_and_bfloat16():
    v, params = random_net(**SMALL, times=2)
    x, s = images(), jnp.array([0.2, 0.7])
    f = jax.jit(lambda p, x, s, e, key=None: v(p, x, (s, e), key=key))
    same = f(params, x, s, s)
    assert same.shape == x.shape and same.dtype == jnp.float32
    np.testing.assert_allclose(same, v(params, x, (s, s)), atol=1e-5)  # jit == eager
    assert float(jnp.abs(f(params, x, s, s + 0.2) - same).max()) > 1e-3  # e matters
    key = jax.random.key(3, impl="rbg")  # threefry's dropout masks take seconds to compile
    dropped = f(params, x, s, s, key)
    assert float(jnp.abs(dropped - same).max()) > 1e-3  # dropout acts with a key only
    np.testing.assert_array_equal(f(params, x, s, s, key), dropped)
    v16, _ = models.functional(abstract(**SMALL, times=2, dtype=jnp.bfloat16))
    out16 = jax.jit(lambda p, x, s: v16(p, x, (s, s)))(params, x, s)
    assert out16.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out16)))
    np.testing.assert_allclose(out16, same, atol=0.1 * float(jnp.abs(same).max()))
    with pytest.raises(ValueError, match="the pair"):
        v(params, x, s)


def test_class_labels_and_the_null_class():
    v, params = random_net(**SMALL, num_classes=3)
    x, t = images(), jnp.array([0.3, 0.6])
    f = jax.jit(lambda p, x, t, y: v(p, x, t, y))
    a, b = f(params, x, t, jnp.array([0, 0])), f(params, x, t, jnp.array([1, 1]))
    assert float(jnp.abs(a - b).max()) > 1e-3
    null = v(params, x, t, None)
    np.testing.assert_allclose(f(params, x, t, jnp.array([NULL_LABEL] * 2)), null, atol=1e-5)
    np.testing.assert_allclose(f(params, x, t, jnp.array([3, 3])), null, atol=1e-5)
    unconditional, p0 = random_net(**SMALL)
    with pytest.raises(ValueError, match="num_classes"):
        unconditional(p0, x, t, jnp.array([0, 0]))


def test_augment_labels_enter_the_embedding():
    v, params = random_net(**SMALL, augment_dim=6)
    x, t = images(), jnp.array([0.3, 0.6])
    labels = jax.random.normal(jax.random.key(2), (2, 6))
    plain = v(params, x, t)
    assert float(jnp.abs(v(params, x, t, augment_labels=labels) - plain).max()) > 1e-3
    np.testing.assert_allclose(v(params, x, t, augment_labels=0 * labels), plain, atol=1e-6)


def test_invalid_settings_are_errors():
    with pytest.raises(ValueError, match="not reachable"):
        abstract(**{**SMALL, "attn_resolutions": (4,)})
    with pytest.raises(ValueError, match="GroupNorm"):
        abstract(**{**SMALL, "model_channels": 18})
    with pytest.raises(ValueError, match="times"):
        abstract(**SMALL, times=3)


@pytest.mark.parametrize("name", ["meanflow", "soflow"])
def test_one_step_cifar10_configs_validate_and_build_the_released_network(name, tmp_path):
    from flowjax.train import build
    from flowjax.train.config import load_config, validate
    from flowjax.train.inputs import abstract_spec

    folder = Path(__file__).parents[1] / "experiments" / "one_step_cifar10"
    config = load_config(folder / f"{name}.py")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(tmp_path)))
    validate(config, 8)
    assert config.family == name and config.data.batch_size == 1024
    family = build.family(config, abstract_spec(config))
    _, params = build.network(config, family.network, abstract=True)
    assert parameter_count(params) == RELEASED_COUNT

"""EDM's non-leaking augmentation (`flowjax.data.augment`): the resampler against exact pixel
moves, each transformation against its labels, determinism and resume in the grain pipeline,
the config checks, and the labels reaching every network call of every family."""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from flowjax import families
from flowjax.contracts import DataSpec, TrainContext
from flowjax.data import pipeline, records
from flowjax.data.augment import (
    SYM6,
    AugmentPipe,
    _reflect,
    _rotate,
    _scale,
    _translate,
    augment_pipe,
    resample,
)
from flowjax.train.config import (
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    load_config,
    validate,
)
from flowjax.train.sharding import batch_sharding

MESH = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "fsdp"))
CONFIGS = Path(__file__).parents[1] / "experiments" / "one_step_cifar10"


def _image(size: int = 16, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A float32 image of random 8-bit levels in [-1, 1], as the pipeline makes them."""
    levels = np.random.default_rng(seed).integers(0, 256, (size, size, channels))
    return (levels / 127.5 - 1.0).astype(np.float32)


def _blob(size: int, row: float = 0.0, column: float = 0.0) -> np.ndarray:
    """A smooth Gaussian blob `[size, size, 1]` of std 3 pixels, (row, column) pixels off the
    image's centre."""
    rows, columns = np.mgrid[:size, :size] - (size - 1) / 2
    d2 = (rows - row) ** 2 + (columns - column) ** 2
    return np.exp(-d2 / 18.0)[..., None].astype(np.float32)


def _moments(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The centroid (x, y) of `image [H, W, 1]` and its mean squared radius about it."""
    weights = image[..., 0] / image.sum()
    rows, columns = np.mgrid[: image.shape[0], : image.shape[1]]
    x, y = (weights * columns).sum(), (weights * rows).sum()
    return np.array([x, y]), float((weights * ((columns - x) ** 2 + (rows - y) ** 2)).sum())


def _runs(pipe: AugmentPipe, image: np.ndarray, n: int = 48) -> list:
    """`pipe` on `image` with the generators of seeds 0 .. n - 1 (as n records)."""
    return [pipe(image, np.random.default_rng(seed)) for seed in range(n)]


def test_the_filter_is_an_orthonormal_wavelet_s():
    """sum h = sqrt 2 and its even shifts are orthonormal: 2x upsampling then downsampling by
    it is the identity, so the resampler loses nothing at identity."""
    assert SYM6.sum() == pytest.approx(np.sqrt(2), abs=1e-12)
    assert float(SYM6 @ SYM6) == pytest.approx(1.0, abs=1e-12)
    for shift in range(1, 6):
        assert float(SYM6[2 * shift :] @ SYM6[: -2 * shift]) == pytest.approx(0.0, abs=1e-12)


def test_resampling_moves_pixels_as_the_matrix_says():
    image = _image()
    np.testing.assert_allclose(resample(image, np.eye(3)), image, atol=2e-6)
    # g_inv reads the input at (x - 3, y + 2): content 3 right, 2 up, reflected at the edges
    rows, columns = _reflect(np.arange(16) + 2, 16), _reflect(np.arange(16) - 3, 16)
    np.testing.assert_allclose(
        resample(image, _translate(-3, 2)), image[rows][:, columns], atol=2e-6
    )
    # a quarter turn, np.rot90's; not exact (the symlet is not quite symmetric: its centre of
    # mass is 0.1 tap past its peak), so on a smooth blob off the centre
    blob = _blob(32, -5.0, 8.0)
    turned = resample(blob, _rotate(np.pi / 2))
    assert np.abs(turned - np.rot90(blob)).max() < 0.02 < np.abs(turned - np.rot90(blob, -1)).max()
    assert resample(image, _rotate(0.3)).dtype == np.float32


@pytest.mark.parametrize("name", ["edm", "edm_upright"])
def test_probability_zero_is_the_identity_with_zero_labels(name):
    pipe, image = augment_pipe(name, 0.0), _image()
    assert pipe.num_labels == {"edm": 9, "edm_upright": 6}[name]
    for out, labels in _runs(pipe, image, 8):
        np.testing.assert_array_equal(out, image)
        np.testing.assert_array_equal(labels, np.zeros(pipe.num_labels, np.float32))
        assert labels.dtype == np.float32


@pytest.mark.parametrize(
    ("multiplier", "mirror"),
    [("xflip", lambda a: a[:, ::-1]), ("yflip", lambda a: a[::-1])],
)
def test_a_flip_label_says_which_images_were_flipped(multiplier, mirror):
    image = _image()
    runs = _runs(AugmentPipe(p=1.0, **{multiplier: 1.0}), image)
    for out, (label,) in runs:
        np.testing.assert_array_equal(out, mirror(image) if label == 1 else image)
    assert 0 < sum(label for _, (label,) in runs) < len(runs)


def test_quarter_turn_labels_name_the_turns():
    image = _image()
    turns = {(0, 0): 0, (1, 0): 1, (1, 1): 2, (0, 1): 3}
    seen = set()
    for out, labels in _runs(AugmentPipe(p=1.0, rotate_int=1.0), image):
        k = turns[tuple(int(v) for v in labels)]
        np.testing.assert_array_equal(out, np.rot90(image, k))
        seen.add(k)
    assert seen == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="square"):
        AugmentPipe(p=1.0, rotate_int=1.0)(np.zeros((4, 6, 1), np.float32), np.random.default_rng())


def test_an_integer_translation_moves_a_delta_by_the_labelled_amount():
    delta = np.zeros((32, 32, 1), np.float32)
    delta[16, 16] = 1.0
    shifts = set()
    for out, labels in _runs(AugmentPipe(p=1.0, translate_int=1.0), delta):
        tx, ty = labels * 32 * 0.125  # the labels are the shifts over W, H x translate_int_max
        assert np.all(np.abs(labels) <= 1) and np.allclose([tx, ty], np.round([tx, ty]))
        moved = np.zeros_like(delta)
        moved[16 - round(ty), 16 + round(tx)] = 1.0  # right by tx, up by ty (EDM's signs)
        np.testing.assert_array_equal(out, moved)
        shifts.add((round(tx), round(ty)))
    assert len(shifts) > 10


def _from_labels(name: str, labels: np.ndarray, size: int) -> np.ndarray:
    """The `g_inv` that the labels of transformation `name` alone say (aniso: at r = 0)."""
    if name == "scale":
        s = 2.0 ** (labels[0] * 0.2)
        return _scale(1 / s, 1 / s)
    if name == "rotate_frac":
        return _rotate(np.arctan2(labels[1], labels[0] + 1.0))
    if name == "aniso":
        s = 2.0 ** (labels[0] * 0.2)
        return _scale(1 / s, s)
    shift = labels * size * 0.125
    return _translate(-shift[0], -shift[1])


@pytest.mark.parametrize("name", ["scale", "rotate_frac", "aniso", "translate_frac"])
def test_each_geometric_label_gives_the_transformation_applied(name):
    image = _image(16)
    pipe = AugmentPipe(p=1.0, aniso_rotate_prob=0.0, **{name: 1.0})
    for out, labels in _runs(pipe, image, 6):
        assert np.any(labels != 0)
        np.testing.assert_allclose(out, resample(image, _from_labels(name, labels, 16)), atol=1e-5)


def test_fractional_translations_and_scalings_move_and_size_a_blob_as_labelled():
    blob = _blob(64)  # small beside the image: its reflections past the edges stay faint
    centroid, spread = _moments(blob)
    for out, labels in _runs(AugmentPipe(p=1.0, translate_frac=1.0), blob, 8):
        moved, _ = _moments(out)  # right and down by the labels x 64 x 0.125 pixels
        np.testing.assert_allclose(moved - centroid, labels * 64 * 0.125, atol=0.05)
    for out, (w,) in _runs(AugmentPipe(p=1.0, scale=1.0), blob, 8):
        assert _moments(out)[1] / spread == pytest.approx(4.0 ** (w * 0.2), rel=0.02)


def test_the_full_pipeline_is_deterministic_per_record_and_keeps_shape_dtype_range():
    pipe, image = augment_pipe("edm", 1.0), _image(32)
    first, again = _runs(pipe, image, 16), _runs(pipe, image, 16)
    for (out, labels), (out2, labels2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(out, out2)
        np.testing.assert_array_equal(labels, labels2)
        assert out.shape == image.shape and out.dtype == np.float32 and labels.shape == (9,)
        # [-1, 1] up to the resampling filter's ringing, on pixel noise its worst case
        assert np.abs(out).max() <= 1.6
        # at p = 1 the scale, rotation, anisotropy and translation are applied and labelled
        assert np.all(labels[[2, 3, 4, 5, 7, 8]] != 0)
    smooth = 2.0 * _blob(32) - 1.0  # no sharp edges: no ringing, the range is kept
    for out, _ in _runs(pipe, smooth, 16):
        assert out.min() >= -1.0 - 1e-3 and out.max() <= 1.0 + 1e-3


def _batches(augment: AugmentPipe | None) -> pipeline.GrainBatches:
    images = (np.arange(24 * 8 * 8 * 3) % 251).reshape(24, 8, 8, 3).astype(np.uint8)
    source = records.ArraySource(image=images, label=np.arange(24, dtype=np.int32))
    sharding = {"x1": batch_sharding(MESH, 4), "y": batch_sharding(MESH, 1)}
    if augment is not None:
        sharding["augment_labels"] = batch_sharding(MESH, 2)
    transform = pipeline.ImageToFloat(flip=True, dequantize=False, labels=True, augment=augment)
    return pipeline.GrainBatches(
        source, batch_size=4, seed=0, sharding=sharding, transform=transform
    )


def _take(batches: pipeline.GrainBatches, n: int) -> list[dict]:
    return [jax.tree.map(np.asarray, next(batches)) for _ in range(n)]


def test_the_grain_pipeline_augments_each_record_the_same_way_and_resumes_exactly():
    pipe = augment_pipe("edm_upright", 0.2)
    a, b = _take(_batches(pipe), 8), _take(_batches(pipe), 8)
    for x, y in zip(a, b, strict=True):
        assert x["augment_labels"].shape == (4, 6) and x["augment_labels"].dtype == np.float32
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    # the records and their flips of the run without augmentation; unaugmented images as there
    untouched = 0
    for x, y in zip(a, _take(_batches(None), 8), strict=True):
        np.testing.assert_array_equal(x["y"], y["y"])
        plain = ~x["augment_labels"].any(axis=1)
        for row, image in enumerate(x["x1"]):
            assert np.array_equal(image, y["x1"][row]) == plain[row]
        untouched += int(plain.sum())
    assert 0 < untouched < 32
    # resume: an iterator restored to the state after 3 batches yields batches 4 to 8
    it = _batches(pipe)
    _take(it, 3)
    resumed = _batches(pipe)
    resumed._iterator.set_state(it._iterator.get_state())
    for x, y in zip(_take(resumed, 5), a[3:], strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def _config(model: ModelConfig, **data) -> TrainConfig:
    cifar = DataConfig(kind="cifar10", path="unused", augment="edm_upright")
    return TrainConfig(data=dataclasses.replace(cifar, **data), model=model)


SMALL_UNET = dict(model_channels=16, channel_mult=(1,), num_blocks=1, attn_resolutions=())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (_config(ModelConfig("mlp")), r"MLP takes none \(no augment_dim"),
        (_config(ModelConfig("song_unet", **SMALL_UNET)), r"augment_dim = 0: set .*=6$"),
        (_config(ModelConfig("song_unet", augment_dim=9)), "gives 6 augmentation labels"),
        (_config(ModelConfig("song_unet", augment_dim=6), augment_p=1.5), "augment_p must be"),
        (
            _config(ModelConfig("song_unet", augment_dim=6), augment="stylegan"),
            r"augment = 'stylegan'; expected one of \[None, 'edm', 'edm_upright'\]",
        ),
        (
            TrainConfig(data=DataConfig(augment="edm"), model=ModelConfig("mlp")),
            "transforms images; toy2d data has none",
        ),
    ],
)
def test_an_augmentation_the_network_cannot_take_is_a_config_error(config, message):
    with pytest.raises(ConfigError, match=message):
        validate(config, 1, data=False)


def test_the_one_step_configs_feed_the_codes_six_labels_to_the_network():
    from flowjax.train import build
    from flowjax.train.inputs import abstract_spec

    for name in ("meanflow", "meanflow_v1", "soflow"):
        config = load_config(CONFIGS / f"{name}.py")
        validate(config, 8, data=False)
        assert (config.data.augment, config.data.augment_p) == ("edm_upright", 0.12)
        assert config.optim.ema_every == 16 and abstract_spec(config).augment_dim == 6
    v1 = load_config(CONFIGS / "meanflow_v1.py")
    times = build.family(v1, abstract_spec(v1)).config.time_pairs()
    assert (times.sampler.mean, times.end_sampler.mean, times.pairing) == (0.6, 4.0, "max")


def test_every_family_passes_augment_labels_to_each_network_call():
    """The conditioning path is the family contract's, not one family's: every family of
    Euclidean images hands the batch's augmentation labels to each network call, on the rows
    of its inputs (flow-matching rows, consistency rows, teachers, jvps)."""
    spec = DataSpec((4, 4, 1), bits=8, augment_dim=3)
    batch = {
        "x1": jax.random.uniform(jax.random.key(0), (8, 4, 4, 1), minval=-1.0, maxval=1.0),
        "augment_labels": jax.random.normal(jax.random.key(1), (8, 3)),
    }
    params, checked = jnp.ones(()), []
    for name, cls in families.FAMILIES.items():
        try:
            family = cls(cls.Config(), spec)
        except ValueError:
            continue  # a family of tokens or of manifold points
        calls: list[bool] = []

        def field(params, x, t, calls=calls, **cond):
            labels = cond["augment_labels"]
            calls.append(labels.shape[0] == x.shape[0])
            return params * x + jnp.mean(labels, axis=1).reshape(-1, 1, 1, 1)

        context = TrainContext(jnp.int32(3), 10, params)
        loss, _ = family.loss(field, params, jax.random.key(2), batch, context)
        assert bool(jnp.isfinite(loss)) and calls and all(calls), name
        checked.append(name)
    assert {"cfm", "meanflow", "soflow", "shortcut", "consistency_fm"} <= set(checked)

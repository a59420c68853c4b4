"""From `config.data` to the run's `DataSpec`, its batch iterator and its held-out data.

Every iterator here yields `{"x1": [B, *event], ("y": [B]), ("augment_labels": [B, n])}`
global arrays sharded over the mesh, and has `sharding` (per key), `checkpoint_handler` (an
Orbax handler class), `save_args()`, `restore_args()` and `load(item)` to resume from a
restored checkpoint item.
Labels are fed when the model is class-conditional (`model.num_classes`); images are augmented,
with their augmentation labels, when `data.augment` names a pipeline (`flowjax.data.augment`).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flowjax.contracts import DataSpec
from flowjax.data import manifold_records, records
from flowjax.data.augment import AugmentPipe, augment_pipe
from flowjax.data.generated import GeneratedBatches
from flowjax.data.pipeline import GrainBatches, ImageToFloat, Points, Tokens
from flowjax.data.toy2d import quantize, sample_toy
from flowjax.train.config import ConfigError, DataConfig, TrainConfig
from flowjax.train.sharding import batch_sharding

HELD_OUT_IMAGES = 64  # test images for bits/dim
HELD_OUT_POINTS = 2048  # fresh toy points (at most log.num_samples) for NLL and W2

# data.kind -> the record source of an image dataset split (`{"image": uint8, "label": int}`);
# "toy2d" is generated on the devices; "text" and "table" are tokens (`token_source`);
# the kinds of `POINT_KINDS` ("earth", "torsions", ...) are points of a manifold (`point_source`).
DATA_KINDS = {
    "toy2d": None,
    "text": None,
    "table": None,
    "earth": None,
    "torsions": None,
    "angles": None,
    "rotations": None,
    "bumpy_sphere": None,
    "mnist": lambda data: records.mnist(data.path, data.split),
    "cifar10": lambda data: records.image_folder(data.path, data.split, cache=data.cache),
    "tfds": lambda data: records.tfds_source(data.name, data.path, data.split),
}


# Event shapes of image datasets, for specs made without the data (ahead-of-time compiles)
IMAGE_SHAPES = {
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "downsampled_imagenet/32x32": (32, 32, 3),
    "downsampled_imagenet/64x64": (64, 64, 3),
}


def abstract_spec(config: TrainConfig, shape: tuple[int, ...] | None = None) -> DataSpec:
    """The `DataSpec` a run's data would have, without reading it (`shape`: the event shape,
    for data whose shape the config does not tell)."""
    data, labels = config.data, _num_classes(config)
    if shape is not None:  # e.g. latents: real-valued, not quantized
        return DataSpec(tuple(shape), num_classes=labels, augment_dim=_augment_dim(data))
    if data.kind == "toy2d":
        return _toy_spec(data.bins)
    if data.kind in TOKEN_KINDS:
        return _token_spec(token_source(config))
    if data.kind in POINT_KINDS:
        return _point_spec(data)
    image = IMAGE_SHAPES.get(data.name if data.kind == "tfds" else data.kind)
    if image is None:
        raise ConfigError(
            f"the event shape of {data.kind} data {data.name or ''} is unknown here: give it"
        )
    return DataSpec(image, num_classes=labels, bits=8, augment_dim=_augment_dim(data))


def image_source(config: TrainConfig, split: str | None = None) -> Any:
    """The record source of an image dataset's `split` (default: the training split)."""
    data = config.data if split is None else dataclasses.replace(config.data, split=split)
    try:
        return DATA_KINDS[data.kind](data)
    except ValueError as error:
        raise ConfigError(f"config.data ({data.kind}, split {data.split!r}): {error}") from None


TOKEN_KINDS = ("text", "table")


def held_out_split(data: DataConfig) -> str:
    """The split the loop evaluates token data on: "valid" where there is one (it selects the
    best checkpoint), else "test"."""
    return "valid" if data.kind == "table" or len(data.split_fractions) == 2 else "test"


def token_source(config: TrainConfig, split: str = "train") -> Any:
    """The token records `{"tokens": int32 [L]}` of text or table data, `split` of them."""
    data = config.data
    try:
        if data.kind == "table":
            return records.Table(data.path, data.name, split)
        return records.TextWindows(
            data.path,
            data.sequence_length,
            split,
            stride=data.stride if split == "train" else None,  # held out: no overlap
            fractions=data.split_fractions,
        )
    except ValueError as error:
        raise ConfigError(f"config.data ({data.kind}): {error}") from None
    except OSError as error:
        raise ConfigError(f"config.data.path = {data.path!r}: {error.strerror or error}") from None


# data.kind -> (the manifold its points lie on, their coordinates (None: the file's columns),
# the reader of `data.path`)
POINT_KINDS = {
    "earth": ("sphere", 3, manifold_records.earth_events),
    "torsions": ("torus", manifold_records.TORSIONS, manifold_records.torsion_angles),
    "angles": ("torus", None, manifold_records.angles),
    "rotations": ("so3", 9, manifold_records.rotations),
    "bumpy_sphere": ("bumpy_sphere", 3, manifold_records.surface_points),
}


def point_source(config: TrainConfig, split: str = "train") -> manifold_records.ManifoldPoints:
    """The records `{"x": float32 [D]}` of `split` of point data, split by `data.seed`."""
    data = config.data
    try:
        points = POINT_KINDS[data.kind][2](data.path)
    except ValueError as error:
        raise ConfigError(f"config.data ({data.kind}): {error}") from None
    except OSError as error:
        raise ConfigError(f"config.data.path = {data.path!r}: {error.strerror or error}") from None
    return manifold_records.ManifoldPoints(points, split, data.seed)


def _point_spec(data: DataConfig) -> DataSpec:
    manifold, coordinates, _ = POINT_KINDS[data.kind]
    if coordinates is None:  # a `.npy`'s columns, from its header
        try:
            coordinates = np.load(data.path, mmap_mode="r").shape[-1]
        except (OSError, ValueError) as error:
            raise ConfigError(f"config.data.path = {data.path!r}: {error}") from None
    return DataSpec((coordinates,), manifold=manifold)


def _token_spec(source: Any) -> DataSpec:
    shape = np.shape(source[0]["tokens"])
    return DataSpec(shape, "int32", vocab_size=source.vocab_size, vocabulary=source.vocabulary)


def _toy_spec(bins: int | None) -> DataSpec:
    return DataSpec((2,)) if bins is None else DataSpec((2,), "int32", vocab_size=bins)


def _num_classes(config: TrainConfig) -> int | None:
    return config.model.arguments().get("num_classes")


def _augment(data: DataConfig) -> AugmentPipe | None:
    """The augmentation pipeline `data.augment` names (at `data.augment_p`), or None."""
    return None if data.augment is None else augment_pipe(data.augment, data.augment_p)


def _augment_dim(data: DataConfig) -> int | None:
    """The number of augmentation labels per image, or None without augmentation."""
    augment = _augment(data)
    return None if augment is None else augment.num_labels


def make_batches(config: TrainConfig, mesh: Mesh) -> tuple[Any, DataSpec]:
    """The training batch iterator and the `DataSpec` of what it yields."""
    data = config.data
    labels = _num_classes(config)
    if data.kind == "toy2d":
        if labels is not None:
            raise ConfigError("config.model.num_classes is set but toy2d data has no labels")
        batches = GeneratedBatches(
            data.distribution, data.batch_size, data.seed, batch_sharding(mesh, 2), data.bins
        )
        return batches, _toy_spec(data.bins)
    if data.kind in POINT_KINDS:
        if labels is not None:
            raise ConfigError(f"config.model.num_classes is set but {data.kind} data has no labels")
        batches = GrainBatches(
            point_source(config),
            batch_size=data.batch_size,
            seed=data.seed,
            sharding={"x1": batch_sharding(mesh, 2)},
            transform=Points(),
            workers=data.workers,
            prefetch=data.prefetch,
        )
        return batches, _point_spec(data)
    if data.kind in TOKEN_KINDS:
        if labels is not None:
            raise ConfigError(f"config.model.num_classes is set but {data.kind} data has no labels")
        source = token_source(config)
        batches = GrainBatches(
            source,
            batch_size=data.batch_size,
            seed=data.seed,
            sharding={"x1": batch_sharding(mesh, 2)},
            transform=Tokens(),
            workers=data.workers,
            prefetch=data.prefetch,
        )
        return batches, _token_spec(source)
    source = image_source(config)
    if labels is not None and "label" not in source[0]:
        raise ConfigError(f"config.model.num_classes is set but {data.kind} records have no label")
    found = None if labels is None else records.num_classes(source)
    if found is not None and found > labels:
        raise ConfigError(
            f"config.model.num_classes = {labels}, but the {data.kind} labels go up to "
            f"{found - 1}: labels must lie in [0, num_classes)"
        )
    example = source[0]["image"]
    sharding = {"x1": batch_sharding(mesh, 1 + example.ndim)}
    if labels is not None:
        sharding["y"] = batch_sharding(mesh, 1)
    augment = _augment(data)
    if augment is not None:
        sharding["augment_labels"] = batch_sharding(mesh, 2)
    batches = GrainBatches(
        source,
        batch_size=data.batch_size,
        seed=data.seed,
        sharding=sharding,
        transform=ImageToFloat(
            flip=data.flip,
            dequantize=data.dequantize,
            labels=labels is not None,
            augment=augment,
        ),
        workers=data.workers,
        prefetch=data.prefetch,
    )
    spec = DataSpec(batches.event_shape, num_classes=labels, bits=8, augment_dim=_augment_dim(data))
    return batches, spec


def held_out(config: TrainConfig, spec: DataSpec) -> dict[str, np.ndarray]:
    """Held-out data for the evaluators, raw: fresh toy points, the validation split of point
    data, the first windows or rows of token data's `held_out_split`, or the first test images
    (uint8; the training split of a TFDS dataset's `data.split`)."""
    data = config.data
    if data.kind == "toy2d":
        n = min(config.log.num_samples, HELD_OUT_POINTS)
        x = sample_toy(data.distribution, jax.random.key(-1), n)
        return {"x1": np.asarray(x if data.bins is None else quantize(x, data.bins))}
    if data.kind in POINT_KINDS:
        valid = point_source(config, "valid")
        return {"x1": valid.points[: config.log.num_samples]}
    if data.kind in TOKEN_KINDS:
        test = token_source(config, held_out_split(data))
        n = min(config.log.num_samples, len(test))
        return {"x1": np.stack([test[i]["tokens"] for i in range(n)])}
    source = image_source(config, data.split if data.kind == "tfds" else "test")
    images = [source[i]["image"] for i in range(min(HELD_OUT_IMAGES, len(source)))]
    out = {"x1": np.stack([np.asarray(image) for image in images])}
    if spec.num_classes is not None:
        out["y"] = np.asarray([source[i]["label"] for i in range(len(images))], np.int32)
    return out


class Stacked:
    """`k` consecutive batches of `batches` per `next()`, stacked `[k, B, ...]` on the devices
    (sharded like the batches along their second axis); `batches` keeps the iterator state.
    A source that can draw `k` batches at once (`stacked(k, sharding)`) does so in one call."""

    def __init__(self, batches: Any, k: int, mesh: Mesh) -> None:
        self.sharding = {
            key: NamedSharding(mesh, PartitionSpec(None, *s.spec))
            for key, s in batches.sharding.items()
        }
        if hasattr(batches, "stacked"):
            self._next = batches.stacked(k, self.sharding)
            return
        stack = jax.jit(
            lambda *xs: jax.tree.map(lambda *a: jnp.stack(a), *xs), out_shardings=self.sharding
        )
        self._next = lambda: stack(*(next(batches) for _ in range(k)))

    def __iter__(self) -> "Stacked":
        return self

    def __next__(self) -> dict[str, jax.Array]:
        return self._next()

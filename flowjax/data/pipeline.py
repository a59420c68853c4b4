"""grain input pipelines: deterministic shuffling, per-process shards, augmentation, prefetch.

`GrainBatches(source, ...)` reads records (see `records.py`), shuffles them with `seed` (a new
order every epoch), keeps this process's share, turns images into float32 in [-1, 1] (with
uniform dequantization, random horizontal flips and EDM's augmentation with its labels
(`flowjax.data.augment`), all drawn per record from the seed, so a resumed run sees the same
pixels and labels), batches, prefetches (threads, or `workers` processes) and assembles global
arrays sharded over the mesh with `jax.make_array_from_process_local_data`. Its state is
checkpointed with grain's Orbax handler (one file per process).
"""

from typing import Any

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding

from flowjax.data.augment import AugmentPipe


class ImageToFloat(grain.transforms.RandomMap):
    """`{"image": uint8 [H, W, C], "label"}` -> `{"x1": float32 [H, W, C] in [-1, 1], ("y":
    label), ("augment_labels": float32 [augment.num_labels])}`: dequantized, flipped, then
    augmented by `augment` (None: not), in that order, each from the record's generator."""

    def __init__(
        self, flip: bool, dequantize: bool, labels: bool, augment: AugmentPipe | None = None
    ) -> None:
        self.flip, self.dequantize, self.labels = flip, dequantize, labels
        self.augment = augment

    def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        image = np.asarray(record["image"], np.float32)
        if self.dequantize:  # u ~ U[0, 1): (x + u) / 256 lies in the pixel's own bin
            image = (image + rng.random(image.shape, dtype=np.float32)) / 128.0 - 1.0
        else:
            image = image / 127.5 - 1.0
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        out = {"x1": image}
        if self.augment is not None:
            out["x1"], out["augment_labels"] = self.augment(image, rng)
        if self.labels:
            out["y"] = np.int32(record["label"])
        return out


class Tokens(grain.transforms.Map):
    """`{"tokens": int32 [L]}` -> `{"x1": int32 [L]}` (text windows for discrete models)."""

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"x1": np.asarray(record["tokens"], np.int32)}


class Points(grain.transforms.Map):
    """`{"x": float32 [D]}` -> `{"x1": float32 [D]}` (points of a manifold)."""

    def map(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"x1": np.asarray(record["x"], np.float32)}


def _apply(dataset: grain.MapDataset, transform: Any) -> grain.MapDataset:
    if isinstance(transform, grain.transforms.RandomMap):
        return dataset.random_map(transform)
    return dataset.map(transform)


def _mark_absl_flags_parsed() -> None:
    """grain's worker processes read absl flags; a plain Python program never parsed them."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class GrainBatches:
    """Iterator of global batches `{"x1": [B, *event], ("y": [B]), ("augment_labels": [B, n])}`
    from a record source.

    `sharding` maps each key to its NamedSharding; `batch_size` is global (each process loads
    `batch_size / process_count` records per step).
    """

    checkpoint_handler = grain.checkpoint.CheckpointHandler

    def __init__(
        self,
        source: Any,
        *,
        batch_size: int,
        seed: int,
        sharding: dict[str, NamedSharding],
        transform: grain.transforms.RandomMap | grain.transforms.Map,
        workers: int = 0,
        prefetch: int = 2,
    ) -> None:
        count, index = jax.process_count(), jax.process_index()
        local = batch_size // count
        records = grain.MapDataset.source(source).seed(seed)
        shuffled = records.shuffle().repeat(None)[index::count]
        dataset = _apply(shuffled, transform).batch(local, drop_remainder=True)
        iterable = dataset.to_iter_dataset(
            grain.ReadOptions(num_threads=max(1, prefetch), prefetch_buffer_size=prefetch)
        )
        if workers > 0:
            _mark_absl_flags_parsed()
            iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
        self._iterator = iter(iterable)
        self.sharding = sharding
        example = _apply(records, transform)[0]
        self.event_shape = tuple(np.shape(example["x1"]))

    def __iter__(self) -> "GrainBatches":
        return self

    def __next__(self) -> dict[str, jax.Array]:
        local = next(self._iterator)
        return {
            k: jax.make_array_from_process_local_data(self.sharding[k], np.asarray(v))
            for k, v in local.items()
        }

    def save_args(self) -> Any:
        return grain.checkpoint.CheckpointSave(self._iterator)

    def restore_args(self) -> Any:
        return grain.checkpoint.CheckpointRestore(self._iterator)

    def load(self, item: Any) -> None:
        """grain restores the iterator in place."""
        del item

"""grain input pipelines: deterministic shuffling, per-process shards, augmentation, prefetch.

`GrainBatches(source, ...)` reads records (see `records.py`), shuffles them with `seed` (a new
order every epoch), keeps this process's share, turns images into float32 in [-1, 1] (with
uniform dequantization, random horizontal flips and EDM's augmentation with its labels
(`flowjax.data.augment`), all drawn per record from the seed, so a resumed run sees the same
pixels and labels), batches, prefetches (threads, or `workers` processes) and assembles global
arrays sharded over the mesh with `jax.make_array_from_process_local_data`. Its state is
checkpointed with grain's Orbax handler (one file per process).

A source that reads many records at once (`take(rows) -> {key: [len(rows), ...]}`, the
in-memory points of `manifold_records.ManifoldPoints`) under a deterministic transform is read
a batch at a time instead: grain's per-record shuffle and stacking cost ~40 us a record, which
at batch 512 was three times the step of the earth-data MLP on a CPU. Its epochs are numpy
permutations (`stream_rows`), with the same per-process striding.
"""

import functools
import sys
from typing import Any, Protocol

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


class BatchedSource(Protocol):
    """A record source that also reads many records at once."""

    def __len__(self) -> int: ...

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]: ...


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """Epoch `epoch`'s order of `range(n)`, drawn once per epoch, not once per batch."""
    return np.random.default_rng((seed, epoch)).permutation(n)


def stream_rows(n: int, seed: int, positions: np.ndarray) -> np.ndarray:
    """The rows at `positions` of the stream that runs through a fresh permutation of
    `range(n)` each epoch (`default_rng((seed, epoch))`). `positions: int [K] -> int [K]`."""
    epochs, offsets = np.divmod(positions, n)
    rows = np.empty_like(positions)
    for epoch in np.unique(epochs):
        at = epochs == epoch
        rows[at] = _permutation(n, seed, int(epoch))[offsets[at]]
    return rows


class _ReadBatch(grain.transforms.Map):
    """Batch number `b` -> this process's records at stream positions `index + count * (local
    * b + j)`, j < local, transformed (a class, so that worker processes can unpickle it)."""

    def __init__(
        self,
        source: BatchedSource,
        transform: grain.transforms.Map,
        seed: int,
        local: int,
        count: int,
        index: int,
    ) -> None:
        self.source, self.transform, self.seed = source, transform, seed
        self.local, self.count, self.index = local, count, index

    def map(self, b: int) -> dict[str, Any]:
        positions = self.index + self.count * (self.local * b + np.arange(self.local))
        rows = stream_rows(len(self.source), self.seed, positions)
        return self.transform.map(self.source.take(rows))


def _per_record(
    source: Any, seed: int, transform: Any, local: int, count: int, index: int
) -> grain.MapDataset:
    records = grain.MapDataset.source(source).seed(seed)
    shuffled = records.shuffle().repeat(None)[index::count]
    return _apply(shuffled, transform).batch(local, drop_remainder=True)


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
        if hasattr(source, "take") and not isinstance(transform, grain.transforms.RandomMap):
            read = _ReadBatch(source, transform, seed, local, count, index)
            dataset = grain.MapDataset.range(sys.maxsize).map(read)
        else:
            dataset = _per_record(source, seed, transform, local, count, index)
        iterable = dataset.to_iter_dataset(
            grain.ReadOptions(num_threads=max(1, prefetch), prefetch_buffer_size=prefetch)
        )
        if workers > 0:
            _mark_absl_flags_parsed()
            iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
        self._iterator = iter(iterable)
        self.sharding = sharding
        example = _apply(grain.MapDataset.source(source).seed(seed), transform)[0]
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

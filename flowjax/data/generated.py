"""Batches generated on the devices: toy 2-D distributions, one global batch per call.

Batch `i` is `sample_toy(name, fold_in(data_key, i), batch_size)` with `data_key =
fold_in(key(seed), DATA_STREAM)` (with `bins`, quantized to tokens by `toy2d.quantize`),
computed under `jax.jit` with the batch sharding, so every process builds the same global
array (each device only its shard) and the iterator state is just `i`.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding

from flowjax.data.toy2d import quantize, sample_toy

DATA_STREAM = 0x64617461  # "data": folded into the seed's key before the batch index


class GeneratedBatches:
    """Iterator of `{"x1": [batch_size, 2]}` global arrays (float32, or int32 tokens in
    `[0, bins)` with `bins`) with `get_state` / `set_state`, and the Orbax arguments that
    checkpoint that state (a JSON item, the same on every process)."""

    event_shape = (2,)
    checkpoint_handler = ocp.JsonCheckpointHandler

    def __init__(
        self,
        distribution: str,
        batch_size: int,
        seed: int,
        sharding: NamedSharding,
        bins: int | None = None,
    ) -> None:
        self.sharding = {"x1": sharding}
        # a stream of its own: the training step's keys are fold_in(key(seed), step) too, and a
        # loss whose noise came from the key of its own batch would learn the correlation
        key = jax.random.fold_in(jax.random.key(seed), DATA_STREAM)

        def make(i: jax.Array) -> dict[str, jax.Array]:
            x = sample_toy(distribution, jax.random.fold_in(key, i), batch_size)
            return {"x1": x if bins is None else quantize(x, bins)}

        self._make = jax.jit(make, out_shardings={"x1": sharding})
        self._vmapped = jax.vmap(make)
        self.index = 0

    def __iter__(self) -> "GeneratedBatches":
        return self

    def __next__(self) -> dict[str, jax.Array]:
        batch = self._make(self.index)
        self.index += 1
        return batch

    def stacked(
        self, k: int, sharding: dict[str, NamedSharding]
    ) -> Callable[[], dict[str, jax.Array]]:
        """A function returning the next `k` batches stacked `[k, batch_size, 2]` (placed by
        `sharding`), drawn in one call: the same batches as `k` calls of `next`."""
        make = jax.jit(lambda i: self._vmapped(i + jnp.arange(k)), out_shardings=sharding)

        def take() -> dict[str, jax.Array]:
            batches = make(self.index)
            self.index += k
            return batches

        return take

    def get_state(self) -> dict[str, Any]:
        return {"index": self.index}

    def set_state(self, state: dict[str, Any]) -> None:
        self.index = int(state["index"])

    def save_args(self) -> ocp.args.JsonSave:
        return ocp.args.JsonSave(self.get_state())

    def restore_args(self) -> ocp.args.JsonRestore:
        return ocp.args.JsonRestore()

    def load(self, item: dict[str, Any]) -> None:
        """Take the restored checkpoint item."""
        self.set_state(item)

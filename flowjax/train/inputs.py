"""From `config.data` to a batch iterator of global arrays sharded over the mesh.

Every iterator here yields `{"x1": [B, *event], ("y": [B])}` global arrays, has `event_shape`,
`sharding` (per key), `checkpoint_handler` (an Orbax handler class), `save_args()`,
`restore_args()` and `load(item)` to resume from a restored checkpoint item.
"""

from typing import Any

from jax.sharding import Mesh

from flowjax.data.generated import GeneratedBatches
from flowjax.train.config import ConfigError, TrainConfig
from flowjax.train.sharding import batch_sharding


def make_batches(config: TrainConfig, mesh: Mesh) -> Any:
    data = config.data
    if data.kind == "toy2d":
        return GeneratedBatches(
            data.distribution, data.batch_size, data.seed, batch_sharding(mesh, 2)
        )
    raise ConfigError(f"config.data.kind = {data.kind!r} is not available yet")

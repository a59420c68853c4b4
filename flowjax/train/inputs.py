"""From `config.data` to a batch iterator of global arrays sharded over the mesh.

Every iterator here yields `{"x1": [B, *event], ("y": [B])}` global arrays, has `event_shape`,
`sharding` (per key), `checkpoint_handler` (an Orbax handler class), `save_args()`,
`restore_args()` and `load(item)` to resume from a restored checkpoint item.
"""

from typing import Any

from jax.sharding import Mesh

from flowjax.data import sources
from flowjax.data.generated import GeneratedBatches
from flowjax.data.pipeline import GrainBatches, ImageToFloat
from flowjax.train.config import ConfigError, TrainConfig
from flowjax.train.sharding import batch_sharding


def image_source(config: TrainConfig) -> Any:
    """The record source of an image dataset (`{"image": uint8 [H, W, C], "label": int}`)."""
    data = config.data
    if data.kind == "mnist":
        return sources.mnist(data.path, data.split)
    if data.kind == "cifar10":
        return sources.image_folder(data.path, data.split, cache=data.cache)
    return sources.tfds_source(data.name, data.path, data.split)


def make_batches(config: TrainConfig, mesh: Mesh) -> Any:
    data = config.data
    if data.kind == "toy2d":
        return GeneratedBatches(
            data.distribution, data.batch_size, data.seed, batch_sharding(mesh, 2)
        )
    if data.kind == "text":
        raise ConfigError(
            "config.data.kind = 'text' feeds discrete flow models, which this version does not "
            "have yet (flowjax.data.sources.TextWindows with pipeline.Tokens batches the file)"
        )
    source = image_source(config)
    labels = config.model.num_classes is not None
    if labels and "label" not in source[0]:
        raise ConfigError(f"config.model.num_classes is set but {data.kind} records have no label")
    example = source[0]["image"]
    sharding = {"x1": batch_sharding(mesh, 1 + example.ndim)}
    if labels:
        sharding["y"] = batch_sharding(mesh, 1)
    return GrainBatches(
        source,
        batch_size=data.batch_size,
        seed=data.seed,
        sharding=sharding,
        transform=ImageToFloat(flip=data.flip, dequantize=data.dequantize, labels=labels),
        workers=data.workers,
        prefetch=data.prefetch,
    )

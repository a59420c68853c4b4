"""The device mesh and the sharding rules: batches split over every device, parameters
replicated (data parallel) or sharded along "fsdp" (fully sharded data parallel)."""

import math
from typing import Any

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from flowjax.train.config import MeshConfig

AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")  # the batch dimension is split over all devices


def make_mesh(config: MeshConfig, devices: list | None = None) -> Mesh:
    """A ("data", "fsdp") mesh over `devices` (all devices by default), auto-sharded axes.
    Across slices (devices of several `slice_index`es) "data" spans the slices over the DCN
    and "fsdp" stays within a slice (ICI)."""
    devices = jax.devices() if devices is None else devices
    fsdp = config.fsdp
    data = len(devices) // fsdp if config.data == -1 else config.data
    slices = len({getattr(d, "slice_index", 0) or 0 for d in devices})
    if slices == 1:
        return jax.make_mesh((data, fsdp), AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)
    grid = mesh_utils.create_hybrid_device_mesh(
        (data // slices, fsdp), (slices, 1), devices=devices
    )
    return Mesh(grid, AXES, axis_types=(AxisType.Auto,) * 2)


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Leading (batch) dimension split over every device, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(BATCH_AXES, *([None] * (ndim - 1))))


def param_spec(shape: tuple[int, ...], fsdp: int, min_size: int) -> PartitionSpec:
    """Shard the largest dimension divisible by `fsdp` if the array has `min_size` elements."""
    if fsdp == 1 or math.prod(shape) < min_size:
        return PartitionSpec()
    dims = [d for d in np.argsort(shape)[::-1] if shape[d] % fsdp == 0]
    if not dims:
        return PartitionSpec()
    spec = [None] * len(shape)
    spec[dims[0]] = "fsdp"
    return PartitionSpec(*spec)


def state_shardings(mesh: Mesh, abstract_state: Any, config: MeshConfig) -> Any:
    """NamedShardings for every leaf of a (train-state) pytree of `jax.ShapeDtypeStruct`s:
    the FSDP rule applies alike to parameters, optimizer moments and EMA parameters."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(
        lambda a: NamedSharding(mesh, param_spec(a.shape, fsdp, config.fsdp_min_size)),
        abstract_state,
    )

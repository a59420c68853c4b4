"""The real training step compiled ahead of time for a TPU topology, on a machine without one.

`compile_for(config, devices)` builds the run's family, network, optimizer, state shardings
and sharded `train_step` exactly as `flowjax train` does (same mesh rules, FSDP, precision,
accumulation, steps per call), for `devices`, those of a TPU topology (`jax.experimental.
topologies`, from the `libtpu` wheel: `pip install flowjax-fm[tpu-compile]`), lowers it with
abstract inputs and compiles it with XLA's TPU compiler. `Report` reads what the executable
needs: per-chip bytes (parameters, optimizer state and EMA from their shardings; temporaries
from the compiled memory analysis), FLOPs per step (`perf.step_flops`),
the collectives the sharding introduced (the bytes each device sends, from the compiled
HLO's instructions and a ring model), and a projected step time: compute at `utilization` x
the chip's published bf16 peak, plus the collectives at its published ICI bandwidth (and,
across slices, the gradient all-reduce at its DCN bandwidth), not overlapped.
"""

import dataclasses
import math
import os
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from flowjax.contracts import DataSpec
from flowjax.train import build, perf
from flowjax.train.config import ConfigError, TrainConfig, validate
from flowjax.train.inputs import abstract_spec
from flowjax.train.sharding import batch_sharding, make_mesh, state_shardings
from flowjax.train.state import init_state
from flowjax.train.step import train_call, train_steps

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
    """Published per-chip numbers: dense bf16 peak (TFLOP/s), HBM (GiB), bidirectional ICI
    and DCN bandwidth (GB/s; None where not published), and the page they come from."""

    name: str
    peak_tflops: float
    hbm_gib: float
    ici_gbps: float | None
    dcn_gbps: float | None
    source: str


CHIPS = {
    "v4": Chip("TPU v4", 275.0, 32.0, None, None, "https://cloud.google.com/tpu/docs/v4"),
    # DCN: 2 x 100 Gbit/s NICs per host of 8 chips = 3.125 GB/s per chip
    "v5e": Chip("TPU v5e", 197.0, 16.0, 400.0, 3.125, "https://cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip(
        "TPU v5p", 459.0, 95.0, 1200.0, 6.25, "https://cloud.google.com/tpu/docs/v5p-training"
    ),
    "v6e": Chip("TPU v6e", 918.0, 32.0, 800.0, None, "https://cloud.google.com/tpu/docs/v6e"),
}
LIBTPU_ENV = {
    "TPU_SKIP_MDS_QUERY": "1",
    "TPU_ACCELERATOR_TYPE": "v5litepod-4",
    "TPU_WORKER_HOSTNAMES": "localhost",
    "TPU_WORKER_ID": "0",
    "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",  # compiling only: several processes may hold libtpu
}
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "bf16": 2, "f16": 2, "s16": 2, "u16": 2}
DTYPE_BYTES |= {"f32": 4, "s32": 4, "u32": 4, "f64": 8, "s64": 8, "u64": 8}


def topology(name: str, num_slices: int = 1) -> tuple[Chip, list[jax.Device]]:
    """`(chip, devices)` of a topology such as "v5e:16x16" or "v5p:8x8x8" (a device per chip)."""
    version, _, shape = name.partition(":")
    if version not in CHIPS or not re.fullmatch(r"\d+(x\d+)+", shape):
        raise ConfigError(
            f"--topology {name!r}: expected <chip>:<shape> with chip in {sorted(CHIPS)}, "
            "e.g. v5e:16x16 or v5p:8x8x8"
        )
    # libtpu looks for the TPU VM it runs on unless told: a compile-only process names one
    for key, value in LIBTPU_ENV.items():
        os.environ.setdefault(key, value)
    # a v4 chip's two TensorCores are one device ("megacore"), as on a v4 TPU VM
    chip_config = {"chip_config_name": "megacore"} if version == "v4" else {}
    try:
        from jax.experimental import topologies

        desc = topologies.get_topology_desc(
            platform="tpu", topology_name=name, num_slices=num_slices, **chip_config
        )
    except (ImportError, RuntimeError) as error:
        cause = str(error).splitlines()[0][:200]
        if "not installed" in cause or "libtpu" in cause:
            cause += "; install the TPU compiler: pip install 'flowjax-fm[tpu-compile]'"
        raise ConfigError(f"--topology {name}: {cause}") from None
    return CHIPS[version], list(desc.devices)


def _abstract(tree: Any, shardings: Any) -> Any:
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
    )


def _batch(config: TrainConfig, spec: DataSpec, mesh: Any) -> dict[str, jax.ShapeDtypeStruct]:
    """Abstract batches of one call: `[steps_per_call, B, *event]` (or `[B, *event]`)."""
    k = config.steps_per_call
    lead = (k, config.data.batch_size) if k > 1 else (config.data.batch_size,)

    def abstract(shape: tuple[int, ...], dtype: Any) -> jax.ShapeDtypeStruct:
        sharding = batch_sharding(mesh, len(shape) + 1)
        if k > 1:
            sharding = NamedSharding(mesh, PartitionSpec(None, *sharding.spec))
        return jax.ShapeDtypeStruct((*lead, *shape), dtype, sharding=sharding)

    batch = {"x1": abstract(spec.event_shape, jnp.dtype(spec.dtype))}
    if spec.num_classes is not None:
        batch["y"] = abstract((), jnp.int32)
    if spec.augment_dim is not None:
        batch["augment_labels"] = abstract((spec.augment_dim,), jnp.float32)
    return batch


@dataclasses.dataclass(frozen=True)
class Compiled:
    """The compiled step and what it was compiled for."""

    executable: Any
    state: Any  # abstract TrainState with its shardings
    config: TrainConfig
    devices: Sequence[jax.Device]
    flops_per_step: float  # per device (`perf.step_flops`)


@dataclasses.dataclass(frozen=True)
class _Parts:
    mesh: Any
    family: Any
    network: Any
    optimizer: Any
    state: Any  # abstract TrainState with its shardings
    batch: dict[str, jax.ShapeDtypeStruct]


def _parts(config: TrainConfig, devices: Sequence[jax.Device], shape: Any) -> _Parts:
    """The run's pieces on `devices`, built as `flowjax train` builds them."""
    validate(config, len(devices), 1, data=False)
    mesh = make_mesh(config.mesh, list(devices))
    spec = abstract_spec(config, shape)
    family = build.family(config, spec, mesh)
    network, params = build.network(config, family.network, abstract=True)
    optimizer = build.optimizer(config.optim, config.steps)
    abstract = jax.eval_shape(lambda p: init_state(p, optimizer, config.seed), params)
    state = _abstract(abstract, state_shardings(mesh, abstract, config.mesh))
    return _Parts(mesh, family, network, optimizer, state, _batch(config, spec, mesh))


def program(
    config: TrainConfig, devices: Sequence[jax.Device], shape: tuple[int, ...] | None = None
) -> tuple[Any, Any, dict[str, jax.ShapeDtypeStruct], float]:
    """`(jitted call, abstract sharded state, abstract batch, FLOPs per step per device)` of
    the run on `devices` (`shape`: the event shape where the data does not tell). The FLOPs
    are `perf.step_flops` of the same steps lowered unsharded on this host (a topology's
    program has no backend here to analyse it)."""
    p = _parts(config, devices, shape)
    shardings = jax.tree.map(lambda a: a.sharding, p.state)
    placed = {key: b.sharding for key, b in p.batch.items()}
    call = train_call(config, p.family, p.network, p.optimizer, p.mesh, shardings, placed)
    unsharded = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), (p.state, p.batch))
    here = jax.jit(train_steps(config, p.family, p.network, p.optimizer)).lower(*unsharded)
    flops = perf.step_flops(here, len(devices), config.optim.accumulate)
    return call, p.state, p.batch, flops


def compile_for(
    config: TrainConfig, devices: Sequence[jax.Device], shape: tuple[int, ...] | None = None
) -> Compiled:
    """Compile the run's sharded training step for `devices` (abstract inputs, no data)."""
    call, state, batch, flops = program(config, devices, shape)
    return Compiled(call.lower(state, batch).compile(), state, config, devices, flops)


def _shard_bytes(tree: Any) -> int:
    """Bytes one device holds of a tree of sharded abstract arrays."""
    return sum(
        math.prod(a.sharding.shard_shape(a.shape)) * jnp.dtype(a.dtype).itemsize
        for a in jax.tree.leaves(tree)
    )


def _group_size(line: str, devices: int) -> int:
    """Devices in each replica group of a collective instruction: listed (`{{0,1},{2,3}}`),
    as an iota (`[2,2]<=[4]`), as mesh axes (`mesh['data'=4,'fsdp'=1] {'data'}`), or all."""
    iota = re.search(r"replica_groups=\[\d+,(\d+)\]<=", line)
    if iota:
        return int(iota.group(1))
    listed = re.search(r"replica_groups=\{\{([\d,]*)\}", line)
    if listed:
        return len(listed.group(1).split(","))
    mesh = re.search(r"replica_groups=mesh\[([^\]]*)\] \{([^}]*)\}", line)
    if mesh:
        sizes = {axis: int(n) for axis, n in re.findall(r"'(\w+)'=(\d+)", mesh.group(1))}
        return math.prod(sizes[axis] for axis in re.findall(r"'(\w+)'", mesh.group(2)))
    return devices


def ring_traffic(kind: str, result: int, n: int) -> float:
    """Bytes a device sends for one collective over a ring of `n` devices, from the bytes of
    its result: all-reduce 2(n-1)/n (reduce-scatter then all-gather), all-gather and
    all-to-all (n-1)/n, reduce-scatter (n-1) (its result is one shard), a permute all."""
    if kind == "collective-permute":
        return float(result)
    factor = {"all-reduce": 2 * (n - 1) / n, "reduce-scatter": n - 1.0}
    return result * factor.get(kind, (n - 1) / n)


def collective_bytes(hlo: str, devices: int) -> dict[str, float]:
    """Bytes each device sends per call for each kind of collective in a compiled HLO module
    (`ring_traffic` of the instructions' result shapes; async pairs counted at their start)."""
    out = dict.fromkeys(COLLECTIVES, 0.0)
    instruction = re.compile(r" = (.+?) (" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
    for line in hlo.splitlines():
        found = instruction.search(line)
        if found is None:
            continue
        result = sum(
            DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
            for dtype, dims in re.findall(r"\b(\w+)\[([\d,]*)\]", found.group(1))
            if dtype in DTYPE_BYTES
        )
        kind = found.group(2)
        out[kind] += ring_traffic(kind, result, _group_size(line, devices))
    return out


@dataclasses.dataclass(frozen=True)
class Report:
    """Per-device figures of a compiled step on a chip (bytes; FLOPs per step)."""

    chip: Chip
    devices: int
    params: int
    opt_state: int
    ema: int
    temporaries: int
    code: int
    flops_per_step: float
    collectives: dict[str, float]
    global_batch: int
    steps_per_call: int
    num_slices: int
    utilization: float

    @property
    def hbm(self) -> float:
        """HBM per device (one device per chip)."""
        return self.chip.hbm_gib * GIB

    @property
    def total(self) -> int:
        return self.params + self.opt_state + self.ema + self.temporaries + self.code

    @property
    def fits(self) -> bool:
        return self.total <= self.hbm

    @property
    def step_seconds(self) -> float:
        """Projected: FLOPs at `utilization` x peak, plus what the collectives send at half
        the published bidirectional ICI bandwidth (one direction), plus, across slices, the
        gradient all-reduce of a device's parameter shard over its share of the DCN; nothing
        overlapped."""
        peak = self.chip.peak_tflops * 1e12
        seconds = self.flops_per_step / (self.utilization * peak)
        if self.chip.ici_gbps:
            per_step = sum(self.collectives.values()) / self.steps_per_call
            seconds += per_step / (self.chip.ici_gbps * 1e9 / 2)
        if self.num_slices > 1 and self.chip.dcn_gbps:
            sent = ring_traffic("all-reduce", self.params, self.num_slices)
            seconds += sent / (self.chip.dcn_gbps * 1e9)
        return seconds

    @property
    def samples_per_second(self) -> float:
        return self.global_batch / self.step_seconds

    def to_dict(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["chip"] = self.chip.name
        derived = ("hbm", "total", "fits", "step_seconds", "samples_per_second")
        return fields | {name: getattr(self, name) for name in derived}


def report(compiled: Compiled, chip: Chip, utilization: float = 0.4) -> Report:
    """What `compiled` needs per device on `chip`, projected."""
    memory = compiled.executable.memory_analysis()
    state, config = compiled.state, compiled.config
    slices = len({getattr(d, "slice_index", 0) or 0 for d in compiled.devices})
    return Report(
        chip=chip,
        devices=len(compiled.devices),
        params=_shard_bytes(state.params),
        opt_state=_shard_bytes(state.opt_state),
        ema=_shard_bytes(state.ema_params),
        temporaries=int(memory.temp_size_in_bytes),
        code=int(memory.generated_code_size_in_bytes),
        flops_per_step=compiled.flops_per_step,
        collectives=collective_bytes(compiled.executable.as_text(), len(compiled.devices)),
        global_batch=config.data.batch_size,
        steps_per_call=config.steps_per_call,
        num_slices=slices,
        utilization=utilization,
    )


# XLA's TPU compiler out of HBM: all the step holds ("Used ... of ... hbm"), or its temporaries
OUT_OF_MEMORY = (
    (re.compile(r"Used ([\d.]+)([KMGT]) of [\d.]+[KMGT] hbm"), True),
    (re.compile(r"memory required for HLO temporaries \(([\d.]+)([KMGT])\)"), False),
)
UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclasses.dataclass(frozen=True)
class Requirement:
    """What a step needs per device: `report` when it compiled within HBM (else None), the
    bytes it needs, and those of its state (parameters, optimizer state, EMA)."""

    report: Report | None
    needed: float
    state: float


def requirement(
    config: TrainConfig,
    devices: Sequence[jax.Device],
    chip: Chip,
    shape: tuple[int, ...] | None = None,
    utilization: float = 0.4,
) -> Requirement:
    """Compile the step for `devices` and read what it needs, fitting or not."""
    call, state, batch, flops = program(config, devices, shape)
    state_bytes = float(_shard_bytes(state))
    try:
        compiled = Compiled(call.lower(state, batch).compile(), state, config, devices, flops)
    except Exception as error:  # XlaRuntimeError: RESOURCE_EXHAUSTED at compile time
        for pattern, whole in OUT_OF_MEMORY:
            found = pattern.search(str(error))
            if found:
                amount = float(found.group(1)) * UNITS[found.group(2)]
                return Requirement(None, amount if whole else amount + state_bytes, state_bytes)
        raise
    result = report(compiled, chip, utilization)
    return Requirement(result if result.fits else None, float(result.total), state_bytes)


def fitting_report(
    config: TrainConfig,
    topology_name: str,
    num_slices: int = 1,
    shape: tuple[int, ...] | None = None,
    utilization: float = 0.4,
) -> Report:
    """The report of the run's step on the topology, or a one-line ConfigError when it does
    not fit in HBM: with the smallest `mesh.fsdp` whose sharded state would make it fit (the
    state's bytes from its shardings, the rest as compiled), else what the rest needs alone."""
    chip, devices = topology(topology_name, num_slices)
    need = requirement(config, devices, chip, shape, utilization)
    if need.report is not None:
        return need.report
    hbm = chip.hbm_gib * GIB
    message = (
        f"{topology_name}: the step needs {need.needed / GIB:.2f} GiB per device, the chip has "
        f"{hbm / GIB:.2f} GiB"
    )
    rest = need.needed - need.state
    per_slice, fsdp = len(devices) // num_slices, config.mesh.fsdp * 2
    while fsdp <= per_slice and per_slice % fsdp == 0:
        mesh = dataclasses.replace(config.mesh, fsdp=fsdp)
        state = _shard_bytes(_parts(dataclasses.replace(config, mesh=mesh), devices, shape).state)
        if rest + state <= hbm:
            raise ConfigError(
                f"{message}; with --config.mesh.fsdp={fsdp} about {(rest + state) / GIB:.2f} GiB "
                f"(its state sharded {fsdp} ways): compile again with it to check"
            )
        fsdp *= 2
    raise ConfigError(
        f"{message}; activations and temporaries alone need {rest / GIB:.2f} GiB, whatever "
        "the FSDP setting: lower config.data.batch_size or raise config.optim.accumulate"
    )

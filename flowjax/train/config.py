"""Training configuration: frozen dataclasses, command-line overrides and validation.

A config file is a Python file defining `get_config() -> TrainConfig`. Any field can be
overridden from the command line as `--config.optim.lr=1e-4`. `validate` checks the whole config
before any compute and raises `ConfigError` with one readable message.
"""

import dataclasses
import importlib.util
import json
import types
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A user mistake in a config or its overrides (reported as one line by the CLI)."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training batches come from.

    kind: "toy2d" (generated on the device from `distribution`), "mnist" (IDX files under
    `path`), "cifar10" (a folder or tarball of `<split>/<class>/<image>` under `path`; `cache`
    decodes it once into memory), "text" (a text file of characters, `sequence_length`
    windows), "tfds" (the prepared dataset `name` in the TFDS data dir `path`).
    Images become float32 in [-1, 1], with uniform dequantization and optional random
    horizontal flips; `workers` > 0 decodes in that many processes, `prefetch` batches ahead.
    """

    kind: str = "toy2d"
    distribution: str = "checkerboard"
    path: str | None = None
    name: str | None = None
    split: str = "train"
    batch_size: int = 256
    seed: int = 0
    flip: bool = False
    dequantize: bool = True
    cache: bool = False
    workers: int = 0
    prefetch: int = 2
    sequence_length: int = 128


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """The ADM UNet (`flowjax.models.UNet`); the defaults are TorchCFM's CIFAR-10 recipe.
    `channel_mult = None` picks ADM's multipliers for the image size."""

    channels: int = 128
    res_blocks: int = 2
    channel_mult: tuple[int, ...] | None = None
    attention_resolutions: tuple[int, ...] = (16,)
    heads: int = 4
    head_channels: int | None = 64
    dropout: float = 0.0
    scale_shift_norm: bool = False
    resblock_updown: bool = False


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """The Diffusion Transformer (`flowjax.models.DiT`): size S, B, L or XL; patch size."""

    size: str = "S"
    patch: int = 2


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The velocity network. kind: "mlp" (vector data; width, depth, activation, time
    embedding), "unet" (images; `unet` section) or "dit" (images; `dit` section)."""

    kind: str = "mlp"
    width: int = 512
    depth: int = 4
    activation: str = "silu"
    time_embedding: str = "raw"
    num_classes: int | None = None
    unet: UNetConfig = UNetConfig()
    dit: DiTConfig = DiTConfig()


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """The probability path and loss: scheduler (condot, cosine, vp, linear_vp, polynomial, ve),
    prediction target, training-time distribution (uniform, logit_normal, edm), and the
    minibatch coupling (independent, or OT by the exact, auction or sinkhorn solver, with
    `coupling_reg` for sinkhorn) over the global batch or per device shard (`coupling_scope`;
    see `flowjax.couplings` for the cost), optionally only within classes (`coupling_within`);
    label dropout to the null class for classifier-free guidance, per sample or per batch."""

    scheduler: str = "condot"
    sigma_min: float = 0.0
    parameterization: str = "velocity"
    time_sampler: str = "uniform"
    time_eps: float = 0.0
    coupling: str = "independent"
    coupling_reg: float = 0.0
    coupling_scope: str = "global"
    coupling_within: str | None = None
    label_dropout: float = 0.0
    label_dropout_mode: str = "sample"


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam(W) with an optional linear warm-up then a constant, cosine or polynomial decay to
    `lr * end_lr_factor`; global-norm clipping; gradient accumulation; EMA with warm-up."""

    lr: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    end_lr_factor: float = 0.0
    power: float = 1.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None
    accumulate: int = 1
    ema_decay: float = 0.9999
    ema_warmup: bool = True


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh ("data", "fsdp"). `data=-1` takes every device not used by `fsdp`.
    Parameters (and their optimizer and EMA states) of at least `fsdp_min_size` elements are
    sharded along "fsdp" on their largest divisible dimension; the rest are replicated."""

    data: int = -1
    fsdp: int = 1
    fsdp_min_size: int = 2**14


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Orbax checkpoints in `directory` (default `<workdir>/checkpoints`; a gs:// path works):
    every `every` steps and at the end, keeping the last `keep` (and the best by `best_metric`
    if set)."""

    directory: str | None = None
    every: int = 1000
    keep: int = 3
    best_metric: str | None = None
    best_mode: str = "min"


@dataclasses.dataclass(frozen=True)
class LogConfig:
    """Logging and evaluation periods (steps); 0 disables. Samples are drawn with
    `eval_method` (`eval_steps` uniform steps for the fixed-step methods); those of a
    class-conditional model cycle through the classes with classifier-free guidance scale
    `guidance` (1: the conditional field, 0: unconditional)."""

    every: int = 100
    sample_every: int = 0
    eval_every: int = 0
    num_samples: int = 4096
    eval_method: str = "dopri5"
    eval_steps: int = 100
    guidance: float = 1.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 10_000
    precision: str = "float32"
    nonfinite: str = "skip"
    distributed: str = "auto"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    flow: FlowConfig = FlowConfig()
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()


CHOICES = {
    "precision": ("float32", "bfloat16"),
    "nonfinite": ("skip", "stop"),
    "distributed": ("auto", "on", "off"),
    "data.kind": ("toy2d", "mnist", "cifar10", "text", "tfds"),
    "model.kind": ("mlp", "unet", "dit"),
    "model.dit.size": ("S", "B", "L", "XL"),
    "flow.scheduler": ("condot", "cosine", "vp", "linear_vp", "polynomial", "ve"),
    "flow.parameterization": ("velocity", "x1", "epsilon"),
    "flow.time_sampler": ("uniform", "logit_normal", "edm"),
    "flow.coupling": ("independent", "exact", "auction", "sinkhorn"),
    "flow.coupling_scope": ("global", "shard"),
    "flow.coupling_within": (None, "y"),
    "flow.label_dropout_mode": ("sample", "batch"),
    "optim.schedule": ("constant", "cosine", "polynomial"),
    "checkpoint.best_mode": ("min", "max"),
    "log.eval_method": ("euler", "midpoint", "heun", "rk4", "dopri5", "tsit5", "dopri8"),
}


# ---------------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> TrainConfig:
    """Run the config file at `path` and return its `get_config()`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"flowjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path} must define get_config() -> TrainConfig")
    config = module.get_config()
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not TrainConfig")
    return config


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse(text: str, kind: Any, key: str) -> Any:
    """Parse an override value for a field of type `kind`."""
    args = typing.get_args(kind)
    if type(kind) is types.UnionType or typing.get_origin(kind) is typing.Union:
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        (kind,) = [a for a in args if a is not type(None)]
    try:
        if typing.get_origin(kind) is tuple:
            return tuple(
                _parse(part.strip(), typing.get_args(kind)[0], key) for part in text.split(",")
            )
        if kind is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            return int(float(text)) if float(text).is_integer() else int(text)
        return kind(text)
    except ValueError:
        raise ConfigError(f"--config.{key}: cannot read {text!r} as {kind.__name__}") from None


def _replace(config: Any, keys: list[str], value: str, full: str) -> Any:
    names = {f.name for f in dataclasses.fields(config)}
    if keys[0] not in names:
        raise ConfigError(
            f"unknown config key {full!r}; {type(config).__name__} has {sorted(names)}"
        )
    current = getattr(config, keys[0])
    if len(keys) == 1:
        if dataclasses.is_dataclass(current):
            raise ConfigError(f"{full!r} is a section; override one of its fields")
        new = _parse(value, _field_types(type(config))[keys[0]], full)
    elif dataclasses.is_dataclass(current):
        new = _replace(current, keys[1:], value, full)
    else:
        raise ConfigError(f"unknown config key {full!r}: {keys[0]!r} has no fields")
    return dataclasses.replace(config, **{keys[0]: new})


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply `--config.a.b=value` (or `config.a.b=value`) overrides in order."""
    for item in overrides:
        text = item.removeprefix("--")
        if not text.startswith("config.") or "=" not in text:
            raise ConfigError(f"overrides look like --config.optim.lr=1e-4, got {item!r}")
        key, value = text[len("config.") :].split("=", 1)
        config = _replace(config, key.split("."), value, key)
    return config


def to_json(config: TrainConfig) -> str:
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def from_dict(cls: type, values: dict) -> Any:
    """Rebuild a config dataclass from `dataclasses.asdict` output (unknown keys are an error)."""
    hints = _field_types(cls)
    unknown = set(values) - set(hints)
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)} for {cls.__name__}")
    kwargs = {
        k: from_dict(hints[k], v)
        if dataclasses.is_dataclass(hints[k])
        else tuple(v)
        if isinstance(v, list)
        else v
        for k, v in values.items()
    }
    return cls(**kwargs)


# ------------------------------------------------------------------------------- validation


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def _is_tuple(kind: Any) -> bool:
    """`tuple[...]` or `tuple[...] | None`."""
    return typing.get_origin(kind) is tuple or any(
        typing.get_origin(a) is tuple for a in typing.get_args(kind)
    )


def _check_types(config: Any, prefix: str = "") -> None:
    for name, kind in _field_types(type(config)).items():
        value = getattr(config, name)
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, kind):
                raise ConfigError(f"config.{key} must be a {kind.__name__}")
            _check_types(value, f"{key}.")
            continue
        if _is_tuple(kind):
            if value is not None and not (
                isinstance(value, tuple) and all(isinstance(v, int) for v in value)
            ):
                raise ConfigError(f"config.{key} must be a tuple of ints, got {value!r}")
            continue
        allowed = typing.get_args(kind) if typing.get_args(kind) else (kind,)
        if kind is float:
            allowed = (float, int)
        elif float in allowed:
            allowed = (*allowed, int)
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if not ok:
            raise ConfigError(f"config.{key} must be {kind}, got {value!r}")


def validate(config: TrainConfig, num_devices: int, num_processes: int = 1) -> None:
    """Raise ConfigError for any impossible value, before compute starts."""
    _check_types(config)
    flat = _flatten(config)
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(f"config.{key} = {flat[key]!r}; expected one of {list(choices)}")
    positive = [
        "steps",
        "data.batch_size",
        "model.width",
        "model.depth",
        "optim.lr",
        "optim.accumulate",
        "checkpoint.every",
        "checkpoint.keep",
        "mesh.fsdp",
        "data.prefetch",
        "data.sequence_length",
        "log.num_samples",
        "log.eval_steps",
    ]
    for key in positive:
        if not flat[key] > 0:
            raise ConfigError(f"config.{key} must be positive, got {flat[key]}")
    for key in [
        "optim.warmup_steps",
        "optim.weight_decay",
        "log.every",
        "log.sample_every",
        "log.eval_every",
        "data.workers",
        "optim.end_lr_factor",
        "flow.sigma_min",
        "flow.coupling_reg",
    ]:
        if flat[key] < 0:
            raise ConfigError(f"config.{key} must be >= 0, got {flat[key]}")
    if not 0.0 <= config.optim.ema_decay < 1.0:
        raise ConfigError(f"config.optim.ema_decay must be in [0, 1), got {config.optim.ema_decay}")
    if config.optim.grad_clip is not None and config.optim.grad_clip <= 0:
        raise ConfigError(
            f"config.optim.grad_clip must be positive or None, got {config.optim.grad_clip}"
        )
    if not 0.0 <= config.flow.time_eps < 0.5:
        raise ConfigError(f"config.flow.time_eps must be in [0, 0.5), got {config.flow.time_eps}")
    mesh = config.mesh
    if num_devices % mesh.fsdp:
        raise ConfigError(
            f"config.mesh.fsdp = {mesh.fsdp} does not divide the {num_devices} devices"
        )
    data_axis = num_devices // mesh.fsdp if mesh.data == -1 else mesh.data
    if data_axis * mesh.fsdp != num_devices:
        raise ConfigError(
            f"config.mesh data x fsdp = {data_axis} x {mesh.fsdp} must equal the "
            f"{num_devices} devices"
        )
    per_step = num_devices * config.optim.accumulate
    if config.data.batch_size % per_step:
        raise ConfigError(
            f"config.data.batch_size = {config.data.batch_size} must be divisible by devices x "
            f"accumulate = {num_devices} x {config.optim.accumulate}"
        )
    if config.data.batch_size % num_processes:
        raise ConfigError(
            f"config.data.batch_size must be divisible by the {num_processes} processes"
        )
    if config.data.kind == "toy2d":
        from flowjax.data import DISTRIBUTIONS

        if config.data.distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"config.data.distribution = {config.data.distribution!r}; expected one of "
                f"{sorted(DISTRIBUTIONS)}"
            )
    elif config.data.kind == "tfds" and not config.data.name:
        raise ConfigError("config.data.name is required for data.kind = 'tfds'")
    if config.data.kind != "toy2d":
        if not config.data.path:
            raise ConfigError(f"config.data.path is required for data.kind = {config.data.kind!r}")
        if not config.data.path.startswith("gs://") and not Path(config.data.path).exists():
            raise ConfigError(f"config.data.path does not exist: {config.data.path}")
    if config.flow.coupling == "sinkhorn" and not config.flow.coupling_reg > 0:
        raise ConfigError("config.flow.coupling = 'sinkhorn' needs config.flow.coupling_reg > 0")
    if not 0.0 <= config.flow.label_dropout < 1.0:
        raise ConfigError(
            f"config.flow.label_dropout must be in [0, 1), got {config.flow.label_dropout}"
        )
    if config.flow.label_dropout and config.model.num_classes is None:
        raise ConfigError("config.flow.label_dropout needs a class-conditional model.num_classes")
    if config.flow.coupling_within and config.data.kind in ("toy2d", "text"):
        raise ConfigError(
            f"config.flow.coupling_within needs labelled data; data.kind = {config.data.kind!r} "
            "has no labels"
        )
    if config.checkpoint.best_metric is not None and not config.log.eval_every:
        raise ConfigError("config.checkpoint.best_metric needs config.log.eval_every > 0")

"""Training configuration: frozen sections, command-line overrides and validation.

A config file is a Python file defining `get_config() -> TrainConfig`. Any field can be
overridden from the command line as `--config.optim.lr=1e-4`. Two sections belong to what they
configure: `flow` is the section of the chosen method family (`--config.family=cfm`: its
`Config` dataclass, e.g. `flowjax.families.CFMConfig`), and `model` holds `kind`, an optional
`preset` and the model constructor's own keyword arguments (`--config.model.num_res_blocks=3`).
`validate` checks the whole config before any compute and raises `ConfigError` with one
readable message; the allowed values of every choice come from the registries that implement
them.
"""

import dataclasses
import importlib.util
import inspect
import json
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from flowjax import families
from flowjax.families.cfm import CFMConfig


class ConfigError(ValueError):
    """A user mistake in a config or its overrides (reported as one line by the CLI)."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training batches come from.

    kind: "toy2d" (generated on the device from `distribution`; with `bins`, each coordinate
    of [-4, 4) quantized to `bins` integer tokens by `flowjax.data.quantize`), "mnist" (IDX
    files under `path`), "cifar10" (a folder or tarball of `<split>/<class>/<image>` under
    `path`; `cache` decodes it once into memory), "text" (a text file of characters, or the
    one file of a `.zip`: `sequence_length` windows every `stride` characters in training,
    default `sequence_length`, without overlap on the held-out splits; `split_fractions`
    where train (and valid) end, `flowjax.data.records.split_bounds`), "table" (the table
    `name` of categorical columns under `path`, `<name>.<split>.data` as DEBD ships them),
    "earth" (a CSV of latitude, longitude events: points of S^2), "torsions" (RNA's
    `rna.tsv`: points of T^7), "angles" (a `.npy` `[N, D]` of radians: points of T^D),
    "rotations" (a `.npy` of rotation matrices or quaternions:
    points of SO(3)) and "bumpy_sphere" (a `.npy` `[N, 3]` of points of the generated mesh,
    `flowjax.manifolds.mesh`), split 80/10/10 by `seed` and evaluated on the valid split,
    "tfds" (the prepared dataset `name` in the TFDS data dir `path`).
    Images become float32 in [-1, 1], with uniform dequantization and optional random
    horizontal flips; `augment` names an augmentation pipeline of `flowjax.data.augment`
    (`AUGMENTS`: "edm", EDM's CIFAR-10 setting, 9 labels; "edm_upright", py-meanflow's and
    SoFlow's, 6), applied after the flips with overall probability `augment_p` (EDM's CIFAR-10
    0.12), its labels fed to the network (`model.augment_dim` must match); `workers` > 0
    decodes in that many processes, `prefetch` batches ahead.
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
    augment: str | None = None
    augment_p: float = 0.12
    cache: bool = False
    workers: int = 0
    prefetch: int = 2
    sequence_length: int = 128
    stride: int | None = None
    split_fractions: tuple[float, ...] = (0.9,)
    bins: int | None = None


def _model_class(kind: str) -> type:
    from flowjax.models import MODELS

    if kind not in MODELS:
        raise ConfigError(f"config.model.kind = {kind!r}; expected one of {sorted(MODELS)}")
    return MODELS[kind]


# Constructor arguments that the training system supplies itself, never from the config:
# seeded RNGs, and the dtypes (`precision` runs the network on bf16 copies of its parameters).
BUILDER_ARGUMENTS = ("rngs", "dtype", "param_dtype")


def model_arguments(kind: str) -> dict[str, inspect.Parameter]:
    """The configurable keyword-only arguments of the model class `kind`, with type hints."""
    cls = _model_class(kind)
    hints = typing.get_type_hints(cls.__init__)
    return {
        name: p.replace(annotation=hints[name])
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in BUILDER_ARGUMENTS
    }


@dataclasses.dataclass(frozen=True, init=False)
class ModelConfig:
    """The network: `kind` (a name in `flowjax.models.MODELS`), an optional `preset` of that
    class (`MODELS[kind].PRESETS`) and keyword arguments of its constructor under their own
    names (`args`, sorted `(name, value)` pairs). An argument not given takes the preset's
    value, else the constructor's default; the event shape comes from the data.

        ModelConfig("unet", preset="mnist", num_res_blocks=2).num_res_blocks == 2
    """

    kind: str
    preset: str | None
    args: tuple[tuple[str, Any], ...]

    def __init__(self, kind: str = "mlp", preset: str | None = None, **args: Any) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "preset", preset)
        object.__setattr__(self, "args", tuple(sorted(args.items())))

    def __getattr__(self, name: str) -> Any:
        """A constructor argument given here or by the preset (`config.model.num_classes`)."""
        if name.startswith("__") or name in ("kind", "preset", "args"):
            raise AttributeError(name)
        try:
            return self.arguments()[name]
        except (KeyError, ConfigError):
            raise AttributeError(f"ModelConfig({self.kind!r}) does not set {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "preset": self.preset, **dict(self.args)}

    def replace(self, **changes: Any) -> "ModelConfig":
        return ModelConfig(**{**self.to_dict(), **changes})

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments the model is built with: the preset's, then `args`."""
        presets = _model_class(self.kind).PRESETS
        return {**(presets[self.preset] if self.preset else {}), **dict(self.args)}


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """`name`: AdamW or RAdam, with an optional linear warm-up (from `warmup_init` to `lr` over
    `warmup_steps`; py-meanflow's starts at 1e-8) then a constant, cosine or polynomial decay
    to `lr * end_lr_factor`; global-norm clipping; gradient accumulation;
    EMA with warm-up, updated after every `ema_every`-th step with the decay to the power
    `ema_every` (py-meanflow's and SoFlow's CIFAR-10 EMA: 0.9999^16 every 16 steps; 1: every
    step). `build.ema_decay` gives the decay of each step."""

    name: str = "adamw"
    lr: float = 1e-3
    schedule: str = "constant"
    warmup_steps: int = 0
    warmup_init: float = 0.0
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
    ema_every: int = 1


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
class ProfileConfig:
    """Trace `steps` steps from step `start` (1-based) with `jax.profiler` into the run's
    `tensorboard/` (TensorBoard's profile plugin or XProf reads it); `steps = 0`: off."""

    start: int = 1
    steps: int = 0


@dataclasses.dataclass(frozen=True)
class LogConfig:
    """Logging and evaluation periods (steps); 0 disables. Samples are drawn with the family's
    sampler: method `eval_method` (one of the family's `sampler_methods`; None: its first, e.g.
    dopri5 for CFM; `eval_steps` steps for fixed-step methods); those of a class-conditional
    model cycle through the classes with classifier-free guidance scale `guidance` (1: the
    conditional field, 0: unconditional)."""

    every: int = 100
    sample_every: int = 0
    eval_every: int = 0
    num_samples: int = 4096
    eval_method: str | None = None
    eval_steps: int = 100
    guidance: float = 1.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. `flow` is the section of `family` (a name in
    `flowjax.families.FAMILIES` or an import path `"package.module:Class"`). A step whose
    loss, gradients or update is not finite is skipped (its update not applied); `nonfinite =
    "skip"` tolerates `nonfinite_budget` consecutive skipped steps before the run stops with an
    error, "stop" none. `compilation_cache`: JAX's persistent cache of compiled programs in
    `<workdir>/compilation_cache` ("workdir"), in a directory, or "off". `steps_per_call`
    steps run in one compiled call (a `lax.scan`; logging, evaluation, checkpoints and the
    profile fall on call boundaries)."""

    seed: int = 0
    steps: int = 10_000
    precision: str = "float32"
    nonfinite: str = "skip"
    nonfinite_budget: int = 10
    distributed: str = "auto"
    compilation_cache: str = "workdir"
    steps_per_call: int = 1
    family: str = "cfm"
    data: DataConfig = DataConfig()
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    flow: Any = dataclasses.field(default_factory=CFMConfig)
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    profile: ProfileConfig = ProfileConfig()


def family_class(name: str) -> type:
    """The family registered as `name` (or at that import path)."""
    try:
        return families.get(name)
    except ValueError as error:
        raise ConfigError(f"config.family: {error}") from None


def _choices(config: TrainConfig) -> dict[str, Collection]:
    """The allowed values of every choice, read from the registries that implement them."""
    from flowjax.data import DISTRIBUTIONS
    from flowjax.data.augment import AUGMENTS
    from flowjax.train.build import OPTIMIZERS, SCHEDULES
    from flowjax.train.inputs import DATA_KINDS

    out = {
        "precision": ("float32", "bfloat16"),
        "nonfinite": ("skip", "stop"),
        "distributed": ("auto", "on", "off"),
        "data.kind": DATA_KINDS,
        "data.augment": (None, *AUGMENTS),
        "optim.name": OPTIMIZERS,
        "optim.schedule": SCHEDULES,
        "checkpoint.best_mode": ("min", "max"),
        "log.eval_method": (None, *family_class(config.family).sampler_methods),
    }
    if config.data.kind == "toy2d":
        out["data.distribution"] = DISTRIBUTIONS
    choices = getattr(config.flow, "choices", dict)()
    return out | {f"flow.{k}": v for k, v in choices.items()}


# ---------------------------------------------------------------------------------- loading


def load_config(path: str | Path) -> TrainConfig:
    """Run the config file at `path` and return its `get_config()`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"flowjax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"{path} must define get_config() -> TrainConfig")
        config = module.get_config()
    except ConfigError:
        raise
    except Exception as error:  # the user's file: report where, in one line
        line = getattr(error, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: {type(error).__name__}: {error}") from None
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not TrainConfig")
    return config


def _is_section(value: Any) -> bool:
    return dataclasses.is_dataclass(value) or isinstance(value, ModelConfig)


def _parse(text: str, kind: Any, key: str) -> Any:
    """Parse an override value for a field of type `kind` (unions try each member in turn)."""
    args = typing.get_args(kind)
    if type(kind) is types.UnionType or typing.get_origin(kind) is typing.Union:
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        members = [a for a in args if a is not type(None)]
        for member in members[:-1]:
            try:
                return _parse(text, member, key)
            except ConfigError:
                pass
        kind = members[-1]
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
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"--config.{key}: cannot read {text!r} as {name}") from None


def _replace_model(model: ModelConfig, key: str, value: str, full: str) -> ModelConfig:
    """A new kind starts the section afresh; other keys are the constructor's arguments."""
    if key == "kind":
        return model if value == model.kind else ModelConfig(value)
    if key == "preset":
        return model.replace(preset=_parse(value, str | None, full))
    arguments = model_arguments(model.kind)
    if key not in arguments:
        raise ConfigError(
            f"unknown config key {full!r}; {_model_class(model.kind).__name__} takes "
            f"{sorted(arguments)} (and kind, preset)"
        )
    return model.replace(**{key: _parse(value, arguments[key].annotation, full)})


def _replace(section: Any, keys: list[str], value: str, full: str) -> Any:
    if isinstance(section, ModelConfig):
        if len(keys) > 1:
            raise ConfigError(f"unknown config key {full!r}: model arguments have no fields")
        return _replace_model(section, keys[0], value, full)
    names = {f.name for f in dataclasses.fields(section)}
    if keys[0] not in names:
        raise ConfigError(
            f"unknown config key {full!r}; {type(section).__name__} has {sorted(names)}"
        )
    current = getattr(section, keys[0])
    if len(keys) == 1:
        if _is_section(current):
            raise ConfigError(f"{full!r} is a section; override one of its fields")
        new = _parse(value, typing.get_type_hints(type(section))[keys[0]], full)
    elif _is_section(current):
        new = _replace(current, keys[1:], value, full)
    else:
        raise ConfigError(f"unknown config key {full!r}: {keys[0]!r} has no fields")
    if isinstance(section, TrainConfig) and keys == ["family"] and new != section.family:
        return dataclasses.replace(section, family=new, flow=family_class(new).Config())
    return dataclasses.replace(section, **{keys[0]: new})


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply `--config.a.b=value` (or `config.a.b=value`) overrides in order; a change of
    `family` or `model.kind` starts that section afresh (the family's defaults; no arguments)."""
    for item in overrides:
        text = item.removeprefix("--")
        if not text.startswith("config.") or "=" not in text:
            raise ConfigError(f"overrides look like --config.optim.lr=1e-4, got {item!r}")
        key, value = text[len("config.") :].split("=", 1)
        config = _replace(config, key.split("."), value, key)
    return config


def to_dict(section: Any) -> Any:
    """Nested plain dicts (JSON-ready) of a config or section."""
    if isinstance(section, ModelConfig):
        return section.to_dict()
    if dataclasses.is_dataclass(section):
        return {f.name: to_dict(getattr(section, f.name)) for f in dataclasses.fields(section)}
    return section


def to_json(config: TrainConfig) -> str:
    return json.dumps(to_dict(config), indent=2, sort_keys=True)


def _tuples(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def from_dict(cls: type, values: Mapping, known_only: bool = False) -> Any:
    """Rebuild a config section from `to_dict` output; unknown keys are an error, or, with
    `known_only` (a saved run's settings that the code no longer has), dropped."""
    if cls is ModelConfig:
        return ModelConfig(**{k: _tuples(v) for k, v in values.items()})
    hints = typing.get_type_hints(cls)
    unknown = set(values) - set(hints)
    if unknown and not known_only:
        raise ConfigError(f"unknown keys {sorted(unknown)} for {cls.__name__}")
    if cls is TrainConfig:
        hints["flow"] = family_class(values.get("family", "cfm")).Config
    kwargs = {
        k: from_dict(hints[k], v, known_only) if _is_section_type(hints[k]) else _tuples(v)
        for k, v in values.items()
        if k in hints
    }
    return cls(**kwargs)


def _is_section_type(kind: Any) -> bool:
    return kind is ModelConfig or dataclasses.is_dataclass(kind)


# ------------------------------------------------------------------------------- validation


def _flatten(section: Any, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in to_dict(section).items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _tuple_element(kind: Any) -> type | None:
    """`int` for `tuple[int, ...]` (alone or in a union), else None."""
    for member in (kind, *typing.get_args(kind)):
        if typing.get_origin(member) is tuple:
            return typing.get_args(member)[0]
    return None


def _check_value(value: Any, kind: Any, key: str) -> None:
    """ConfigError unless `value` is of the annotated type `kind`."""
    element = _tuple_element(kind)
    if element is not None and isinstance(value, tuple):
        numbers = (int, float) if element is float else (element,)
        if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"config.{key} must be a tuple of {element.__name__}s, got {value!r}")
        return
    allowed = typing.get_args(kind) if typing.get_args(kind) else (kind,)
    allowed = tuple(typing.get_origin(a) or a for a in allowed)
    if float in allowed:
        allowed = (*allowed, int)
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        raise ConfigError(f"config.{key} must be {kind}, got {value!r}")


def _check_types(section: Any, prefix: str = "") -> None:
    if isinstance(section, ModelConfig):
        presets = _model_class(section.kind).PRESETS
        if section.preset is not None and section.preset not in presets:
            raise ConfigError(
                f"config.{prefix}preset = {section.preset!r}; expected one of {sorted(presets)}"
            )
        arguments = model_arguments(section.kind)
        for name, value in section.args:
            if name not in arguments:
                raise ConfigError(
                    f"config.{prefix}{name}: {_model_class(section.kind).__name__} takes no "
                    f"argument {name!r}; it takes {sorted(arguments)}"
                )
            _check_value(value, arguments[name].annotation, f"{prefix}{name}")
        return
    for name, kind in typing.get_type_hints(type(section)).items():
        value = getattr(section, name)
        if _is_section_type(kind) or _is_section(value):
            expected = kind if _is_section_type(kind) else None
            if expected is not None and not isinstance(value, expected):
                raise ConfigError(f"config.{prefix}{name} must be a {expected.__name__}")
            _check_types(value, f"{prefix}{name}.")
        else:
            _check_value(value, kind, f"{prefix}{name}")


def _check_augment(config: TrainConfig) -> None:
    """`data.augment` transforms images and feeds its labels to a network that takes as many
    (`augment_dim`); `data.augment_p` is a probability."""
    from flowjax.data.augment import augment_pipe
    from flowjax.train.inputs import DATA_KINDS

    data = config.data
    if not 0.0 <= data.augment_p <= 1.0:
        raise ConfigError(f"config.data.augment_p must be in [0, 1], got {data.augment_p}")
    if data.augment is None:
        return
    if DATA_KINDS[data.kind] is None:
        raise ConfigError(f"config.data.augment transforms images; {data.kind} data has none")
    arguments = model_arguments(config.model.kind)
    if "augment_dim" not in arguments:
        raise ConfigError(
            f"config.data.augment = {data.augment!r} feeds augmentation labels to the network, "
            f"but {_model_class(config.model.kind).__name__} takes none (no augment_dim; "
            "song_unet does)"
        )
    dim = config.model.arguments().get("augment_dim", arguments["augment_dim"].default)
    labels = augment_pipe(data.augment, data.augment_p).num_labels
    if dim != labels:
        raise ConfigError(
            f"config.data.augment = {data.augment!r} gives {labels} augmentation labels, but "
            f"config.model.augment_dim = {dim}: set --config.model.augment_dim={labels}"
        )


def validate(
    config: TrainConfig,
    num_devices: int,
    num_processes: int = 1,
    *,
    batch: bool = True,
    data: bool = True,
) -> None:
    """Raise ConfigError for any impossible value, before compute starts. `batch=False`
    skips the split of the batch over these devices, `data=False` the data on disk (a trained
    run restored to sample or evaluate it needs neither; a step compiled ahead of time needs
    the split only)."""
    family = family_class(config.family)
    if not isinstance(config.flow, family.Config):
        raise ConfigError(
            f"config.flow must be a {family.Config.__name__} for family {config.family!r}, got "
            f"{type(config.flow).__name__}"
        )
    _check_types(config)
    flat = _flatten(config)
    for key, choices in _choices(config).items():
        if flat[key] not in choices:
            raise ConfigError(f"config.{key} = {flat[key]!r}; expected one of {list(choices)}")
    try:
        getattr(config.flow, "check", lambda: None)()
    except ValueError as error:
        raise ConfigError(f"config.flow.{error}") from None
    positive = [
        "steps",
        "steps_per_call",
        "profile.start",
        "data.batch_size",
        "optim.lr",
        "optim.accumulate",
        "optim.ema_every",
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
        if flat[key] == float("inf"):
            raise ConfigError(f"config.{key} must be finite, got {flat[key]}")
    for key in [
        "nonfinite_budget",
        "profile.steps",
        "optim.warmup_steps",
        "optim.warmup_init",
        "optim.weight_decay",
        "log.every",
        "log.sample_every",
        "log.eval_every",
        "data.workers",
        "optim.end_lr_factor",
    ]:
        if flat[key] < 0:
            raise ConfigError(f"config.{key} must be >= 0, got {flat[key]}")
    if flat["data.bins"] is not None and flat["data.bins"] < 2:
        raise ConfigError(f"config.data.bins must be at least 2, got {flat['data.bins']}")
    for key in ("optim.b1", "optim.b2"):
        if not 0.0 <= flat[key] < 1.0:
            raise ConfigError(f"config.{key} must be in [0, 1), got {flat[key]}")
    if not config.optim.eps > 0:
        raise ConfigError(f"config.optim.eps must be positive, got {config.optim.eps}")
    if not 0.0 <= config.optim.ema_decay < 1.0:
        raise ConfigError(f"config.optim.ema_decay must be in [0, 1), got {config.optim.ema_decay}")
    _check_augment(config)
    if not config.compilation_cache:
        raise ConfigError("config.compilation_cache must name a directory, or be workdir or off")
    k = config.steps_per_call
    for key in ("steps", "log.every", "log.sample_every", "log.eval_every", "checkpoint.every"):
        if flat[key] % k:
            raise ConfigError(
                f"config.{key} = {flat[key]} must be a multiple of steps_per_call = {k}"
            )
    if config.profile.steps and ((config.profile.start - 1) % k or config.profile.steps % k):
        raise ConfigError(
            f"config.profile.start - 1 and profile.steps must be multiples of steps_per_call = {k}"
        )
    if config.optim.grad_clip is not None and config.optim.grad_clip <= 0:
        raise ConfigError(
            f"config.optim.grad_clip must be positive or None, got {config.optim.grad_clip}"
        )
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
    if config.checkpoint.best_metric is not None and not config.log.eval_every:
        raise ConfigError("config.checkpoint.best_metric needs config.log.eval_every > 0")
    per_step = num_devices * config.optim.accumulate
    if batch and config.data.batch_size % per_step:
        raise ConfigError(
            f"config.data.batch_size = {config.data.batch_size} must be divisible by devices x "
            f"accumulate = {num_devices} x {config.optim.accumulate}"
        )
    if batch and config.data.batch_size % num_processes:
        raise ConfigError(
            f"config.data.batch_size must be divisible by the {num_processes} processes"
        )
    if config.data.kind == "tfds" and not config.data.name:
        raise ConfigError("config.data.name is required for data.kind = 'tfds'")
    if config.data.kind != "toy2d" and data:
        if not config.data.path:
            raise ConfigError(f"config.data.path is required for data.kind = {config.data.kind!r}")
        if not config.data.path.startswith("gs://") and not Path(config.data.path).exists():
            raise ConfigError(f"config.data.path does not exist: {config.data.path}")

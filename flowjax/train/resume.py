"""Resuming a run: what may change between invocations, and the record of what did.

A workdir's `config.json` is the config its run started with and is never rewritten;
`history.jsonl` records each accepted change as `{"step", "time", "changes": {key: [old,
new]}}`. Keys are the flattened config keys (`optim.lr`). On resume, a change of what the
checkpoint holds (`STRUCTURAL`: model, family and its section, seed, data) is refused; a
change of a hyperparameter (`steps`, `optim.*`, `precision`) is refused unless allowed, then
recorded; `OPERATIONAL` settings (devices, logging, checkpoint cadence, data location and
workers, the non-finite policy) may change freely.
"""

import json
import time
from pathlib import Path
from typing import Any

import jax
from etils import epath
from jax.experimental import multihost_utils

from flowjax.train.config import ConfigError, TrainConfig, from_dict, to_json

STRUCTURAL = ("seed", "family", "model.", "flow.", "data.", "optim.grad_clip")
OPERATIONAL = (
    "mesh.",
    "distributed",
    "log.",
    "checkpoint.",
    "data.workers",
    "data.prefetch",
    "data.cache",
    "data.path",
    "nonfinite",
    "nonfinite_budget",
    "profile.",
    "compilation_cache",
    "steps_per_call",
)
HISTORY = "history.jsonl"


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _is(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def _listed(changes: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())


def changes(config: TrainConfig, saved: dict, workdir: Path, allowed: bool) -> dict:
    """The changes from the checkpoint's config `saved` (`to_dict` form) to `config` that are
    not operational, `{key: (old, new)}`; a ConfigError for any structural change, and for any
    other one unless `allowed`. A setting that `saved` lacks (added since the run started)
    compares as its default, the behaviour the run had; one that the code no longer has (outside
    the free-form `model` section) is dropped, as it can no longer take effect."""
    defaults = TrainConfig(family=config.family, flow=type(config.flow)())
    new = _flat(json.loads(to_json(config)))  # both as JSON has them
    old = _flat(json.loads(to_json(defaults))) | _flat(saved)
    old = {k: v for k, v in old.items() if k in new or k.startswith("model.")}
    diff = {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and not _is(key, OPERATIONAL)
    }
    structural = {k: v for k, v in diff.items() if _is(k, STRUCTURAL)}
    if structural:
        raise ConfigError(
            f"{workdir} holds a run with another config ({_listed(structural)}); resume with the "
            "same settings or use a new --workdir"
        )
    if diff and not allowed:
        raise ConfigError(
            f"{workdir} holds a run with other hyperparameters ({_listed(diff)}); pass "
            f"--allow-changes to resume with them (recorded in {HISTORY}) or use a new --workdir"
        )
    return diff


def record(workdir: Path, step: int, diff: dict) -> None:
    """Append the accepted changes at `step` to the run's history."""
    row = {"step": step, "time": time.time(), "changes": {k: list(v) for k, v in diff.items()}}
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / HISTORY, "a") as f:
        f.write(json.dumps(row) + "\n")


def _set(tree: dict, key: str, value: Any) -> None:
    *sections, name = key.split(".")
    for section in sections:
        tree = tree[section]
    tree[name] = value


def effective_config(workdir: Path) -> TrainConfig:
    """The run's config now: `config.json` with the changes of `history.jsonl` applied (the
    settings the code no longer has dropped, as `changes` drops them)."""
    path = workdir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{workdir} holds no run (no config.json): train one first")
    tree = json.loads(path.read_text())
    history = workdir / HISTORY
    rows = history.read_text().splitlines() if history.is_file() else []
    for row in rows:
        for key, (_, new) in json.loads(row)["changes"].items():
            _set(tree, key, new)
    return from_dict(TrainConfig, tree, known_only=True)


RUN_FILES = ("checkpoints", "checkpoints.damaged", "metrics.jsonl", "tensorboard", "samples")
RUN_FILES += ("config.json", "data_spec.json", HISTORY)


def set_aside_run(workdir: Path, checkpoints: str | None = None) -> Path:
    """Move a run's files (and its checkpoint directory, if elsewhere) into
    `<workdir>/restarted-<time>/`, so that a new run starts in `workdir`; nothing is deleted."""
    target = workdir / f"restarted-{int(time.time())}"
    if jax.process_index() == 0:
        for name in RUN_FILES:
            if (workdir / name).exists():
                target.mkdir(parents=True, exist_ok=True)
                (workdir / name).rename(target / name)
        if checkpoints is not None and epath.Path(checkpoints).exists():
            epath.Path(checkpoints).rename(f"{checkpoints}.{target.name}")
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("flowjax_restart")
    return target

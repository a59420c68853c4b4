"""Running the CLI in subprocesses (with their own device counts) and reading runs back."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

REPO = Path(__file__).parents[2]
TOY = REPO / "flowjax" / "configs" / "toy2d.py"
SMALL = [
    "--config.data.batch_size=64",
    "--config.model.width=32",
    "--config.model.depth=2",
    "--config.log.every=5",
    "--config.log.sample_every=0",
    "--config.log.eval_every=0",
    "--config.checkpoint.every=5",
    "--config.optim.schedule=constant",
]


def env(devices: int = 1, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": str(REPO),
        "JAX_PLATFORMS": "cpu",
        **extra,
    }


def train_command(workdir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flowjax.cli",
        "train",
        str(TOY),
        "--workdir",
        str(workdir),
        *SMALL,
        *overrides,
    ]


def run_train(
    workdir: Path, *overrides: str, devices: int = 1, timeout: int = 300
) -> subprocess.CompletedProcess:
    out = subprocess.run(
        train_command(workdir, *overrides),
        env=env(devices),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


CLI = [sys.executable, "-m", "flowjax.cli"]


def cli_report(*args: str, timeout: int = 300) -> dict:
    """Run `flowjax ARGS` in a subprocess (one device) and return its JSON report line."""
    out = subprocess.run([*CLI, *args], env=env(1), capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def restore(workdir: Path, step: int | None = None) -> tuple[int, dict]:
    """(step, numpy params) of a run's checkpoint, restored in this process on one device."""
    from flowjax.train.loop import setup
    from flowjax.train.resume import effective_config

    parts = setup(effective_config(workdir), workdir, read_only=True)
    if step is not None:
        found = parts.checkpointer.restore(jax.eval_shape(lambda: parts.state), step=step)
        state = found[1]
    else:
        state = parts.state
    parts.checkpointer.close()
    return int(state.step), jax.tree.map(np.asarray, state.params)


def max_difference(a: dict, b: dict) -> float:
    return max(
        float(np.max(np.abs(x - y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def metrics(workdir: Path) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]

"""Multi-process start-up: `jax.distributed.initialize()` only when a launcher asks for it."""

import os

import jax

# Set by launchers (the tpu/ scripts, SLURM, our tests) for multi-process runs on one or many hosts.
COORDINATOR_VARS = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")


def wants_distributed(mode: str) -> bool:
    """ "on": always; "off": never; "auto": when the environment names a coordinator or the
    host is a multi-host TPU VM (whose runtime supplies the cluster description)."""
    if mode in ("on", "off"):
        return mode == "on"
    if any(os.environ.get(v) for v in COORDINATOR_VARS):
        return True
    return bool(os.environ.get("TPU_WORKER_HOSTNAMES", "").count(","))


def maybe_initialize(mode: str) -> None:
    """Join the cluster once, from the environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES
    and JAX_PROCESS_ID when set (as on CPU or GPU clusters), else JAX's cluster auto-detection
    (TPU pods, SLURM)."""
    if not wants_distributed(mode) or jax.distributed.is_initialized():
        return
    address = next((os.environ[v] for v in COORDINATOR_VARS if os.environ.get(v)), None)
    if address is None:
        jax.distributed.initialize()
        return
    jax.distributed.initialize(
        coordinator_address=address,
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]),
        coordinator_bind_address=os.environ.get("JAX_COORDINATOR_BIND_ADDRESS", address),
    )

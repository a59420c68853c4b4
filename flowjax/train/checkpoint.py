"""Orbax checkpoints of (train state, data-iterator state, config), with damage fallback.

Each step directory holds three items: "state" (the TrainState, restored onto the current mesh
through an abstract target, so a checkpoint written on 8 devices restores on 1 and back),
"data" (the iterator's state) and "meta" (the config, plus per-leaf checksums of the state).
Orbax lists a step by its directory name only and restores flipped bytes silently, so a restore
is accepted only if it loads and its checksums match; otherwise the step is moved aside to
`<directory>.damaged/` (kept for inspection, out of the way of new saves) and the previous step
is tried, with a warning.
"""

import errno
import os
import sys
import time
import traceback
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint import checkpoint_managers

from flowjax.train.config import CheckpointConfig

CHECKSUM_RTOL = 1e-4  # sums over a different device layout round differently


@jax.jit
def checksums(state: Any) -> list[jax.Array]:
    """Per-leaf (sum, sum of squares) in float32: cheap, computed where the shards live."""
    return [
        jnp.stack([jnp.sum(a.astype(jnp.float32)), jnp.sum(jnp.square(a.astype(jnp.float32)))])
        for a in jax.tree.leaves(state)
    ]


def _host_checksums(state: Any) -> list[list[float]]:
    return [np.asarray(c).tolist() for c in checksums(state)]


class DamagedCheckpointError(Exception):
    """A step's items loaded, but not the values that were saved."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission, ...)."""

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


OS_CAUSES = {  # the messages of the faults tensorstore reports inside its errors
    errno.ENOSPC: "No space left on device",
    errno.EACCES: "Permission denied",
    errno.EROFS: "Read-only file system",
    errno.EDQUOT: "Disk quota exceeded",
}


class Checkpointer:
    """Save and restore through one `ocp.CheckpointManager` under `directory`. Without a
    `data_handler` it is read-only: it restores the state and meta items only (to sample or
    evaluate a run without its data), and never writes, cleans up or moves a file (a damaged
    step is skipped with a warning, left where it is)."""

    def __init__(
        self, directory: str | epath.Path, config: CheckpointConfig, data_handler: Any = None
    ) -> None:
        self.read_only = data_handler is None
        _quiet_abandoned_reads()  # a failed async save reports its leftovers before we see it
        self.damaged: list[str] = []  # damaged steps found: where they are now
        policies = [checkpoint_managers.LatestN(n=config.keep)]
        best = {}
        if config.best_metric is not None:
            metric = config.best_metric
            policies.append(
                checkpoint_managers.BestN(
                    get_metric_fn=lambda m: m[metric], reverse=config.best_mode == "min", n=1
                )
            )
            best = dict(best_fn=lambda m: m[metric], best_mode=config.best_mode)
        options = ocp.CheckpointManagerOptions(
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=True,
            cleanup_tmp_directories=not self.read_only,
            read_only=self.read_only,
            create=not self.read_only,
            **best,
        )
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        if data_handler is not None:
            handlers["data"] = data_handler
        directory = epath.Path(directory)  # local paths and gs:// buckets alike
        self.directory = directory if "://" in str(directory) else directory.absolute()
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=handlers
        )

    def save(
        self, step: int, state: Any, data_args: Any, meta: dict, metrics: dict | None = None
    ) -> None:
        """Start an asynchronous save of `step` (returns at once; `wait` blocks). A state with
        a non-finite value is refused."""
        sums = _host_checksums(state)
        if not np.all(np.isfinite(sums)):
            raise ValueError(f"refusing to save a non-finite state at step {step}")
        meta = {**meta, "step": step, "checksums": sums}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta), data=data_args
        )
        try:  # also reports a failure of the previous asynchronous save
            self._manager.save(step, args=args, metrics=metrics, force=True)
        except Exception as error:  # orbax / tensorstore raise ValueErrors for I/O faults
            raise self._write_error(error) from None

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def best_step(self) -> int | None:
        """The kept step with the best `best_metric` (the newest without one), None if none."""
        return self._manager.best_step()

    def read_meta(self, step: int) -> dict:
        """The "meta" item (config, checksums) of `step` alone."""
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def newest_meta(self) -> tuple[int, dict] | None:
        """`(step, meta)` of the newest step whose meta item reads (the newer ones are damaged
        and set aside), or None."""
        for s in self.all_steps()[::-1]:
            try:
                return s, self.read_meta(s)
            except Exception as error:  # orbax raises many types for damaged files
                self._damaged(s, error)
        return None

    def restore(
        self, abstract_state: Any, data_args: Any = None, step: int | None = None
    ) -> tuple[int, Any, dict, Any] | None:
        """The newest good checkpoint (or exactly `step`) as `(step, state, meta, data item)`
        (the data item None without `data_args`). None if there is no good checkpoint
        (`damaged` then lists the damaged steps and where they are)."""
        steps = [step] if step is not None else self.all_steps()[::-1]
        for s in steps:
            try:
                items = {"data": data_args} if data_args is not None else {}
                restored = self._manager.restore(
                    s,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_state),
                        meta=ocp.args.JsonRestore(),
                        **items,
                    ),
                )
                _verify(restored["state"], restored["meta"]["checksums"])
            except Exception as error:  # orbax raises many types for damaged files
                if step is not None:
                    raise DamagedCheckpointError(
                        f"checkpoint step {s} is damaged ({_summary(error)})"
                    ) from error
                self._damaged(s, error)
                continue
            data = restored["data"] if data_args is not None else None
            return s, restored["state"], restored["meta"], data
        return None

    def _damaged(self, step: int, error: Exception) -> None:
        """Warn about a damaged step and set it aside (a read-only checkpointer leaves it)."""
        where = "left in place" if self.read_only else f"moved to {self._set_aside(step)}"
        self.damaged.append(f"step {step} ({where})")
        warnings.warn(
            f"checkpoint step {step} in {self.directory} is damaged ({_summary(error)}); "
            f"{where}, falling back to the previous step",
            RuntimeWarning,
            stacklevel=3,
        )

    def _set_aside(self, step: int) -> epath.Path:
        """Move a damaged step out of the manager's directory (process 0 moves; all reload)."""
        target = epath.Path(f"{self.directory}.damaged") / f"{step}.{int(time.time())}"
        if jax.process_index() == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            (self.directory / str(step)).rename(target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"flowjax_set_aside_{step}")
        self._manager.reload()
        return target

    def wait(self) -> None:
        try:
            self._manager.wait_until_finished()
        except Exception as error:
            raise self._write_error(error) from None

    def _write_error(self, error: Exception) -> "CheckpointWriteError":
        """A failed save as one line: where, and the cause the OS gave."""
        text = str(error)
        code = next((n for n, c in OS_CAUSES.items() if c in text), None)
        cause = OS_CAUSES[code] if code is not None else text.splitlines()[0][:200]
        return CheckpointWriteError(
            code,
            f"{cause}: a checkpoint could not be written (the steps already saved are kept; "
            "rerun the same command once the fault is mended to resume)",
            str(self.directory),
        )

    def close(self) -> None:
        self._manager.close()


# What a failed restore or save leaves behind: tensorstore reads whose completion callbacks
# find their asyncio loop closed, and write coroutines finalized (never awaited) as the
# interpreter exits.
ABANDONED = ("Event loop is closed", "sys.meta_path is None, Python is likely shutting down")


def _quiet_abandoned_reads() -> None:
    """Python reports each abandoned I/O of a failed restore or save as an unraisable error
    (`ABANDONED`, or raised inside orbax's coroutines); they are harmless, and the failure
    itself is reported by `restore` or `save`: drop exactly those, pass every other one on."""
    previous = sys.unraisablehook
    if getattr(previous, "flowjax_quiet", False):
        return

    def hook(unraisable: Any) -> None:
        frames = traceback.extract_tb(unraisable.exc_traceback) if unraisable.exc_traceback else []
        from_orbax = any(f"{os.sep}orbax{os.sep}" in frame.filename for frame in frames)
        if not (from_orbax or str(unraisable.exc_value).startswith(ABANDONED)):
            previous(unraisable)

    hook.flowjax_quiet = True
    sys.unraisablehook = hook
    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)


def _summary(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"


def _verify(state: Any, saved: list[list[float]]) -> None:
    now = _host_checksums(state)
    if len(now) != len(saved) or not np.allclose(now, saved, rtol=CHECKSUM_RTOL, atol=1e-6):
        raise DamagedCheckpointError("restored values do not match the saved checksums")

"""Metric sinks: JSON lines and TensorBoard events, written by process 0 only."""

import json
import math
import time
from pathlib import Path

import jax

from flowjax.train.tensorboard import EventFileWriter


class MetricWriter:
    """`write(step, metrics)` appends to `<workdir>/metrics.jsonl` (strict JSON: a non-finite
    value is written as null) and to TensorBoard events in `<workdir>/tensorboard`; on processes
    other than 0 it does nothing. Resuming from the checkpoint at `step` (0: none) drops the rows
    an interrupted run logged after it (TensorBoard: a SessionLog START at `step + 1`)."""

    def __init__(self, workdir: str | Path, step: int = 0) -> None:
        self.active = jax.process_index() == 0
        if self.active:
            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            path = workdir / "metrics.jsonl"
            if path.is_file():
                rows = path.read_text().splitlines()
                kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= step]
                path.write_text("".join(f"{r}\n" for r in kept))
            self._jsonl = open(path, "a")  # noqa: SIM115  (closed in close())
            self._events = EventFileWriter(workdir / "tensorboard")
            self._events.session_start(step + 1)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        values = {k: float(v) for k, v in metrics.items()}
        row = {k: v if math.isfinite(v) else None for k, v in values.items()}
        line = json.dumps({"step": step, "time": time.time(), **row}, allow_nan=False)
        self._jsonl.write(line + "\n")
        self._jsonl.flush()
        self._events.scalars(step, values)

    def close(self) -> None:
        if self.active:
            self._jsonl.close()
            self._events.close()

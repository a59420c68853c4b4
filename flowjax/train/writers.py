"""Metric sinks: JSON lines and TensorBoard events, written by process 0 only."""

import json
import time
from pathlib import Path

import jax

from flowjax.train.tensorboard import EventFileWriter


class MetricWriter:
    """`write(step, metrics)` appends to `<workdir>/metrics.jsonl` and to TensorBoard events in
    `<workdir>/tensorboard`; on processes other than 0 it does nothing."""

    def __init__(self, workdir: str | Path) -> None:
        self.active = jax.process_index() == 0
        if self.active:
            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            self._jsonl = open(workdir / "metrics.jsonl", "a")  # noqa: SIM115  (closed in close())
            self._events = EventFileWriter(workdir / "tensorboard")

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        values = {k: float(v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._jsonl.flush()
        self._events.scalars(step, values)

    def close(self) -> None:
        if self.active:
            self._jsonl.close()
            self._events.close()

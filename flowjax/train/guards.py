"""What stops a run early, and how it says so: non-finite steps beyond a budget, and signals.

The training step reports `metrics["nonfinite"]`: 0 when the loss, the gradients and the
updated parameters are all finite, else the first that is not (1 loss, 2 gradients, 3
parameters); such a step's update is not applied. `NonFiniteWatch` reads those codes on the
host every few steps (one small transfer, no sync per step) and raises `NonFiniteError` once
more than `budget` consecutive steps were skipped (a divergence), or when a run ends while
skipping. `StopRequest` turns SIGTERM / SIGINT into a flag; the loop then saves and raises
`Preempted`, which the CLI reports with exit status `PREEMPTED` so that a scheduler can tell a
preempted run (rerun the same command to resume) from a finished or failed one.
"""

import signal
from typing import Any

import jax
import numpy as np

PREEMPTED = 75  # exit status of a run stopped by SIGTERM / SIGINT after saving (EX_TEMPFAIL)
QUANTITIES = {1: "the loss", 2: "the gradients", 3: "the updated parameters"}


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


class NonFiniteError(RuntimeError):
    """Too many skipped (non-finite) steps; no state after the skipping began was saved."""


class Preempted(RuntimeError):  # noqa: N818  (a stop, not an error of the run)
    """The run was stopped by a signal after saving its state at `step`."""

    def __init__(self, signal_name: str, step: int) -> None:
        super().__init__(
            f"stopped by {signal_name} at step {step}; saved, rerun the same command to resume"
        )
        self.step = step


class NonFiniteWatch:
    """Consecutive skipped steps, checked on the host. `budget` consecutive skips are
    tolerated (0: none, the "stop" policy)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.pending: list[tuple[int, jax.Array]] = []
        self.streak, self.start, self.cause = 0, 0, 0
        self.steps = 0

    def add(self, step: int, codes: jax.Array) -> None:
        """Record the codes of the steps from `step` on (a device scalar, or `[k]` for the `k`
        steps of one call; read at the next `check`)."""
        self.pending.append((step, codes))

    def check(self) -> None:
        """Read the pending codes; raise `NonFiniteError` past the budget."""
        read = jax.device_get([codes for _, codes in self.pending])
        steps = [
            (first + i, code)
            for (first, _), codes in zip(self.pending, read, strict=True)
            for i, code in enumerate(np.atleast_1d(codes))
        ]
        for step, code in steps:
            self.steps += 1
            if int(code) == 0:
                self.streak = 0
                continue
            if self.streak == 0:
                self.start, self.cause = step, int(code)
            self.streak += 1
            if self.streak > self.budget:
                self.pending = []
                raise NonFiniteError(
                    f"{_steps(self.streak)} skipped in a row from step {self.start}, where "
                    f"{QUANTITIES[self.cause]} first went non-finite (budget {self.budget}, "
                    f"config.nonfinite_budget); no state after step {self.start - 1} was saved"
                )
        self.pending = []

    def finish(self) -> None:
        """At the end of a run: ending while skipping (every step, or the last few) fails."""
        self.check()
        if self.streak:
            which = "all" if self.streak == self.steps else "the last"
            raise NonFiniteError(
                f"{which} {_steps(self.streak)} of this run were skipped, from step "
                f"{self.start}, where {QUANTITIES[self.cause]} first went non-finite; no state "
                f"after step {self.start - 1} was saved"
            )

    @property
    def skipping(self) -> bool:
        """Whether the last checked step was skipped (do not checkpoint then)."""
        return self.streak > 0


class StopRequest:
    """Turns SIGTERM / SIGINT into a flag that the loop reads between steps."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        self.signal = signal.Signals(signum).name
        print(f"\nreceived {self.signal}: finishing the step, saving, exiting", flush=True)

    def restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

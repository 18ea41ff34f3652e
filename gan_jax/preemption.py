"""Stopping a run cleanly when it is asked to: SIGTERM (preemption, `kill`, Slurm's time
limit) and SIGINT (Ctrl-C).

    with StopSignals() as stop:
        for step in ...:
            ...
            if stop.agreed(step):   # checkpoint, then leave the loop
                break

A signal only sets a flag; the training loop reads it at the next step boundary, saves a
checkpoint and returns, so the process exits 0 within a step and a checkpoint's time. A second
Ctrl-C interrupts at once (KeyboardInterrupt), for a run that is stuck. With several processes
every one must leave the loop at the same step, or the others would wait forever in the next
step's collectives, so they agree on the flag every `sync_every` steps.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    def __init__(self, sync_every: int = 50):
        self.requested: str | None = None  # the name of the first signal received
        self._sync_every = sync_every
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        # Python delivers signals to the main thread only; elsewhere (a training thread in a
        # notebook or a service) the caller keeps its own handling.
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now, without a checkpoint
        self.requested = self.requested or signal.Signals(signum).name

    def agreed(self, step: int) -> bool:
        """Whether to stop after `step`: at once with one process; with several, at the first
        multiple of `sync_every` after any of them was signalled."""
        if jax.process_count() == 1:
            return self.requested is not None
        if step % self._sync_every:
            return False
        flags = multihost_utils.process_allgather(np.int32(self.requested is not None))
        if flags.any() and self.requested is None:
            self.requested = "a signal to another process"
        return bool(flags.any())

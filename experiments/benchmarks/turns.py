"""Timing several implementations of the same work in turns, in one process.

A shared CPU's speed drifts by up to 2x within minutes, which runs made one after the other read
as a change of ratio. Taking turns (A, B, A, B, ...) slows every implementation alike, so the
ratio of their medians holds while the absolute times move.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Mapping, TypeVar

Key = TypeVar("Key", bound=Hashable)


def time_in_turns(runners: Mapping[Key, Callable[[], object]], repeats: int,
                  warmup: int = 1) -> dict[Key, list[float]]:
    """Seconds of each of `repeats` calls of every runner, the runners taking turns after
    `warmup` untimed calls each (compilation, autotuning, allocation). A runner must finish
    its work before it returns (block on its results)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[Key, list[float]] = {key: [] for key in runners}
    for _ in range(repeats):
        for key, run in runners.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    return times

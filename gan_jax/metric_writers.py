"""Where training metrics go: `metrics.jsonl` (one JSON object per line) and TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
from tensorboardX import SummaryWriter

from gan_jax.files import write_text_atomically

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
    def __init__(self, workdir: Path):
        self._jsonl = open(workdir / METRICS_FILE, "a", buffering=1)  # line-buffered
        self._tb = SummaryWriter(str(workdir / "tensorboard"))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        values = {k: float(v) for k, v in scalars.items()}
        self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
        for name, value in values.items():
            self._tb.add_scalar(name, value, step)

    def write_image(self, step: int, name: str, image: np.ndarray) -> None:
        self._tb.add_image(name, image, step, dataformats="HWC")

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()


def read_metrics(workdir: Path) -> list[dict]:
    """The rows of `metrics.jsonl`, skipping a last line cut short by a killed process."""
    path = Path(workdir) / METRICS_FILE
    return _parse_rows(path.read_text().splitlines()) if path.is_file() else []


def _parse_rows(lines: list[str]) -> list[dict]:
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def forget_metrics_after(workdir: Path, step: int) -> None:
    """Drops the rows of steps after `step` (and any torn line), for a run resumed or rolled
    back to `step`: the steps it runs again are then logged once, as if it had never stopped.
    TensorBoard event files are append-only; TensorBoard shows the rewritten steps' newer
    values."""
    path = Path(workdir) / METRICS_FILE
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [row for row in _parse_rows(lines) if row.get("step", 0) <= step]
    if len(kept) != len(lines):
        write_text_atomically(path, "".join(json.dumps(row) + "\n" for row in kept))

"""Where training metrics go: `metrics.jsonl` (one JSON object per line) and TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
from tensorboardX import SummaryWriter


class MetricWriter:
    def __init__(self, workdir: Path):
        self._jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)  # line-buffered
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

"""Soak: thousands of steps with a checkpoint every few hundred, through the CLI, and host
memory stays flat. Slow (minutes): `pytest -m slow tests/test_soak.py`."""

import os
import subprocess
import sys

import numpy as np
import pytest

from gan_jax.metric_writers import read_metrics
from tests.conftest import DCGAN_CONFIG, REPO, requires_fashion_mnist

STEPS, LOG_EVERY, CHECKPOINT_EVERY = 4000, 100, 300  # batch 16
# Measured on 2 CPU cores, jax 0.10.2, orbax-checkpoint 0.12.8 (experiments/results/README.md,
# "Host memory over a long run"): without checkpoints the loop's RSS grows 0.5-1 kB per step
# (allocator noise); checkpointing every 300 steps adds ~2 MiB per save, of which orbax and
# TensorStore account for ~0.12 MiB in isolation and glibc's per-thread arenas for most of the
# rest (MALLOC_ARENA_MAX=2 halves it). The bound allows that, and fails for a leak of the
# loop's own: a batch kept per step (12.5 kB here) adds 37 MiB over the 3000 measured steps.
WARMUP_STEPS, MAX_GROWTH_MIB = 1000, 32.0


@requires_fashion_mnist
@pytest.mark.slow
def test_host_memory_stays_flat_over_thousands_of_steps(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config", f"{DCGAN_CONFIG}:test",
         "--workdir", str(tmp_path), "--no-progress", f"train.total_kimg={STEPS * 0.016}",
         f"train.log_every_kimg={LOG_EVERY * 0.016}",
         f"train.checkpoint_every_kimg={CHECKPOINT_EVERY * 0.016}",
         "train.sample_every_kimg=16"], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=1800)
    assert result.returncode == 0, result.stderr
    rows = [r for r in read_metrics(tmp_path) if "host_rss_gib" in r]
    assert rows[-1]["step"] == STEPS
    checkpoints = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == [3600, 3900, 4000]  # keep-last-3 kept deleting the old ones
    steps = np.array([r["step"] for r in rows if r["step"] >= WARMUP_STEPS])
    rss_mib = np.array([r["host_rss_gib"] for r in rows if r["step"] >= WARMUP_STEPS]) * 1024
    growth = np.polyfit(steps, rss_mib, 1)[0] * (steps[-1] - steps[0])  # the trend, not noise
    assert growth < MAX_GROWTH_MIB, (
        f"host memory grew {growth:.1f} MiB over steps {steps[0]}-{steps[-1]}: "
        f"{dict(zip(steps.tolist(), rss_mib.round(1).tolist(), strict=True))}")

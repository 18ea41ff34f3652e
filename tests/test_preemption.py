"""Runs that are killed: SIGKILL at different moments (also mid-checkpoint), then the same
command again, must end bit for bit where an uninterrupted run ends; SIGTERM and SIGINT save a
checkpoint and exit 0 within seconds."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax.checkpoint import Checkpointer
from gan_jax.loop import train
from gan_jax.metric_writers import read_metrics
from gan_jax.train import build_gan, init_state
from tests.conftest import DCGAN_CONFIG, REPO, requires_fashion_mnist
from tests.helpers import final_state, leaves

pytestmark = requires_fashion_mnist

STEPS = 24  # batch 16: a log row every step, a checkpoint every 3 steps
RUN = ["--config", f"{DCGAN_CONFIG}:test", "--no-progress", f"train.total_kimg={STEPS * 0.016}",
       "train.log_every_kimg=0.016", "train.checkpoint_every_kimg=0.048",
       "train.sample_every_kimg=0.192"]
# Guards against a hung run only: no run here comes near it, however loaded the machine.
HANG_S = 600


def _start(workdir: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "experiments.train", "--workdir",
                             str(workdir), *RUN, *extra], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=HANG_S)
    assert process.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    _finish(_start(workdir))
    return final_state(workdir)


def _kill_when(process: subprocess.Popen, ready) -> bool:
    """SIGKILLs `process` as soon as `ready()`; False if it finished first."""
    hung = time.monotonic() + HANG_S
    while process.poll() is None:
        assert time.monotonic() < hung, "the run hung"
        if ready():
            process.kill()
            process.wait()
            return True
        time.sleep(0.001)
    return False


def _rows(workdir: Path) -> int:
    path = workdir / "metrics.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


def _saving(workdir: Path) -> bool:
    folder = workdir / "checkpoints"
    return folder.is_dir() and any("tmp" in p.name for p in folder.iterdir())


MOMENTS = {
    "mid-checkpoint-write": _saving,
    "after-the-first-log-row": lambda w: _rows(w) >= 1,
    "mid-run": lambda w: _rows(w) >= 10,
    "near-the-end": lambda w: _rows(w) >= 20,
}


@pytest.mark.parametrize("moment", [
    "mid-checkpoint-write",
    *(pytest.param(m, marks=pytest.mark.slow) for m in MOMENTS if m != "mid-checkpoint-write")])
def test_sigkill_then_the_same_command_ends_in_the_uninterrupted_state(tmp_path, uninterrupted,
                                                                      moment):
    killed = _kill_when(_start(tmp_path), lambda: MOMENTS[moment](tmp_path))
    assert killed, f"the run ended before the moment '{moment}'"
    # What the killed run left: complete checkpoints only, perhaps an unfinished temporary one.
    done = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) \
        if (tmp_path / "checkpoints").is_dir() else []
    _finish(_start(tmp_path))
    resumed = final_state(tmp_path)
    assert int(resumed.step) == int(uninterrupted.step) == STEPS
    for a, b in zip(leaves(resumed), leaves(uninterrupted), strict=True):
        np.testing.assert_array_equal(a, b)
    # Every step is logged once, in order, however many steps were trained twice.
    assert [row["step"] for row in read_metrics(tmp_path)] == list(range(1, STEPS + 1))
    assert not any("tmp" in p.name for p in (tmp_path / "checkpoints").iterdir())
    assert all(step % 3 == 0 for step in done)


@pytest.mark.parametrize("signum", [signal.SIGTERM,
                                    pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_saves_a_checkpoint_and_exits_0_within_seconds(tmp_path, signum):
    # Long enough never to finish; no periodic checkpoint before the signal.
    process = _start(tmp_path, "train.total_kimg=100", "train.checkpoint_every_kimg=50")
    # Start-up and compilation take what a loaded machine gives them; the run cannot finish
    # first (6250 steps).
    hung = time.monotonic() + HANG_S
    while _rows(tmp_path) < 3 and process.poll() is None:
        assert time.monotonic() < hung, "the run hung"
        time.sleep(0.01)
    assert process.poll() is None, process.communicate()[1]
    process.send_signal(signum)
    sent = time.monotonic()
    out = _finish(process)
    # The feature: a stop within seconds (one step, one checkpoint, exit). 30 s leaves room
    # for the other test process competing for the same 2 cores.
    assert time.monotonic() - sent < 30
    steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(steps) == 1 and steps[0] >= 3
    assert f"stopped at step {steps[0]} of 6250" in out
    assert read_metrics(tmp_path)[-1]["step"] == steps[0]  # the stop step is logged too


def test_an_unfinished_checkpoint_is_never_the_latest(tmp_path):
    config = config_lib.with_overrides(config_lib.load_config(f"{DCGAN_CONFIG}:test"),
                                       {"train.total_kimg": 0.064})
    train(config, tmp_path, progress=False)  # checkpoints at steps 2 and 4
    folder = tmp_path / "checkpoints"
    # What a kill during the save of step 6 leaves: orbax's temporary folder (named with or
    # without a timestamp, by orbax version), files cut short.
    unfinished = [folder / "6.orbax-checkpoint-tmp", folder / "8.orbax-checkpoint-tmp-1764583"]
    for path in unfinished:
        shutil.copytree(folder / "4", path)
        for file in path.rglob("*"):
            if file.is_file():
                file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    like = init_state(build_gan(config), jax.random.key(0))
    reader = Checkpointer(folder, read_only=True)  # an evaluation: deletes nothing
    assert reader.latest_step() == 4
    reader.close()
    assert all(path.exists() for path in unfinished)
    checkpointer = Checkpointer(folder)
    # Gone as soon as a run opens the folder, before it restores or writes anything.
    assert not any(path.exists() for path in unfinished)
    assert checkpointer.latest_step() == 4
    assert int(checkpointer.restore_latest(like=like).step) == 4
    checkpointer.close()
    assert sorted(p.name for p in folder.iterdir()) == ["2", "4"]


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path):
    config = config_lib.with_overrides(config_lib.load_config(f"{DCGAN_CONFIG}:test"),
                                       {"train.total_kimg": 0.064})
    train(config, tmp_path, progress=False)
    metrics = tmp_path / "metrics.jsonl"
    # A process killed in the middle of writing row 5 (a step after the last checkpoint).
    metrics.write_text(metrics.read_text() + json.dumps({"step": 5, "d_loss": 1.0})
                       + "\n" + '{"step": 6, "d_lo')
    train(config_lib.with_overrides(config, {"train.total_kimg": 0.096}), tmp_path,
          progress=False)
    assert [row["step"] for row in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert all(json.loads(line) for line in metrics.read_text().splitlines())

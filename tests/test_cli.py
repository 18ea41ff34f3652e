"""The experiments CLI: a whole tiny run, and one clear line for each kind of bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from experiments.train import main
from tests.conftest import DCGAN_CONFIG, MLP_CONFIG, REPO, requires_fashion_mnist
from tests.helpers import snapshot


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@requires_fashion_mnist
@pytest.mark.parametrize("config", [DCGAN_CONFIG,
                                    pytest.param(MLP_CONFIG, marks=pytest.mark.slow)])
def test_end_to_end_run_directory(tmp_path, config):
    result = _cli("--config", f"{config}:test", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "img/s" in result.stderr  # the progress bar reports throughput
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["train"]["batch_size"] == 16
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "3"]
    grid = np.asarray(Image.open(tmp_path / "samples" / "latest.png"))
    assert grid.shape == (4 * 30 + 2, 4 * 30 + 2)  # 16 samples of 28x28, 2-pixel padding
    assert grid.std() > 0  # not a blank image
    assert {p.name for p in (tmp_path / "samples").iterdir()} == {
        "step_00000002.png", "step_00000003.png", "latest.png"}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("d_loss", "g_loss", "d_real_logit", "d_fake_logit", "g_grad_norm",
                "d_grad_norm", "g_param_norm", "d_param_norm", "img_per_sec", "kimg"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))

    again = _cli("--config", f"{config}:test", "--workdir", str(tmp_path))  # already complete
    assert again.returncode == 0, again.stderr
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


BAD_INPUTS = [
    (["model.g_widht=8"], "unknown config key 'model.g_widht'"),
    (["train.batch_size=sixteen"], "'train.batch_size' expects int, got 'sixteen'"),
    (["train.batch_size=12"], "train.batch_size=12 is not divisible by the 8 devices"),
    (["model.resolution=30"], "model.resolution=30 cannot be made by DCGAN"),
    (["data.dir=/nonexistent"], "/nonexistent/train-images-idx3-ubyte.gz not found; install it"),
    (["model.channels=3"], "has 1 channel(s) but model.channels=3"),
    (["train.loss=wasserstein9"], "train.loss='wasserstein9' is unknown"),
    (["model.arch=vit"], "model.arch='vit' is unknown"),
    (["batch_size"], "override 'batch_size' is not of the form section.key=value"),
]


@requires_fashion_mnist
@pytest.mark.parametrize("overrides,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, overrides, message):
    workdir = tmp_path / "run"
    err = _error_line(capsys, ["--config", f"{DCGAN_CONFIG}:test", "--workdir", str(workdir),
                               *overrides])
    assert message in err
    assert not workdir.exists()


def test_bad_config_spec(tmp_path, capsys):
    assert "not found" in _error_line(capsys, ["--config", "missing.py", "--workdir",
                                               str(tmp_path)])
    assert "unknown variant 'gpu9'" in _error_line(
        capsys, ["--config", f"{DCGAN_CONFIG}:gpu9", "--workdir", str(tmp_path)])


@requires_fashion_mnist
def test_failed_run_leaves_the_good_checkpoint_alone(tmp_path):
    assert _cli("--config", f"{DCGAN_CONFIG}:test", "--workdir", str(tmp_path)).returncode == 0
    before = snapshot(tmp_path)
    result = _cli("--config", f"{DCGAN_CONFIG}:test", "--workdir", str(tmp_path),
                  "model.d_width=16", "train.total_kimg=1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "model.d_width=8 but this config has model.d_width=16" in result.stderr
    assert snapshot(tmp_path) == before

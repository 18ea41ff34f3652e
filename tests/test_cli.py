"""The experiments CLI: a whole tiny run, and one clear line for each kind of bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.train import main
from gan_jax.config import FASHION_MNIST_DIR
from tests.conftest import DCGAN_CONFIG, MLP_CONFIG, REPO, requires_fashion_mnist
from tests.helpers import snapshot


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


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
@pytest.mark.slow  # two subprocess runs; the in-process refusal tests cover the default suite
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


def _image_folder(folder, count: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")


@requires_fashion_mnist
def test_more_bad_data_is_one_line_and_writes_nothing(tmp_path, capsys):
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        whole = (Path(FASHION_MNIST_DIR) / name).read_bytes()
        (truncated / name).write_bytes(whole[: len(whole) // 2])  # a download cut short
    (tmp_path / "empty").mkdir()
    _image_folder(tmp_path / "small" / "a", 4, seed=0)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "small" / "a" / "odd.png")
    _image_folder(tmp_path / "good", 4, seed=1)
    cases = [
        ([f"data.dir={truncated}"], "is not a readable gzip file"),
        (["data.source=folder", f"data.dir={tmp_path / 'empty'}"], "holds no images"),
        (["data.source=folder", f"data.dir={tmp_path / 'nowhere'}"], "image folder"),
        (["data.source=folder", f"data.dir={tmp_path / 'small'}"], "differ in size"),
        (["data.source=folder", f"data.dir={tmp_path / 'good'}", "eval.metrics=fid10k"],
         "data.source=folder has no test split"),
        (["train.rollback_lr_factor=2"], "train.rollback_lr_factor=2.0 must be in (0, 1]"),
    ]
    for overrides, message in cases:
        workdir = tmp_path / "run"
        err = _error_line(capsys, ["--config", f"{DCGAN_CONFIG}:test", "--workdir",
                                   str(workdir), *overrides])
        assert message in err, overrides
        assert not workdir.exists()


@pytest.mark.parametrize("flags,message", [
    (["--coordinator-address", "nohost"], "is not HOST:PORT"),
    (["--coordinator-address", "127.0.0.1:1234"], "needs --num-processes and --process-id"),
    (["--num-processes", "2"], "need --coordinator-address"),
    (["--coordinator-address", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"],
     "--process-id 2 must be in [0, --num-processes)"),
])
def test_bad_cluster_flags_are_one_line(tmp_path, capsys, flags, message):
    workdir = tmp_path / "run"
    assert message in _error_line(capsys, ["--config", f"{DCGAN_CONFIG}:test", "--workdir",
                                           str(workdir), *flags])
    assert not workdir.exists()


def test_distributed_without_a_cluster_is_one_line(tmp_path):
    # A subprocess: joining a job must happen before JAX starts, which this one already has.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "TPU_", "KUBERNETES_", "JAX_COORDINATOR"))}
    result = subprocess.run([sys.executable, "-m", "experiments.train", "--config",
                             f"{DCGAN_CONFIG}:test", "--workdir", str(tmp_path / "run"),
                             "--distributed"], cwd=REPO, env=env | {"PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --distributed found no cluster to join"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@requires_fashion_mnist
def test_a_checkpoint_of_another_model_is_refused_and_nothing_changes(tmp_path, capsys):
    argv = ["--config", f"{DCGAN_CONFIG}:test", "--workdir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    # Without its config.json only the checkpoint itself can tell the models apart.
    (tmp_path / "config.json").unlink()
    before = snapshot(tmp_path)
    err = _error_line(capsys, [*argv, "model.g_width=16", "train.total_kimg=0.096"])
    assert f"checkpoint {tmp_path / 'checkpoints' / '3'} does not fit this model" in err
    assert snapshot(tmp_path) == before


def test_training_on_a_folder_of_images(tmp_path, capsys):
    for label in ("cats", "dogs"):
        _image_folder(tmp_path / "images" / label, 8, seed=len(label))
    argv = ["--config", f"{DCGAN_CONFIG}:test", "--workdir", str(tmp_path / "run"),
            "--no-progress", "data.source=folder", f"data.dir={tmp_path / 'images'}",
            "model.conditioning=projection", "model.num_classes=2"]
    assert main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "3").is_dir()
    err = _error_line(capsys, [*argv[:-1], "model.num_classes=3"])  # the folder has 2 classes
    assert "2" in err and "num_classes" in err

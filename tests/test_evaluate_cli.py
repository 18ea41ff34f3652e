"""The evaluation CLI and evaluation during training, with the real Inception network.

Counts are tiny (16 images) so this runs in about a minute on a CPU; the numbers are checked
against each other (the CLI and the training loop must agree exactly) and against FID's
definition (identical sets give 0).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments.evaluate import main
from gan_jax.config import load_config, with_overrides
from gan_jax.errors import UserError
from gan_jax.loop import train
from tests.conftest import MLP_CONFIG, REPO, requires_fashion_mnist
from tests.helpers import snapshot

GOLDEN = Path(__file__).parent / "golden" / "inception_features.npz"


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """16 Fashion-MNIST images as an .npz and 16 random RGB images as a folder of PNGs."""
    root = tmp_path_factory.mktemp("images")
    with np.load(GOLDEN) as golden:
        gray, rgb = golden["gray_images"], golden["rgb_images"]
    np.savez(root / "gray.npz", images=gray)
    (root / "rgb").mkdir()
    for i, image in enumerate(rgb):
        Image.fromarray(image).save(root / "rgb" / f"{i:02d}.png")
    return root


def _run(capsys, argv) -> dict:
    assert main([*argv, "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# Slow (40-55 s on 2 cores: the Inception network compiles); the CLI's error lines stay in the
# default suite, and its features are checked against the reference in test_inception.py.
@pytest.mark.slow
def test_identical_sets_score_zero_and_different_sets_do_not(capsys, image_files):
    gray = str(image_files / "gray.npz")
    same = _run(capsys, ["--images", gray, "--reference", gray, "--metrics", "fid16,prdc16"])
    assert same["metrics"]["fid16"] == pytest.approx(0, abs=1e-6)
    assert same["metrics"]["prdc16_precision"] == same["metrics"]["prdc16_recall"] == 1.0
    output = image_files / "new_folder" / "results.jsonl"  # folders are made as needed
    other = _run(capsys, ["--images", gray, "--reference", str(image_files / "rgb"),
                          "--metrics", "fid16,kid16", "--output", str(output)])
    assert other["metrics"]["fid16"] > 50 and other["metrics"]["kid16"] > 0
    assert other["protocol"]["resize"] == "clean"
    assert json.loads(output.read_text()) == other


def _error_line(capsys, argv) -> str:
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_bad_inputs_give_one_line_and_exit_2(capsys, image_files, tmp_path):
    gray = str(image_files / "gray.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((4, 8, 8, 1), np.float32))
    np.savez(tmp_path / "flat.npz", images=np.zeros(64, np.uint8))
    np.savez(tmp_path / "two_channels.npz", images=np.zeros((4, 8, 8, 2), np.uint8))
    np.savez(tmp_path / "int_range.npz", images=np.full((4, 8, 8, 1), 300, np.int64))
    np.savez(tmp_path / "unnamed.npz", a=np.zeros((4, 8, 8), np.uint8), b=np.zeros(4))
    np.savez(tmp_path / "nothing.npz")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    cases = [
        (["--images", str(tmp_path / "float.npz"), "--reference", gray, "--metrics", "fid4"],
         "must be uint8"),
        (["--images", str(tmp_path / "flat.npz"), "--reference", gray, "--metrics", "fid4"],
         "images must be an (N, H, W) or (N, H, W, C) array, got shape (64,)"),
        (["--images", str(tmp_path / "two_channels.npz"), "--reference", gray, "--metrics",
          "fid4"], "images must be NHWC with 1 or 3 channels, got shape (4, 8, 8, 2)"),
        (["--images", str(tmp_path / "int_range.npz"), "--reference", gray, "--metrics",
          "fid4"], "must be uint8 in [0, 255], got int64"),
        (["--images", str(tmp_path / "empty"), "--reference", gray, "--metrics", "fid4"],
         "holds no images"),
        (["--images", str(tmp_path / "broken"), "--reference", gray, "--metrics", "fid4"],
         "cannot read image"),
        (["--images", gray, "--reference", gray, "--metrics", "fid10k"],
         "holds 16 images but fid10k needs 10000"),
        (["--images", gray, "--metrics", "fid4"], "needs --reference"),
        (["--images", gray, "--reference", gray, "--metrics", "inception_score"],
         "unknown metric 'inception_score'"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--resize", "lanczos"],
         "eval.resize='lanczos' is unknown"),
        (["--images", "nowhere/at/all", "--reference", gray, "--metrics", "fid4"],
         "is not a folder, an .npz file or a dataset:split"),
        (["--run", str(tmp_path), "--metrics", "fid4"], "is not a run directory"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--step", "3"],
         "--step chooses a checkpoint of --run"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--generator", "trained"],
         "--generator picks the weights of --run's generator"),
        (["--run", str(tmp_path), "--metrics", "fid4", "--resolution", "32"],
         "--resolution fits --images and --reference; a --run's generator has its own"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--resolution", "0"],
         "--resolution 0 is not an image side"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--resolution", "16",
          "--fit", "pad"], "--fit=pad cannot shrink 28x28 images to 16x16; use --fit=resize"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--fit", "pad"],
         "--fit pad says how to reach --resolution; give --resolution too"),
        (["--images", str(tmp_path / "unnamed.npz"), "--reference", gray, "--metrics", "fid4"],
         "holds ['a', 'b']; name the image array 'images'"),
        (["--images", str(tmp_path / "nothing.npz"), "--reference", gray, "--metrics", "fid4"],
         "holds []; name the image array 'images'"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--batch-size", "0"],
         "eval.batch_size=0 must be >= 1"),
        # Refused before any feature is computed, not after.
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--output",
          str(tmp_path)], f"--output {tmp_path} is a folder, not a file"),
        (["--images", gray, "--reference", gray, "--metrics", "fid4", "--output",
          str(tmp_path / "flat.npz" / "out.jsonl")], "lies under the file"),
    ]
    for argv, message in cases:
        assert message in _error_line(capsys, argv), argv


def test_resolution_fits_both_sets_as_a_run_fits_its_data(capsys, image_files, tmp_path,
                                                         monkeypatch):
    """--resolution 32 --fit pad: the numbers of the same images zero-padded beforehand (2
    pixels each side), both sets, the fit stated in the protocol."""
    from gan_jax import evaluate as ev
    from tests.helpers import ProjectedPixels
    extractor = ProjectedPixels()
    monkeypatch.setattr(ev, "make_extractor", lambda config, progress: extractor)
    with np.load(GOLDEN) as golden:
        gray = golden["gray_images"]
    np.savez(tmp_path / "a.npz", images=gray[:8])
    np.savez(tmp_path / "b.npz", images=gray[8:])
    pad = ((0, 0), (2, 2), (2, 2), (0, 0))
    np.savez(tmp_path / "a32.npz", images=np.pad(gray[:8], pad))
    np.savez(tmp_path / "b32.npz", images=np.pad(gray[8:], pad))
    fitted = _run(capsys, ["--images", str(tmp_path / "a.npz"), "--reference",
                           str(tmp_path / "b.npz"), "--metrics", "fid8,kid8",
                           "--resolution", "32", "--fit", "pad"])
    assert extractor.shapes == [(8, 32, 32, 1), (8, 32, 32, 1)]  # both sets, one batch each
    assert fitted["protocol"]["fit"] == "pad to 32x32"
    padded = _run(capsys, ["--images", str(tmp_path / "a32.npz"), "--reference",
                           str(tmp_path / "b32.npz"), "--metrics", "fid8,kid8"])
    assert fitted["metrics"] == padded["metrics"] and "fit" not in padded["protocol"]
    as_they_are = _run(capsys, ["--images", str(tmp_path / "a.npz"), "--reference",
                                str(tmp_path / "b.npz"), "--metrics", "fid8"])
    assert as_they_are["metrics"]["fid8"] != fitted["metrics"]["fid8"]


def test_a_subprocess_user_error_is_one_line_without_traceback(image_files):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "experiments.evaluate", "--images",
                             str(image_files / "gray.npz"), "--metrics", "fid4"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --images needs --reference (a folder, .npz or dataset:split)"]


@requires_fashion_mnist
@pytest.mark.slow  # 2 min: four Inception compilations
def test_training_evaluates_and_the_cli_reproduces_it(capsys, image_files, tmp_path):
    config = with_overrides(load_config(f"{MLP_CONFIG}:test"), {
        "eval.metrics": "fid16,kid16", "eval.reference": str(image_files / "gray.npz"),
        "eval.batch_size": 8, "eval.seed": 5, "eval.resize": "tf_legacy",
        "optim.ema_kimg": 0.01})
    train(config, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    [logged] = [row for row in rows if "fid16" in row]
    assert logged["step"] == 3 and np.isfinite(logged["fid16"]) and logged["fid16"] > 0
    # The CLI restores the last checkpoint, takes the run's eval settings (seed, resize) and
    # draws the same latents whatever its batch size: the same numbers.
    result = _run(capsys, ["--run", str(tmp_path), "--metrics", "fid16,kid16",
                           "--reference", str(image_files / "gray.npz"), "--batch-size", "16"])
    assert result["protocol"]["seed"] == 5 and result["protocol"]["resize"] == "tf_legacy"
    assert result["metrics"]["fid16"] == pytest.approx(logged["fid16"], rel=1e-6)
    assert result["metrics"]["kid16"] == pytest.approx(logged["kid16"], rel=1e-5)
    assert result["source"].endswith("(step 3)")
    earlier = _run(capsys, ["--run", str(tmp_path), "--step", "2", "--metrics", "fid16",
                            "--reference", str(image_files / "gray.npz"), "--batch-size", "8"])
    assert earlier["source"].endswith("(step 2)")
    assert earlier["metrics"]["fid16"] != result["metrics"]["fid16"]
    # Logged and reproduced: the EMA's images. With G's trained weights, the CLI gives what the
    # same run without an EMA logs (the EMA never changes training).
    trained = _run(capsys, ["--run", str(tmp_path), "--metrics", "fid16", "--generator",
                            "trained", "--reference", str(image_files / "gray.npz")])
    assert trained["protocol"]["generator"] == "trained"
    train(with_overrides(config, {"optim.ema_kimg": None}), tmp_path / "plain", progress=False)
    [plain] = [json.loads(line) for line in (tmp_path / "plain" / "metrics.jsonl").read_text()
               .splitlines() if "fid16" in line]
    assert trained["metrics"]["fid16"] == pytest.approx(plain["fid16"], rel=1e-6)
    assert trained["metrics"]["fid16"] != result["metrics"]["fid16"]
    assert "has no checkpoint of step 7; it has steps 2, 3" in _error_line(
        capsys, ["--run", str(tmp_path), "--step", "7", "--metrics", "fid16"])
    # Killed during that final evaluation, the run has its last checkpoint (saved before the
    # evaluation) and no result: the same command evaluates it, once, instead of finding
    # nothing left to do.
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows if "fid16" not in row))
    for _ in range(2):
        train(config, tmp_path, progress=False)
        [again] = [json.loads(line) for line in metrics.read_text().splitlines()
                   if "fid16" in line]
        assert again["step"] == 3 and again["fid16"] == pytest.approx(logged["fid16"], rel=1e-6)


@requires_fashion_mnist
@pytest.mark.slow  # 40 s: one Inception compilation
def test_a_stopped_evaluation_resumes_from_the_features_it_saved(capsys, image_files, tmp_path,
                                                                  monkeypatch):
    from gan_jax.metrics import features, resumable
    config = with_overrides(load_config(f"{MLP_CONFIG}:test"), {"eval.metrics": ""})
    train(config, tmp_path, progress=False)
    argv = ["--run", str(tmp_path), "--metrics", "fid16", "--reference",
            str(image_files / "gray.npz"), "--batch-size", "8"]
    fetched, fetch = [], features._fetch

    def killed_after_one_batch(*args):
        if fetched:
            raise KeyboardInterrupt
        fetched.append(1)
        return fetch(*args)

    monkeypatch.setattr(resumable, "CHUNK_IMAGES", 8)  # a chunk per batch
    monkeypatch.setattr(features, "_fetch", killed_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        main([*argv, "--no-progress"])
    assert len(list((tmp_path / "evaluation_progress").glob("*/*.npy"))) == 1

    def counted(*args):
        fetched.append(1)
        return fetch(*args)

    monkeypatch.setattr(features, "_fetch", counted)
    fetched.clear()
    resumed = _run(capsys, argv)
    # The reference file's two batches (not cached: files change) and the second generated one.
    assert len(fetched) == 3
    assert not (tmp_path / "evaluation_progress").exists()
    fetched.clear()
    assert _run(capsys, argv) == resumed and len(fetched) == 4  # from scratch: the same


@requires_fashion_mnist
def test_bad_eval_settings_are_refused_before_the_run_directory_is_touched(tmp_path):
    base = load_config(f"{MLP_CONFIG}:test")
    (tmp_path / "keep.txt").write_text("x")
    before = snapshot(tmp_path)
    for overrides, message in [({"eval.metrics": "fid10k,bogus"}, "unknown metric 'bogus'"),
                               ({"eval.metrics": "fid10", "eval.compute": "fp8"},
                                "eval.compute='fp8' is unknown"),
                               ({"eval.metrics": "fid10", "eval.generator": "raw"},
                                "eval.generator='raw' is unknown"),
                               ({"eval.metrics": "fid10", "eval.reference": "no_such:split"},
                                "could not load 'no_such'")]:
        with pytest.raises(UserError, match=message):
            train(with_overrides(base, overrides), tmp_path, progress=False)
        assert snapshot(tmp_path) == before

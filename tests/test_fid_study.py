"""The FID study's driver: its bookkeeping on made-up logs, and a tiny real study on the CPU."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from experiments import fid_study
from tests.conftest import requires_fashion_mnist

GOLDEN = Path(__file__).parent / "golden" / "inception_features.npz"


def test_bad_rows_and_seeds_are_one_line(tmp_path, capsys):
    for argv, message in [(["run", "--rows", "ns_gan,big_gan"], "unknown variant 'big_gan'"),
                          (["run", "--experiment", str(tmp_path / "none.py")], "is not a file"),
                          (["run", "--rows", "ns_gan,ns_gan"], "'ns_gan' is repeated"),
                          (["run", "--rows", "a=ns_gan,a=lsgan"], "'a' is repeated"),
                          (["run", "--rows", "ns gan=ns_gan"], "'ns gan=ns_gan' is not VARIANT"),
                          (["run", "--rows", "mine="], "'mine=' is not VARIANT or NAME=VARIANT"),
                          (["run", "--rows", "=ns_gan"], "'=ns_gan' is not VARIANT"),
                          (["run", "--rows", "mine=big_gan"], "unknown variant 'big_gan'"),
                          (["floor", "--floor-fit", "pad"], "give --floor-resolution too"),
                          (["run", "--seeds", "0,a"], "--seeds '0,a' is not"),
                          (["run", "--curve-seeds", "x"], "--curve-seeds 'x' is not"),
                          (["report", "--out", str(tmp_path), "--results",
                            str(tmp_path / "results")], "no finished runs under")]:
        assert fid_study.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_only_the_curve_seeds_of_the_curve_rows_are_evaluated_along_the_way():
    def every_kimg(row, seed, *flags):
        args = fid_study.parse_args(["run", "--rows", row, *flags])
        return fid_study.run_config(row, seed, args).eval.every_kimg

    assert every_kimg("ns_gan", 0) == 120.0
    assert every_kimg("ns_gan", 1) is None  # seed 0 alone times the result, by default
    assert every_kimg("lsgan", 0) is None
    assert every_kimg("ns_gan", 2, "--curve-seeds", "0,2", "--eval-every-kimg", "60") == 60.0
    assert every_kimg("ns_gan", 0, "--curve-rows", "") is None


def test_a_bisection_row_keeps_every_checkpoint():
    args = fid_study.parse_args(["run", "--bisect-rows", "lsgan", "--curve-rows", "",
                                 "--eval-every-kimg", "100"])
    config = fid_study.run_config("lsgan", 0, args)
    assert config.train.checkpoint_every_kimg == 100.0 and config.eval.every_kimg is None
    assert config.train.keep_checkpoints == 12 + fid_study.BISECT_SPARE_CHECKPOINTS
    assert fid_study.run_config("lsgan", 1, args).train.keep_checkpoints == 3  # not timed


def test_a_row_is_timed_one_way(capsys):
    assert fid_study.main(["run", "--rows", "ns_gan", "--bisect-rows", "ns_gan"]) == 2
    assert "in both --curve-rows and --bisect-rows" in capsys.readouterr().err


def test_a_run_stopped_before_its_end_exits_3_and_trains_nothing_after_it(tmp_path,
                                                                        monkeypatch):
    """A SIGTERM returns the state short of its last step: the study stops with exit code 3
    (a script running several commands stops too), without evaluating or summarising."""
    import types

    from gan_jax import loop
    trained = []
    monkeypatch.setattr(loop, "train", lambda config, workdir, progress: (
        trained.append(workdir), types.SimpleNamespace(step=1))[1])
    argv = ["run", "--out", str(tmp_path), "--rows", "ns_gan,lsgan", "--no-progress"]
    assert fid_study.main(argv) == fid_study.STOPPED == 3
    assert trained == [tmp_path / "ns_gan" / "seed_0"]
    assert not list(tmp_path.rglob("study.json")) and not list(tmp_path.rglob("final_*.json"))


def test_each_process_that_trains_a_run_is_in_its_summary(tmp_path, monkeypatch):
    """A run resumed over several processes (sessions, machines) keeps each one's machine,
    code and command in its summary, not only those of the process that finished it."""
    import types

    from gan_jax import loop
    outcomes = iter(["stop", "stop", "diverge"])

    def train(config, workdir, progress):
        if next(outcomes) == "diverge":
            raise loop.TrainingDiverged("training diverged at step 9")
        return types.SimpleNamespace(step=1)
    monkeypatch.setattr(loop, "train", train)
    # Each process's record, then the summary's own (written by the last process).
    monkeypatch.setattr(fid_study, "cpu_model",
                        iter(["cpu A", "cpu B", "cpu C", "cpu C"]).__next__)
    argv = ["run", "--out", str(tmp_path), "--rows", "ns_gan", "--no-progress"]
    assert fid_study.main(argv) == fid_study.main(argv) == fid_study.STOPPED
    assert fid_study.main(argv) == 0
    summary = json.loads((tmp_path / "ns_gan" / "seed_0" / "study.json").read_text())
    assert [p["cpu"] for p in summary["processes"]] == ["cpu A", "cpu B", "cpu C"]
    assert summary["cpu"] == "cpu C"
    assert all({"commit", "command", "cpu_cores", "jax"} <= set(p) and p["date"]
               for p in summary["processes"])
    assert fid_study.processes(tmp_path / "elsewhere") == []  # runs trained before the log


def test_a_named_row_trains_its_variant_under_its_own_name(tmp_path, monkeypatch):
    """NAME=VARIANT: the variant's config, in NAME's directory (and NAME's line in the table)."""
    import types

    from gan_jax import loop
    trained = []
    monkeypatch.setattr(loop, "train", lambda config, workdir, progress: (
        trained.append((config, workdir)), types.SimpleNamespace(step=1))[1])
    argv = ["run", "--out", str(tmp_path), "--rows", "ns_gan_again=ns_gan", "--no-progress",
            "--bisect-rows", "ns_gan_again", "--curve-rows", ""]
    assert fid_study.main(argv) == fid_study.STOPPED
    [(config, workdir)] = trained
    assert workdir == tmp_path / "ns_gan_again" / "seed_0"
    args = fid_study.parse_args(argv)
    assert config == fid_study.run_config("ns_gan_again", 0, args, "ns_gan")
    assert config.model == fid_study.run_config("ns_gan", 0, args).model
    assert config.train.keep_checkpoints > 3  # timed by bisection under its name
    assert config != fid_study.run_config("lsgan", 0, args)
    # A variant with a dot (the configs' tiny .test variants) is a row as it is.
    assert fid_study.experiment_rows(fid_study.parse_args(
        ["run", "--rows", "ns_gan.test,tiny=lsgan.test"]))[0] == {"ns_gan.test": "ns_gan.test",
                                                                  "tiny": "lsgan.test"}


def test_a_diverged_run_is_recorded_and_the_study_goes_on(tmp_path, monkeypatch, capsys):
    from gan_jax import loop

    def diverges(config, workdir, progress):
        raise loop.TrainingDiverged(f"training diverged at step 7 ({workdir.parent.name})")
    monkeypatch.setattr(loop, "train", diverges)
    argv = ["--out", str(tmp_path), "--rows", "ns_gan,mine=lsgan", "--seeds", "0,1",
            "--no-progress", "--results", str(tmp_path / "results")]
    assert fid_study.main(["run", *argv]) == 0
    summary = json.loads((tmp_path / "mine" / "seed_1" / "study.json").read_text())
    assert summary["diverged"] == "training diverged at step 7 (mine)"
    assert (summary["row"], summary["variant"], summary["seed"]) == ("mine", "lsgan", 1)
    assert summary["experiment"] == str(fid_study.EXPERIMENT)
    assert fid_study.main(["run", *argv]) == 0  # recorded: not trained again
    assert capsys.readouterr().out.count("done before, skipped") == 4
    assert fid_study.main(["report", *argv]) == 0
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| ns_gan | 26.5 | diverged | | | | 0 (seeds 0, 1 diverged) |" in table
    assert "| mm_gan | 26.5" not in table and "| mm_gan | 29.6 | not run yet |" in table
    _assert_every_row_fills_its_table(table)


@pytest.mark.slow
@requires_fashion_mnist
def test_tiny_study_runs_skips_and_reports(tmp_path, capsys):
    with np.load(GOLDEN) as golden:  # 16 real Fashion-MNIST images as the FID reference
        np.savez(tmp_path / "reference.npz", images=golden["gray_images"])
    tiny = ["model.g_width=8", "model.d_width=8", "model.latent_dim=16", "train.batch_size=16",
            f"eval.reference={tmp_path / 'reference.npz'}", "eval.batch_size=16",
            "train.grid_size=16", "train.checkpoint_every_kimg=0.016"]
    argv = ["--out", str(tmp_path / "runs"), "--rows", "ns_gan,wgan,lsgan", "--seeds", "0",
            "--bisect-rows", "lsgan",
            "--kimg", "0.048", "--eval-every-kimg", "0.032", "--count", "16",
            "--pass-fid", "1e6", "--results", str(tmp_path / "results"), "--no-progress", *tiny]
    assert fid_study.main(["run", *argv]) == 0
    summary = json.loads((tmp_path / "runs" / "ns_gan" / "seed_0" / "study.json").read_text())
    assert summary["metric"] == "fid16" and summary["final_fid"] > 0
    assert summary["tf_legacy_fid"] > 0 and summary["tf_legacy_fid"] != summary["final_fid"]
    assert np.isfinite(summary["final_kid"]) and np.isfinite(summary["tf_legacy_kid"])
    assert len(summary["processes"]) == 1 and summary["processes"][0]["commit"] == \
        summary["commit"]  # one process trained and finished it
    # The curve row is evaluated during the run, the others only at the end.
    assert [p["kimg"] for p in summary["curve"]] == [0.032, 0.048]
    assert 0 < summary["seconds_to_pass"] == summary["curve"][0]["train_s"]
    wgan = json.loads((tmp_path / "runs" / "wgan" / "seed_0" / "study.json").read_text())
    assert len(wgan["curve"]) == 1  # at its end (5 critic batches: one step of 0.08 kimg)
    # The bisection row: its checkpoints (every 0.016 kimg, the override) all kept, the first
    # evaluated by the evaluation CLI, the last by the run itself.
    lsgan = json.loads((tmp_path / "runs" / "lsgan" / "seed_0" / "study.json").read_text())
    assert [p["step"] for p in lsgan["bisection"]] == [1, 3]
    assert lsgan["pass_step"] == 1 and 0 < lsgan["seconds_to_pass"] < lsgan["train_s"]
    assert lsgan["bisection"][0]["fid"] == json.loads(
        (tmp_path / "runs" / "lsgan" / "seed_0" / "bisection" / "step_1_clean.json")
        .read_text())["metrics"]["fid16"]
    capsys.readouterr()
    assert fid_study.main(["run", *argv]) == 0  # finished runs are not trained again
    assert capsys.readouterr().out.count("done before, skipped") == 3
    processes = tmp_path / "runs" / "ns_gan" / "seed_0" / fid_study.PROCESSES
    assert len(processes.read_text().splitlines()) == 1  # a skipped run records no process
    assert fid_study.main(["report", *argv]) == 0
    table = (tmp_path / "results" / "table.md").read_text()
    assert "| ns_gan | 26.5 | " in table and "| mm_gan | 29.6 | not run yet |" in table
    assert "with its evaluation (0.016 kimg; bisection over checkpoints every 0.016 kimg: " \
        "clean FID " in table
    assert "| wgan | 21.5 | " in table
    from PIL import Image
    with Image.open(tmp_path / "runs" / "ns_gan" / "seed_0" / "samples" / "latest.png") as raw, \
            Image.open(tmp_path / "results" / "ns_gan.png") as shown:
        assert shown.size == (raw.width * 3, raw.height * 3)


def _assert_every_row_fills_its_table(table: str) -> None:
    """Each markdown table's rows have as many cells as its header."""
    for block in table.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            assert {line.count(" |") + line.count("---|") for line in lines} == {
                lines[0].count(" |")}, block


def _summary(row: str, seed: int, tf_legacy: float) -> dict:
    return {"row": row, "seed": seed, "metric": "fid10k", "final_fid": tf_legacy + 8,
            "final_kid": 0.02, "tf_legacy_fid": tf_legacy, "tf_legacy_kid": 0.01,
            "pass_fid": 26.5, "seconds_to_pass": None, "restarts": 0,
            "curve": [{"kimg": 1200.0, "fid": tf_legacy + 8, "train_s": 100.0}],
            "device": "cpu", "jax": "0.10.2", "flax": "0.12.8", "overrides": [],
            "date": f"2026-12-0{seed + 1}T00:00:00+00:00"}


def test_report_keeps_the_rows_of_run_directories_that_are_gone(tmp_path):
    """A summary is copied into --results/runs/ by the report that first sees it, so a later
    report, in a session whose --out holds other runs only, still has its row."""
    out, results = tmp_path / "runs", tmp_path / "results"
    (out / "ns_gan" / "seed_0").mkdir(parents=True)
    (out / "ns_gan" / "seed_0" / "study.json").write_text(json.dumps(_summary("ns_gan", 0, 19.5)))
    argv = ["report", "--out", str(out), "--results", str(results)]
    assert fid_study.main(argv) == 0
    assert json.loads((results / "runs" / "ns_gan_seed_0.json").read_text())["seed"] == 0
    shutil.rmtree(out / "ns_gan")  # a new session: that run directory is gone
    (out / "ns_gan" / "seed_1").mkdir(parents=True)
    (out / "ns_gan" / "seed_1" / "study.json").write_text(
        json.dumps(_summary("ns_gan", 1, 20.5) | {"device": "gpu", "overrides": ["a.b=1"]}))
    assert fid_study.main(argv) == 0
    table = (results / "table.md").read_text()
    assert "device cpu; gpu;" in table and "overrides: a.b=1; none;" in table
    assert "| ns_gan | 26.5 | 20.00 ± 0.71 | 28.00 ± 0.71 |" in table
    assert "| 2 | 19.50, 20.50 |" in table
    assert "finished 2026-12-01T00:00:00+00:00 to 2026-12-02T00:00:00+00:00" in table


def test_floors_as_they_are_and_padded_are_measured_and_reported_apart(tmp_path, monkeypatch):
    """`floor --floor-resolution 32` evaluates both splits padded to 32 (evaluate's --resolution,
    tested there) into files of their own; the report gives each fit its row, and a floor of
    float16 weights (a GPU host's) a file and row apart from the float32 one."""
    out, results = tmp_path / "runs", tmp_path / "results"
    calls = []

    def evaluate_once(path, argv):
        fit = "pad to 32x32" if "--resolution" in argv else None
        resize = argv[argv.index("--resize") + 1]
        storage = argv[argv.index("--storage") + 1] if "--storage" in argv else "float32"
        result = {"metrics": {"fid10k": 3.0 + (fit is not None) + (resize == "clean")
                              + (storage == "float16") / 100, "kid10k": 1e-5},
                  "protocol": {"resize": resize, "storage": storage, "compute": "float32",
                               **({"fit": fit} if fit else {})}}
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result))
        calls.append((path.name, argv))
        return result

    monkeypatch.setattr(fid_study, "evaluate_once", evaluate_once)
    assert fid_study.main(["floor", "--out", str(out)]) == 0
    assert fid_study.main(["floor", "--out", str(out), "--floor-resolution", "32"]) == 0
    assert fid_study.main(["floor", "--out", str(out), "--floor-resolution", "32",
                           "eval.storage=float16"]) == 0
    assert [name for name, _ in calls] == [
        "floor_tf_legacy.json", "floor_clean.json", "floor_tf_legacy_pad32.json",
        "floor_clean_pad32.json", "floor_tf_legacy_pad32_storage-float16.json",
        "floor_clean_pad32_storage-float16.json"]
    calls = calls[:4]
    assert all(argv[-4:] == ["--resolution", "32", "--fit", "pad"] for _, argv in calls[2:])
    assert not any("--resolution" in argv for _, argv in calls[:2])
    (out / "ns_gan" / "seed_0").mkdir(parents=True)
    (out / "ns_gan" / "seed_0" / "study.json").write_text(json.dumps(_summary("ns_gan", 0, 19.5)))
    assert fid_study.main(["report", "--out", str(out), "--results", str(results)]) == 0
    table = (results / "table.md").read_text()
    assert "| real data (10k train vs test) | 3.13 clean | 3.00 | 4.00 | 0.01 | 0.01 |" in table
    paper, other = table.split("Other recipes")
    assert "| real data (10k train vs test, pad to 32x32) | 4.00 | 5.00 |" in other
    assert ("| real data (10k train vs test, pad to 32x32, storage float16) | 4.01 | 5.01 |"
            in other)
    assert "pad to 32x32" not in paper and "| ns_gan | 26.5 | 19.50 |" in paper


def test_the_floor_takes_the_data_and_fid_network_overrides_and_refuses_the_others(
        tmp_path, monkeypatch, capsys):
    """A machine without the Debian files or the float32 weights (a GPU host given staged
    files) points the floor at them; a training override would be silently meaningless."""
    calls = []
    monkeypatch.setattr(fid_study, "evaluate_once", lambda path, argv: (
        calls.append(argv), {"metrics": {"fid10k": 3.0}, "protocol": {
            "resize": "clean", **({"fit": "pad to 32x32"} if "--fit" in argv else {})}})[1])
    argv = ["floor", "--out", str(tmp_path), "--floor-resolution", "32"]
    assert fid_study.main([*argv, "data.dir=/staged/fashion-mnist",
                           "eval.storage=float16"]) == 0
    assert len(calls) == 2
    for flags in calls:
        assert flags[flags.index("--data-dir") + 1] == "/staged/fashion-mnist"
        assert flags[flags.index("--storage") + 1] == "float16"
        assert flags[flags.index("--fit") + 1] == "pad"
    # The floor of the images as they are takes them too.
    assert fid_study.main(["floor", "--out", str(tmp_path), "data.dir=/staged"]) == 0
    assert all(flags[flags.index("--data-dir") + 1] == "/staged" and "--fit" not in flags
               for flags in calls[2:])
    assert fid_study.main([*argv, "train.seed=3"]) == 2
    assert len(calls) == 4  # refused before any evaluation
    error = capsys.readouterr().err
    assert "train.seed does not apply to the real-data floor" in error and "data.dir" in error
    assert "Traceback" not in error


def test_a_second_recipe_of_a_loss_is_compared_with_that_loss_published_figure(tmp_path):
    out, results = tmp_path / "runs", tmp_path / "results"
    (out / "wgan_narrow" / "seed_0").mkdir(parents=True)
    (out / "wgan_narrow" / "seed_0" / "study.json").write_text(
        json.dumps(_summary("wgan_narrow", 0, 30.0)))
    assert fid_study.main(["report", "--out", str(out), "--results", str(results)]) == 0
    table = (results / "table.md").read_text()
    assert "| wgan_narrow | 21.5 | 30.00 | 38.00 |" in table
    assert "| wgan | 21.5 | not run yet |" in table


def test_trained_weights_of_finished_ema_runs_are_evaluated_once_and_reported(
        tmp_path, monkeypatch, capsys):
    """--trained-weights evaluates a finished run that keeps an EMA again with G's trained
    weights (both protocols, no standing statistics), adds them to its summary, and the report
    gives them a row of their own; runs without an EMA are left as they were."""
    out, results = tmp_path / "runs", tmp_path / "results"
    for row in ("dcgan_ns_ema", "dcgan_ns"):
        (out / row / "seed_0").mkdir(parents=True)
        (out / row / "seed_0" / "study.json").write_text(json.dumps(_summary(row, 0, 20.0)))
    calls = []

    def evaluate_once(path, argv):
        calls.append((path.name, argv))
        tf_legacy = "tf_legacy" in argv
        return {"metrics": {"fid10k": 23.0 if tf_legacy else 30.0,
                            "kid10k": 0.013 if tf_legacy else 0.02}}

    monkeypatch.setattr(fid_study, "evaluate_once", evaluate_once)
    argv = ["--experiment", "experiments/configs/best_fashion_mnist.py", "--out", str(out),
            "--rows", "dcgan_ns_ema,dcgan_ns", "--trained-weights", "--results", str(results)]
    assert fid_study.main(["run", *argv]) == 0
    assert [name for name, _ in calls] == ["final_trained_clean.json",
                                           "final_trained_tf_legacy.json"]
    for _, flags in calls:
        assert flags[flags.index("--run") + 1] == str(out / "dcgan_ns_ema" / "seed_0")
        assert flags[flags.index("--generator") + 1] == "trained"
        assert flags[flags.index("--standing-stats") + 1] == "0"
    summary = json.loads((out / "dcgan_ns_ema" / "seed_0" / "study.json").read_text())
    assert summary["trained_weights"] == {"final_fid": 30.0, "final_kid": 0.02,
                                          "tf_legacy_fid": 23.0, "tf_legacy_kid": 0.013}
    assert "trained_weights" not in json.loads(
        (out / "dcgan_ns" / "seed_0" / "study.json").read_text())
    capsys.readouterr()
    assert fid_study.main(["run", *argv]) == 0  # done: nothing evaluated again
    assert len(calls) == 2 and capsys.readouterr().out.count("done before, skipped") == 2
    assert fid_study.main(["report", *argv]) == 0
    table = (results / "table.md").read_text()
    paper, other = table.split("Other recipes")  # rows with no published figure apart
    assert "| dcgan_ns_ema | 20.00 | 28.00 |" in other and "dcgan" not in paper
    assert ("| dcgan_ns_ema, trained weights (no EMA) | 23.00 | 30.00 | 13.00 | 20.00 | 1 | "
            "23.00 | the same runs |") in other
    assert "| row | fid10k tf_legacy |" in other and "| row | published |" in paper
    _assert_every_row_fills_its_table(table)


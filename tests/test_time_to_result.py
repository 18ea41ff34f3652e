"""The time to a result: a run's training clock across restarts, and bisection over its
checkpoints, on made-up logs."""

import json
import math
from pathlib import Path

import numpy as np

from experiments import time_to_result
from gan_jax.config import load_config

# 64 images per step (batch 64, one critic update): kimg = 0.064 x step.
CONFIG = load_config("experiments/configs/lucic_fashion_mnist.py:lsgan")


def write_log(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_time_to_pass_leaves_out_evaluations(tmp_path):
    write_log(tmp_path, [
        {"step": 10, "kimg": 1.0, "wall_s": 5.0, "d_loss": 1.0},
        {"step": 10, "kimg": 1.0, "wall_s": 8.0, "eval_s": 3.0, "fid10k": 40.0},
        {"step": 20, "kimg": 2.0, "wall_s": 12.0, "d_loss": 1.0},
        {"step": 20, "kimg": 2.0, "wall_s": 16.0, "eval_s": 4.0, "fid10k": 20.0},
        {"step": 30, "kimg": 3.0, "wall_s": 20.0, "eval_s": 2.0, "fid10k": 25.0},
    ])
    summary = time_to_result.summarize(tmp_path, "fid10k", pass_fid=26.5)
    assert summary["seconds_to_pass"] == 16.0 - 3.0 - 4.0
    assert (summary["final_fid"], summary["best_fid"], summary["kimg"]) == (25.0, 20.0, 3.0)
    assert summary["train_s"] == 20.0 - 9.0 and summary["evaluation_s"] == 9.0
    assert summary["restarts"] == 0
    assert [p["fid"] for p in summary["curve"]] == [40.0, 20.0, 25.0]
    assert time_to_result.describe_time_to_pass(summary) == "0.1 min"  # 9 s


def test_a_run_evaluated_only_at_its_end_has_only_an_upper_bound(tmp_path):
    write_log(tmp_path, [{"step": 30, "kimg": 3.0, "wall_s": 120.0, "eval_s": 60.0,
                          "fid10k": 15.0}])
    summary = time_to_result.summarize(tmp_path, "fid10k", pass_fid=26.5)
    assert summary["final_fid"] == 15.0 and summary["seconds_to_pass"] is None
    assert time_to_result.describe_time_to_pass(summary) == (
        "at most 1.0 min (2.0 with its evaluation; evaluated at 3 kimg only)")
    failed = time_to_result.summarize(tmp_path, "fid10k", pass_fid=10.0)
    assert time_to_result.describe_time_to_pass(failed) == "not evaluated during the run"


def test_a_row_of_several_seeds_shows_its_timed_seeds_or_its_tightest_bound():
    def end_only(seed, fid, train_s, pass_fid=26.5):
        return {"seed": seed, "pass_fid": pass_fid, "seconds_to_pass": None,
                "evaluation_s": 60.0, "curve": [{"kimg": 1200.0, "fid": fid, "train_s": train_s}]}

    bounds = [end_only(0, 24.0, 1800.0), end_only(1, 24.0, 1200.0), end_only(2, 30.0, 600.0)]
    assert time_to_result.describe_row_time_to_pass(bounds) == (
        "seed 1: at most 20.0 min (21.0 with its evaluation; evaluated at 1200 kimg only); "
        "at their end, 1 of 2 other seeds passed too")
    assert time_to_result.describe_row_time_to_pass(bounds[1:]).endswith(
        "; at their end, 0 of 1 other seed passed too")  # seed 2 did not pass
    assert time_to_result.describe_row_time_to_pass(bounds[2:]) == "not evaluated during the run"
    assert time_to_result.describe_row_time_to_pass([bounds[2], end_only(3, 31.0, 9.0)]) == (
        "not evaluated during the run")
    curve = {"seed": 4, "pass_fid": 26.5, "seconds_to_pass": 540.0, "restarts": 0,
             "curve": [{"kimg": 600.0, "fid": 25.0, "train_s": 540.0}, *bounds[0]["curve"]]}
    assert time_to_result.describe_row_time_to_pass([*bounds, curve]) == "seed 4: 9.0 min"
    assert time_to_result.describe_row_time_to_pass([curve]) == "9.0 min"


def test_a_resumed_run_adds_each_process_once(tmp_path):
    write_log(tmp_path, [
        {"step": 10, "kimg": 1.0, "wall_s": 8.0, "eval_s": 3.0, "fid10k": 40.0},
        {"step": 15, "kimg": 1.5, "wall_s": 10.0, "d_loss": 1.0},  # then killed
        {"step": 20, "kimg": 2.0, "wall_s": 2.0, "d_loss": 1.0},  # a new process
        {"step": 20, "kimg": 2.0, "wall_s": 6.0, "eval_s": 3.0, "fid10k": 20.0},
        {"step": 30, "kimg": 3.0, "wall_s": 1.0, "d_loss": 1.0},  # and another
        {"step": 30, "kimg": 3.0, "wall_s": 4.0, "eval_s": 2.0, "fid10k": 15.0},
    ])
    summary = time_to_result.summarize(tmp_path, "fid10k", pass_fid=26.5)
    # The first process trained 10 - 3 s, the second 3 s before its evaluation.
    assert summary["seconds_to_pass"] == (10.0 - 3.0) + (6.0 - 3.0)
    assert summary["train_s"] == (10.0 - 3.0) + (6.0 - 3.0) + (4.0 - 2.0)
    assert summary["restarts"] == 2
    assert [p["train_s"] for p in summary["curve"]] == [5.0, 10.0, 12.0]
    assert time_to_result.describe_time_to_pass(summary) == "0.2 min (2 restarts)"


def test_bisection_finds_the_first_passing_checkpoint_with_few_evaluations():
    rng = np.random.default_rng(0)
    for count in (1, 2, 3, 7, 20, 33):
        steps = sorted(rng.choice(np.arange(1, 10 * count), count, replace=False).tolist())
        falling = np.sort(rng.uniform(10, 60, count))[::-1].tolist()  # a falling FID
        fid = dict(zip(steps, falling))
        for pass_fid in (5.0, *falling, 70.0):
            evaluated = []
            first, fids = time_to_result.first_passing(
                steps, lambda step: evaluated.append(step) or fid[step], pass_fid)
            expected = next((s for s in steps if fid[s] <= pass_fid), None)  # a linear scan
            assert first == expected, (count, pass_fid)
            assert fids == {s: fid[s] for s in evaluated}
            assert len(evaluated) <= 1 + math.ceil(math.log2(count + 1))


def test_a_bisection_is_timed_from_the_kept_checkpoints(tmp_path):
    # A made-up run: a checkpoint every 10 steps (of 64 images), 2 s of training per step, and
    # one restart (its 3 s of start-up counted) after step 20.
    write_log(tmp_path, [
        {"step": 10, "kimg": 0.64, "wall_s": 20.0, "d_loss": 1.0},
        {"step": 20, "kimg": 1.28, "wall_s": 40.0, "d_loss": 1.0},
        {"step": 30, "kimg": 1.92, "wall_s": 23.0, "d_loss": 1.0},
        {"step": 40, "kimg": 2.56, "wall_s": 43.0, "d_loss": 1.0},
        {"step": 40, "kimg": 2.56, "wall_s": 50.0, "eval_s": 7.0, "fid10k": 20.0}])
    for step in (10, 20, 30, 40):
        (tmp_path / "checkpoints" / str(step)).mkdir(parents=True)
    fids = {10: 40.0, 20: 30.0, 30: 25.0}
    evaluated = []

    def evaluate_step(step):
        evaluated.append(step)
        return {"metrics": {"fid10k": fids[step]}, "eval_s": 60.0}

    summary = {"metric": "fid10k", **time_to_result.summarize(tmp_path, "fid10k", 26.5)}
    timed = time_to_result.bisect_time_to_pass(tmp_path, summary, CONFIG, evaluate_step)
    assert sorted(evaluated) == [20, 30]
    assert (timed["pass_step"], timed["pass_kimg"]) == (30, 1.92)
    assert timed["seconds_to_pass"] == 40.0 + 23.0  # the first process's 40 s, then 23
    assert [p["fid"] for p in timed["bisection"]] == [30.0, 25.0, 20.0]
    assert time_to_result.describe_time_to_pass({**summary, **timed}) == (
        "1.1 min, 2.0 with its evaluation (1.92 kimg; bisection over checkpoints every 60 "
        "kimg: clean FID 30.00 at 1.28, 25.00 at 1.92, 20.00 at 2.56 kimg)")
    strict = {**summary, "pass_fid": 10.0}
    failing = {**strict, **time_to_result.bisect_time_to_pass(tmp_path, strict, CONFIG,
                                                              evaluate_step)}
    assert failing["seconds_to_pass"] is None and len(failing["bisection"]) == 1
    assert time_to_result.describe_time_to_pass(failing).startswith("not reached (bisection over")

"""How long a training run took to reach a FID: its training clock, its curve, and bisection.

A study's time to a result counts training only (evaluations are reported beside it), across
every process a resumed run took. `summarize` reads it off the run's log for the evaluations
made during the run; `bisect_time_to_pass` finds it afterwards from checkpoints kept along the
way, with about log2 of their count evaluations instead of one per checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gan_jax.config import Config
from gan_jax.errors import UserError


def training_clock(workdir: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl, each with `train_s`: the training seconds before it.

    Training time leaves the evaluations out. A resumed run's log holds one segment per
    process (`wall_s` restarts at 0; the rows after the checkpoint it resumed from were
    dropped), so each segment's time up to its last kept row is added once: the time of an
    uninterrupted run plus each restart's start-up (data, compilation). An evaluation's row
    holds the time before the evaluation.
    """
    rows, last_wall, finished_segments, segment_evals, process = [], 0.0, 0.0, 0.0, 0
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        wall, eval_s = row.get("wall_s", last_wall), row.get("eval_s", 0.0)
        if wall < last_wall:  # a new process: close the previous segment
            process += 1
            finished_segments += last_wall - segment_evals
            segment_evals = 0.0
        last_wall = wall
        rows.append({**row, "train_s": finished_segments + wall - segment_evals - eval_s,
                     "process": process})
        segment_evals += eval_s
    return rows


def summarize(workdir: Path, metric: str, pass_fid: float) -> dict[str, Any]:
    """The study's numbers for one finished run, from its metrics.jsonl (clean FID), with the
    training time as `training_clock` counts it."""
    rows = training_clock(workdir)
    evaluations = [r for r in rows if metric in r]
    if not evaluations:
        raise UserError(f"{workdir} has no '{metric}' rows; was eval.metrics set?")
    curve = [{"kimg": r["kimg"], "fid": r[metric], "train_s": r["train_s"], "eval_s": r["eval_s"]}
             for r in evaluations]
    passing = [p["train_s"] for p in curve if p["fid"] <= pass_fid]
    return {"final_fid": curve[-1]["fid"], "best_fid": min(p["fid"] for p in curve),
            "final_kid": evaluations[-1].get(metric.replace("fid", "kid")),
            "kimg": curve[-1]["kimg"], "pass_fid": pass_fid,
            # Evaluated at the end only: when it got there is not known.
            "seconds_to_pass": passing[0] if passing and len(curve) > 1 else None,
            "restarts": rows[-1]["process"], "curve": curve, "train_s": rows[-1]["train_s"],
            "evaluation_s": sum(r["eval_s"] for r in evaluations)}


def first_passing(steps: list[int], fid_at: Callable[[int], float],
                  pass_fid: float) -> tuple[int | None, dict[int, float]]:
    """The first of `steps` (ascending) whose FID is at most `pass_fid`, by bisection, and
    every FID it evaluated; None when the last step does not pass.

    Bisection takes about log2(len(steps)) evaluations instead of one per checkpoint, and it
    finds the first passing checkpoint where the FID falls from one checkpoint to the next, as
    a run's does on the whole; where it wavers around `pass_fid`, it finds a checkpoint that
    passes right after one that does not.
    """
    fids = {steps[-1]: fid_at(steps[-1])}
    if fids[steps[-1]] > pass_fid:
        return None, fids
    failing, passing = -1, len(steps) - 1  # indices: the step before the first is taken to fail
    while passing - failing > 1:
        middle = (failing + passing) // 2
        fids[steps[middle]] = fid_at(steps[middle])
        if fids[steps[middle]] <= pass_fid:
            passing = middle
        else:
            failing = middle
    return steps[passing], fids


def bisect_time_to_pass(workdir: Path, summary: dict[str, Any], config: Config,
                        evaluate_step: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """The training time to the first kept checkpoint whose FID is at most the summary's
    `pass_fid`, found by `first_passing` over the run's checkpoints. `summary` is the run's
    (`summarize`, with its `metric`); `evaluate_step(step)` evaluates a checkpoint, returning
    the evaluation CLI's result with its `eval_s`. Its numbers, for the study's summary."""
    from gan_jax.batching import images_before
    from gan_jax.checkpoint import checkpoint_steps
    from gan_jax.models import run_batching
    fid = summary["metric"]
    steps = checkpoint_steps(workdir / "checkpoints")
    final_step = steps[-1]
    evaluation_s = {final_step: summary["curve"][-1]["eval_s"]}

    def fid_at(step: int) -> float:
        if step == final_step:
            return summary["final_fid"]
        result = evaluate_step(step)
        evaluation_s[step] = result["eval_s"]
        return result["metrics"][fid]

    first, fids = first_passing(steps, fid_at, summary["pass_fid"])
    clock = [r for r in training_clock(workdir) if "step" in r]
    # Linear between the log's rows (a few seconds apart), and the first row's time before it.
    train_s = lambda step: float(np.interp(step, [r["step"] for r in clock],  # noqa: E731
                                           [r["train_s"] for r in clock]))
    batching = run_batching(config)
    kimg = lambda step: float(images_before(batching, step)) / 1000  # noqa: E731
    probes = [{"step": step, "kimg": kimg(step), "fid": value, "train_s": train_s(step)}
              for step, value in sorted(fids.items())]
    result = {"time_to_pass_by": "bisection", "bisection": probes,
              "checkpoint_every_kimg": config.train.checkpoint_every_kimg}
    if first is None:
        return result
    return {**result, "seconds_to_pass": train_s(first), "pass_step": first,
            "pass_kimg": kimg(first), "pass_evaluation_s": evaluation_s[first]}


def describe_time_to_pass(summary: dict[str, Any]) -> str:
    if summary.get("time_to_pass_by") == "bisection":
        return _describe_bisection(summary)
    if summary["seconds_to_pass"] is None:
        curve = summary["curve"]
        if len(curve) > 1:
            return "not reached"
        if curve[0]["fid"] > summary["pass_fid"]:
            return "not evaluated during the run"
        # Evaluated at the end only, and passed there: when it first got there is not known,
        # but it was no later than the end; its one evaluation is what a user waits for too.
        train, evaluation = curve[0]["train_s"] / 60, summary["evaluation_s"] / 60
        return (f"at most {train:.1f} min ({train + evaluation:.1f} with its evaluation; "
                f"evaluated at {curve[0]['kimg']:g} kimg only)")
    restarts = summary["restarts"]
    note = f" ({restarts} restart{'s' * (restarts > 1)})" if restarts else ""
    return f"{summary['seconds_to_pass'] / 60:.1f} min{note}"


def describe_row_time_to_pass(runs: list[dict[str, Any]]) -> str:
    """One table cell for a row's seeds: those timed along the way or by bisection, each
    named by its seed; with none timed, the tightest upper bound of the seeds evaluated at
    their end only (each seed's bound would say little more, at many times the length)."""
    if len(runs) == 1:
        return describe_time_to_pass(runs[0])
    timed = [s for s in runs if s.get("time_to_pass_by") == "bisection" or len(s["curve"]) > 1]
    if timed:
        return "; ".join(f"seed {s['seed']}: {describe_time_to_pass(s)}" for s in timed)
    bounded = [s for s in runs if s["curve"][-1]["fid"] <= s["pass_fid"]]
    if not bounded:
        return describe_time_to_pass(runs[0])
    best = min(bounded, key=lambda s: s["curve"][-1]["train_s"])
    others = len(runs) - 1
    return (f"seed {best['seed']}: {describe_time_to_pass(best)}; at their end, "
            f"{len(bounded) - 1} of {others} other seed{'s' * (others > 1)} passed too")


def _describe_bisection(summary: dict[str, Any]) -> str:
    probes = ", ".join(f"{p['fid']:.2f} at {p['kimg']:.4g}" for p in summary["bisection"])
    found = (f"bisection over checkpoints every {summary['checkpoint_every_kimg']:g} kimg: "
             f"clean FID {probes} kimg")
    if summary["seconds_to_pass"] is None:
        return f"not reached ({found})"
    train = summary["seconds_to_pass"] / 60
    evaluation = summary["pass_evaluation_s"] / 60
    return (f"{train:.1f} min, {train + evaluation:.1f} with its evaluation "
            f"({summary['pass_kimg']:.4g} kimg; {found})")

"""The Fashion-MNIST FID study: the "Are GANs Created Equal?" table, measured at its protocol.

    python -m experiments.fid_study floor --out runs/fid_study [--floor-resolution 32]
    python -m experiments.fid_study run --out runs/fid_study [--rows ns_gan,lsgan] \
        [section.key=value ...]
    python -m experiments.fid_study report --out runs/fid_study \
        --results experiments/results/fid_fashion_mnist

Protocol (Lucic et al. 2018, arXiv 1711.10337): the paper's InfoGAN-style networks
(experiments/configs/lucic_fashion_mnist.py), at most 20 epochs (1200 kimg) of real images
shown to D, FID between 10k generated images and the 10k test images, grayscale replicated to
3 channels. Two resize protocols: `tf_legacy` (TensorFlow's bilinear resize, the paper's
pipeline: the column to compare with the paper) and `clean` (PIL bicubic, gan_jax's default);
KID beside both. Each row has one recipe, not the paper's best of 100 configurations.

`floor` measures the real-data floor (10k train images against the 10k test images) under both
protocols; `--floor-resolution 32` measures it for the rows whose models see the images zero-
padded to 32x32 (ProGAN's and BigGAN's Fashion-MNIST recipes), a floor of its own. Its
overrides say where the data is and how the FID network is stored (`data.dir=...`,
`eval.storage=float16`, ...; FLOOR_OVERRIDES); an override about training is refused. A floor
of another network setting than float32 has its own file and row (`..._storage-float16`).

`run` trains every row x seed into `--out/ROW/seed_S`, evaluating fid10k and kid10k (clean) at
the end, and also every `--eval-every-kimg` for the `--curve-rows` (the time-to-result rows;
their `--curve-seeds` only, seed 0 by default), then the final checkpoint under tf_legacy, and
writes a `study.json` summary: the final numbers under both protocols, the curve, and the
training wall clock until the clean FID first reached `--pass-fid` (26.5, the NS GAN's published
best), counting everything from the start of the process except the evaluations themselves (a
resumed run adds each process's time once: its restarts' start-up is counted, the work lost
after its last checkpoint is not). A `--bisect-rows` run is timed more cheaply: it keeps a
checkpoint every `--eval-every-kimg`, and after the run the first of them at or below
`--pass-fid` is found by bisection (about log2 of their count evaluations, e.g. 5 for 20
checkpoints, instead of 20 along the way). With `--trained-weights`, every finished run that
keeps an EMA of G is also evaluated with G's trained weights (both protocols, the training's
BatchNorm statistics): the EMA never feeds back into training, so this is the same run without
it, and the pair measures what the EMA contributes with no training of its own. A run that
diverges (non-finite losses, after the config's rollbacks) is recorded as diverged, and the
study goes on. A run stopped by SIGTERM or SIGINT exits with code 3 after its checkpoint.
Finished runs and finished evaluations are skipped, an interrupted run resumes, and an
interrupted evaluation goes on from the features it had saved (gan_jax.metrics.resumable), so
the study can be spread over several days and machines: each process that works on a run
appends its machine, commit and command to the run's `processes.jsonl`, and the summary keeps
them as `processes`. Overrides apply to every run (e.g. `data.dir=...`). The rows are the
variants of `--experiment` (the paper's table by default); `--rows NAME=VARIANT` names a row
other than its variant, e.g. ProGAN's Fashion-MNIST recipe as `--experiment
experiments/configs/progan.py --rows progan=fashion_mnist`.

`report` copies every study.json (and the floors) into `--results/runs/`, where the summaries of
earlier runs and other machines are kept (a run directory need not outlive its numbers), and
makes markdown tables of all of them (mean and sample std over seeds, each seed): the paper's
rows with their published figures and the real-data floor, then the other recipes measured on
the same data with the floors of fitted images (`--floor-resolution`); it copies seed 0's final
sample grid of each row whose run directory is at hand beside it, upscaled x3 (nearest
neighbour) so that a 28x28 image is readable on a screen.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from gan_jax import config as config_lib
from experiments.cli import comma_list, run_command
from experiments.provenance import cpu_model, git_commit, usable_cores
from experiments.time_to_result import bisect_time_to_pass, describe_row_time_to_pass, summarize
from gan_jax.errors import UserError
from gan_jax.files import write_text_atomically

# Best FID of each loss on Fashion-MNIST in Lucic et al. 2018 (best of their search, their
# TensorFlow pipeline: compare with the tf_legacy column).
PUBLISHED = {"mm_gan": 29.6, "ns_gan": 26.5, "lsgan": 30.7, "wgan": 21.5, "wgan_gp": 24.5,
             "dragan": 27.7}
# Rows that are a second recipe of a published loss, compared with that loss's figure.
LOSS_OF = {"wgan_narrow": "wgan"}
EXPERIMENT = Path(__file__).parent / "configs" / "lucic_fashion_mnist.py"
RESIZES = ("tf_legacy", "clean")  # the paper's protocol first
REAL_TRAIN, REAL_TEST = "fashion_mnist:train", "fashion_mnist:test"
GRID_UPSCALE = 3
BISECT_SPARE_CHECKPOINTS = 8  # kept beyond the bisection's: a stop adds one
STOPPED = 3  # the exit code of `run` when a SIGTERM/SIGINT stopped a run before its end
# The overrides the real-data floor takes (where the data is, how the FID network is stored
# and run), as the evaluation CLI's flags; the others concern training.
FLOOR_OVERRIDES = {"data.dir": "--data-dir", "eval.storage": "--storage",
                   "eval.weights": "--weights", "eval.compute": "--compute",
                   "eval.batch_size": "--batch-size"}
ROW_NAME = re.compile(r"[\w.-]+")  # a row's directory under --out and its line in the table
PROCESSES = "processes.jsonl"  # in a run directory: each process that worked on it


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.fid_study",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("floor", "run", "report"))
    parser.add_argument("--out", type=Path, default=Path("runs/fid_study"))
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT,
                        help="config file whose variants are the rows")
    parser.add_argument("--rows", default=",".join(PUBLISHED),
                        help="variants of --experiment, each one row; NAME=VARIANT names the "
                        "row (its directory and its line in the table) other than its variant")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--kimg", type=float, default=1200.0, help="real images per run")
    parser.add_argument("--curve-rows", default="ns_gan",
                        help="rows also evaluated every --eval-every-kimg (time to a result)")
    parser.add_argument("--bisect-rows", default="",
                        help="rows whose time to --pass-fid is found after the run, by "
                        "bisection over checkpoints kept every --eval-every-kimg")
    parser.add_argument("--curve-seeds", default="0",
                        help="the seeds of --curve-rows and --bisect-rows timed; the others "
                        "only evaluated at the end (a 10k-image FID costs 10-50 minutes on a CPU)")
    parser.add_argument("--eval-every-kimg", type=float, default=120.0)
    parser.add_argument("--count", type=int, default=10000,
                        help="generated and real images per FID/KID (the paper's 10k)")
    parser.add_argument("--pass-fid", type=float, default=26.5)
    parser.add_argument("--results", type=Path,
                        default=Path("experiments/results/fid_fashion_mnist"),
                        help="report: folder for the markdown table and the sample grids")
    parser.add_argument("--trained-weights", action="store_true",
                        help="also evaluate each finished run's trained G weights instead of "
                        "its EMA (no standing statistics, as a run without the EMA), under both "
                        "protocols: what the EMA contributes, from the same run")
    parser.add_argument("--floor-resolution", type=int,
                        help="floor: both splits brought to this side first (by --floor-fit), "
                        "as a model trained at another resolution sees them, e.g. 32")
    parser.add_argument("--floor-fit", choices=("pad", "resize"),
                        help="floor: how --floor-resolution is reached (default: pad, zeros)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    return parser.parse_intermixed_args(argv)


def metric_names(count: int) -> tuple[str, str]:
    """('fid10k', 'kid10k') for 10000 images; ('fid16', 'kid16') for 16."""
    size = f"{count // 1000}k" if count % 1000 == 0 else str(count)
    return f"fid{size}", f"kid{size}"


def experiment_rows(args: argparse.Namespace) -> tuple[dict[str, str], list[int]]:
    """The rows, each its name and the variant of --experiment it trains, and the seeds."""
    if not args.experiment.is_file():
        raise UserError(f"--experiment {args.experiment} is not a file; pass a config file "
                        "such as experiments/configs/lucic_fashion_mnist.py")
    rows = {}
    for item in filter(None, args.rows.split(",")):
        name, named, variant = item.partition("=")
        variant = variant if named else name
        if not (name and variant) or (named and not ROW_NAME.fullmatch(name)):
            raise UserError(f"--rows: {item!r} is not VARIANT or NAME=VARIANT (a name of "
                            "letters, digits, '.', '_' and '-')")
        if name in rows:
            raise UserError(f"--rows: row {name!r} is repeated; give each row its own name")
        config_lib.load_config(f"{args.experiment}:{variant}")  # an unknown variant: one line
        rows[name] = variant
    return rows, comma_list(args.seeds, int, "--seeds")


def timing(row: str, seed: int, args: argparse.Namespace) -> str | None:
    """How this run's time to --pass-fid is found: 'curve', 'bisect' or None (not timed)."""
    curve, bisect = args.curve_rows.split(","), args.bisect_rows.split(",")
    if row in curve and row in bisect:
        raise UserError(f"row {row} is in both --curve-rows and --bisect-rows; a run is timed "
                        "one way: evaluated along the way, or by bisection after it")
    if seed not in comma_list(args.curve_seeds, int, "--curve-seeds"):
        return None
    return "curve" if row in curve else "bisect" if row in bisect else None


def run_config(row: str, seed: int, args: argparse.Namespace,
               variant: str | None = None) -> config_lib.Config:
    """The config of `row` (the variant of --experiment of that name, unless `variant` is
    given) trained at the study's protocol with `seed`."""
    config = config_lib.load_config(f"{args.experiment}:{variant or row}")
    timed = timing(row, seed, args)
    protocol = {"train.seed": seed, "train.total_kimg": args.kimg,
                "eval.metrics": ",".join(metric_names(args.count)), "eval.resize": "clean",
                "eval.every_kimg": args.eval_every_kimg if timed == "curve" else None}
    if timed == "bisect":
        # Every checkpoint kept, with room for those a stop (SIGTERM) adds between them.
        protocol |= {"train.checkpoint_every_kimg": args.eval_every_kimg,
                     "train.keep_checkpoints": math.ceil(args.kimg / args.eval_every_kimg)
                     + BISECT_SPARE_CHECKPOINTS}
    user = dict(config_lib.parse_override(o) for o in args.overrides)
    return config_lib.with_overrides(config, {**protocol, **user})


def environment() -> dict[str, Any]:
    """What a result was measured with: device, versions, the machine, the code, the command."""
    import flax
    import jax
    import optax
    return {"device": jax.devices()[0].device_kind, "devices": jax.device_count(),
            "cpu": cpu_model(), "cpu_cores": usable_cores(), "commit": git_commit(),
            "command": " ".join(["python -m experiments.fid_study", *sys.argv[1:]]),
            "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "python": sys.version.split()[0],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def record_process(workdir: Path) -> None:
    """Appends this process's machine, code and command to the run's `processes.jsonl` before
    it works on the run (trains it, or resumes its final evaluations): a run resumed over
    several sessions (or machines) keeps each one, where the summary's own `commit` and `cpu`
    are those of the process that finished it."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / PROCESSES, "a") as log:
        log.write(json.dumps(environment()) + "\n")


def processes(workdir: Path) -> list[dict[str, Any]]:
    """The training processes `record_process` recorded for this run, first to last."""
    path = workdir / PROCESSES
    if not path.is_file():  # trained before processes were recorded
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def provenance(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A summary's record of how its run was made: this process's environment, the study's
    overrides and every process that worked on the run."""
    return {**environment(), "overrides": args.overrides, "processes": processes(workdir)}


def evaluate_once(path: Path, argv: list[str]) -> dict[str, Any]:
    """experiments.evaluate with `argv`, its result cached in `path` (skipped when there)."""
    if path.is_file():
        return json.loads(path.read_text())
    import time

    from experiments import evaluate
    started = time.perf_counter()
    result = evaluate.evaluate(evaluate.parse_args(argv))
    result["eval_s"] = time.perf_counter() - started
    result.update(environment())
    write_text_atomically(path, json.dumps(result, indent=1))
    return result


def _evaluate_argv(args: argparse.Namespace, resize: str, *source: str) -> list[str]:
    return [*source, "--metrics", ",".join(metric_names(args.count)), "--resize", resize,
            *(["--no-progress"] if args.no_progress else [])]


def floor(args: argparse.Namespace) -> None:
    """The real-data floor: `--count` train images against the test images, per protocol
    (and at --floor-resolution, for rows whose models see the images padded or resized)."""
    fid, _ = metric_names(args.count)
    fit_flags, suffix = [], ""  # the images as they are
    if args.floor_resolution is not None:
        fit = args.floor_fit or "pad"
        fit_flags = ["--resolution", str(args.floor_resolution), "--fit", fit]
        suffix = f"_{fit}{args.floor_resolution}"
    elif args.floor_fit is not None:
        raise UserError(f"--floor-fit {args.floor_fit} says how to reach --floor-resolution; "
                        "give --floor-resolution too (e.g. --floor-resolution 32)")
    evaluation_flags = _floor_flags(args.overrides)
    suffix += _floor_network_suffix(args.overrides)
    for resize in RESIZES:
        result = evaluate_once(args.out / f"floor_{resize}{suffix}.json", [
            *_evaluate_argv(args, resize, "--images", REAL_TRAIN, "--reference", REAL_TEST),
            *fit_flags, *evaluation_flags])
        fitted = f", {result['protocol']['fit']}" if fit_flags else ""
        print(f"floor ({resize}{fitted}): {fid} {result['metrics'][fid]:.3f}", flush=True)


def _floor_flags(overrides: list[str]) -> list[str]:
    """The evaluation CLI's flags for the floor's overrides (FLOOR_OVERRIDES); any other
    override is refused, since the floor trains nothing it could apply to."""
    flags = []
    for text in overrides:
        key, value = config_lib.parse_override(text)
        if key not in FLOOR_OVERRIDES:
            raise UserError(f"floor: {key} does not apply to the real-data floor (it sets its "
                            f"own protocol and trains no model); it takes "
                            f"{', '.join(FLOOR_OVERRIDES)}")
        flags += [FLOOR_OVERRIDES[key], value]
    return flags


# The FID network's settings (eval.<name>, and the name in an evaluation's protocol) whose other
# values change a floor's numbers (float16 weights, as GPU hosts store them, move it by ~0.06%):
# its file and its row name them, so that floors of two machines can share a results folder.
FLOOR_NETWORK_DEFAULTS = {"storage": "float32", "compute": "float32"}


def _non_default_network(settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """The (name, value) of each FLOOR_NETWORK_DEFAULTS setting `settings` gives otherwise."""
    return [(name, settings[name]) for name, default in FLOOR_NETWORK_DEFAULTS.items()
            if settings.get(name, default) != default]


def _floor_network_suffix(overrides: list[str]) -> str:
    """"" for the default network, else e.g. "_storage-float16"."""
    given = {key.removeprefix("eval."): value
             for key, value in map(config_lib.parse_override, overrides)}
    return "".join(f"_{name}-{value}" for name, value in _non_default_network(given))


def _network_label(protocol: dict[str, Any]) -> str:
    """"" for the default network, else e.g. "storage float16", from an evaluation's protocol."""
    return ", ".join(f"{name} {value}" for name, value in _non_default_network(protocol))


def run(args: argparse.Namespace) -> int:
    rows, seeds = experiment_rows(args)
    configs = {(row, seed): run_config(row, seed, args, variant)  # all checked first
               for row, variant in rows.items() for seed in seeds}
    from gan_jax.loop import TrainingDiverged, total_steps, train
    # The evaluation CLI too, now: a study runs for hours, and a module first imported hours
    # later would be the code on disk then, not the code the run started with.
    from experiments import evaluate  # noqa: F401
    fid, kid = metric_names(args.count)
    for (row, seed), config in configs.items():
        workdir = args.out / row / f"seed_{seed}"
        # What the row is, beside the command (its summary is kept after the run is gone).
        identity = {"row": row, "seed": seed, "experiment": str(args.experiment),
                    "variant": rows[row], "metric": fid, "pass_fid": args.pass_fid}
        summary_path = workdir / "study.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            if not _wants_trained_weights(args, config, summary):
                print(f"{row} seed {seed}: done before, skipped", flush=True)
                continue
        else:
            record_process(workdir)
            try:
                state = train(config, workdir, progress=not args.no_progress)
            except TrainingDiverged as diverged:  # a result of the recipe: recorded, not retried
                summary = {**identity, "diverged": str(diverged), **provenance(workdir, args)}
                write_text_atomically(summary_path, json.dumps(summary, indent=1))
                print(f"{row} seed {seed}: {diverged}", flush=True)
                continue
            if int(state.step) < total_steps(config):
                print(f"{row} seed {seed}: stopped at step {int(state.step)}; run again to "
                      "resume", flush=True)
                return STOPPED  # so that a script running several commands stops here too
            legacy = evaluate_once(workdir / "final_tf_legacy.json",
                                   _evaluate_argv(args, "tf_legacy", "--run", str(workdir)))
            summary = {**identity, **summarize(workdir, fid, args.pass_fid),
                       "tf_legacy_fid": legacy["metrics"][fid],
                       "tf_legacy_kid": legacy["metrics"][kid],
                       "tf_legacy_eval_s": legacy["eval_s"], **provenance(workdir, args)}
            if timing(row, seed, args) == "bisect":
                summary |= bisect_time_to_pass(workdir, summary, config, lambda step: (
                    evaluate_once(workdir / "bisection" / f"step_{step}_clean.json",
                                  _evaluate_argv(args, "clean", "--run", str(workdir),
                                                 "--step", str(step)))))
        if _wants_trained_weights(args, config, summary):
            summary["trained_weights"] = evaluate_trained_weights(workdir, args)
        write_text_atomically(summary_path, json.dumps(summary, indent=1))
        trained = summary.get("trained_weights", {}).get("tf_legacy_fid")
        print(f"{row} seed {seed}: {fid} tf_legacy {summary['tf_legacy_fid']:.2f}, clean "
              f"{summary['final_fid']:.2f}" + (f"; trained weights (no EMA) tf_legacy "
                                               f"{trained:.2f}" if trained else ""), flush=True)
    return 0


def _wants_trained_weights(args: argparse.Namespace, config: config_lib.Config,
                           summary: dict[str, Any]) -> bool:
    return (args.trained_weights and config.optim.ema_kimg is not None
            and "diverged" not in summary and "trained_weights" not in summary)


def evaluate_trained_weights(workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    """The final checkpoint's FID and KID under both protocols with G's trained weights
    instead of its EMA, and the training's running BatchNorm statistics (no standing
    statistics): how the same run without an EMA would be evaluated, since the EMA never feeds
    back into training. Keyed like the summary's own numbers; each cached in the run."""
    fid, kid = metric_names(args.count)
    values = {}
    for resize, prefix in (("clean", "final_"), ("tf_legacy", "tf_legacy_")):
        result = evaluate_once(workdir / f"final_trained_{resize}.json", [
            *_evaluate_argv(args, resize, "--run", str(workdir)), "--generator", "trained",
            "--standing-stats", "0"])
        values |= {f"{prefix}fid": result["metrics"][fid], f"{prefix}kid": result["metrics"][kid]}
    return values


def _mean_std(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def save_grid(source: Path, target: Path) -> None:
    """The sample grid, nearest-neighbour upscaled so that each 28x28 image is readable."""
    from PIL import Image
    with Image.open(source) as image:
        image.resize((image.width * GRID_UPSCALE, image.height * GRID_UPSCALE),
                     Image.Resampling.NEAREST).save(target, optimize=True)


def collect_summaries(out: Path, results: Path) -> list[dict[str, Any]]:
    """Every finished run's summary: those under `out` are first copied into `results/runs/`
    (and the floors into `results/`), and the table is made from what `results` holds. A run
    directory need not outlive its numbers: rows measured on other machines or in earlier
    sessions, whose directories are gone, stay in the table."""
    (results / "runs").mkdir(parents=True, exist_ok=True)
    for path in sorted(out.glob("*/seed_*/study.json")):
        row, seed = path.parent.parent.name, path.parent.name.removeprefix("seed_")
        write_text_atomically(results / "runs" / f"{row}_seed_{seed}.json", path.read_text())
    for floor_path in sorted(out.glob("floor_*.json")):
        write_text_atomically(results / floor_path.name, floor_path.read_text())
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*_seed_*.json"))]


def _row_line(name: str, published: Any, runs: list[dict[str, Any]], seeds: str,
              time_cell: str) -> str:
    """One row of a table; `published` None for a table without that column."""
    pick = lambda key, scale=1: [s[key] * scale for s in runs]  # noqa: E731
    return (f"| {name} |{'' if published is None else f' {published} |'} "
            f"{_mean_std(pick('tf_legacy_fid'))} "
            f"| {_mean_std(pick('final_fid'))} | {_mean_std(pick('tf_legacy_kid', 1e3))} "
            f"| {_mean_std(pick('final_kid', 1e3))} | {seeds} | "
            + ", ".join(f"{v:.2f}" for v in pick("tf_legacy_fid")) + f" | {time_cell} |")


def _empty_cells(published: Any, text: str, seeds: str = "") -> str:
    """A row's cells after its name when it has no numbers: `text` in the first number's cell,
    the seeds in theirs, the others empty."""
    cells = [*([] if published is None else [published]), text, "", "", "", seeds, "", ""]
    return "".join(f" {cell} |" if cell != "" else " |" for cell in cells)


def _floor_lines(results: Path, fid: str, kid: str) -> dict[str, str]:
    """The real-data floors' rows, by what sets them apart: "" for the images as they are with
    the default network, else the fit (e.g. "pad to 32x32") and the network's other settings
    (e.g. "storage float16")."""
    floors: dict[str, dict[str, dict[str, float]]] = {}
    for path in sorted(results.glob("floor_*.json")):
        result = json.loads(path.read_text())
        protocol = result["protocol"]
        label = ", ".join(part for part in (protocol.get("fit", ""), _network_label(protocol))
                          if part)
        floors.setdefault(label, {})[protocol["resize"]] = result["metrics"]
    lines = {}
    for label, measured in sorted(floors.items()):
        cell = lambda resize, name, scale=1: (  # noqa: E731
            f"{measured[resize][name] * scale:.2f}" if resize in measured else "not measured")
        numbers = (f"{cell('tf_legacy', fid)} | {cell('clean', fid)} "
                   f"| {cell('tf_legacy', kid, 1e3)} | {cell('clean', kid, 1e3)} | | | |")
        lines[label] = (f"| real data (10k train vs test, {label}) | {numbers}" if label else
                        f"| real data (10k train vs test) | 3.13 clean | {numbers}")
    return lines


def _row_lines(row: str, published: Any, summaries: list[dict[str, Any]]) -> list[str]:
    """A row's line (mean ± std over its seeds, or why it has no numbers), and a second line
    for the same runs evaluated with G's trained weights where they were."""
    runs = sorted((s for s in summaries if s["row"] == row), key=lambda s: s["seed"])
    if not runs:
        return [f"| {row} |{_empty_cells(published, 'not run yet')}"]
    diverged = [s["seed"] for s in runs if "diverged" in s]
    seeds = f"{len(runs) - len(diverged)}" + (
        f" (seed{'s' * (len(diverged) > 1)} {', '.join(map(str, diverged))} diverged)"
        if diverged else "")
    runs = [s for s in runs if "diverged" not in s]
    if not runs:
        return [f"| {row} |{_empty_cells(published, 'diverged', seeds)}"]
    lines = [_row_line(row, published, runs, seeds, describe_row_time_to_pass(runs))]
    with_trained = [s for s in runs if "trained_weights" in s]
    if with_trained:  # the same runs evaluated without their EMA
        lines.append(_row_line(f"{row}, trained weights (no EMA)", published,
                               [{**s, **s["trained_weights"]} for s in with_trained],
                               str(len(with_trained)), "the same runs"))
    return lines


def _table_head(fid: str, kid: str, pass_fid: float, published: bool) -> list[str]:
    cells = ["row", *(["published"] if published else []), f"{fid} tf_legacy", f"{fid} clean",
             f"{kid} tf_legacy (x1e3)", f"{kid} clean (x1e3)", "seeds", "tf_legacy per seed",
             f"minutes to clean {fid} ≤ {pass_fid}"]
    return ["| " + " | ".join(cells) + " |", "|---" * len(cells) + "|"]


def report(args: argparse.Namespace) -> str:
    """The table of the paper's rows (with the published figures and the floor of the images as
    they are), then the table of the other recipes measured on the same data (with the floors
    of the images fitted to another resolution, which some of them see)."""
    summaries = collect_summaries(args.out, args.results)
    if not summaries:
        raise UserError(f"no finished runs under {args.out} or {args.results / 'runs'}; run "
                        "`fid_study run` first")
    fid, pass_fid = summaries[0]["metric"], summaries[0]["pass_fid"]
    kid = fid.replace("fid", "kid")
    floors = _floor_lines(args.results, fid, kid)
    paper_rows = [*PUBLISHED, *sorted({s["row"] for s in summaries} & set(LOSS_OF))]
    other_rows = sorted({s["row"] for s in summaries} - set(paper_rows))
    paper = [*_table_head(fid, kid, pass_fid, published=True),
             *([floors[""]] if "" in floors else [])]
    for row in paper_rows:
        paper += _row_lines(row, PUBLISHED[LOSS_OF.get(row, row)], summaries)
    other = [*_table_head(fid, kid, pass_fid, published=False),
             *(line for label, line in sorted(floors.items()) if label)]
    for row in other_rows:
        other += _row_lines(row, None, summaries)
    for row in [*paper_rows, *other_rows]:  # the first finished seed's grid, where at hand
        seeds = sorted(s["seed"] for s in summaries if s["row"] == row and "diverged" not in s)
        grid = seeds and args.out / row / f"seed_{seeds[0]}" / "samples" / "latest.png"
        if grid and grid.is_file():
            save_grid(grid, args.results / f"{row}.png")
    def distinct(describe) -> str:  # each value once: the runs may come from several hosts
        return "; ".join(sorted({describe(s) for s in summaries}))
    header = (f"{len(summaries)} runs; device {distinct(lambda s: s['device'])}; "
              + distinct(lambda s: f"jax {s['jax']}, flax {s['flax']}")
              + f"; finished {min(s['date'] for s in summaries)} to "
              f"{max(s['date'] for s in summaries)}; overrides: "
              + distinct(lambda s: " ".join(s["overrides"]) or "none")
              + "; each run's machine, code and command: its runs/*.json (where recorded; "
              "`processes` lists each process that worked on it) and the results page")
    sections = [header, "", "Lucic et al. 2018's rows (compare the published figure with "
                "tf_legacy):", "", *paper]
    if len(other) > 2:
        sections += ["", "Other recipes on the same data (no published figure; their "
                     "networks and schedules are their own):", "", *other]
    table = "\n".join(sections)
    (args.results / "table.md").write_text(table + "\n")
    print(table)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    git_commit()  # now, so that results written hours later name the code that ran
    return run_command(args.command, {"floor": lambda: floor(args), "run": lambda: run(args),
                                      "report": lambda: report(args)})


if __name__ == "__main__":
    sys.exit(main())

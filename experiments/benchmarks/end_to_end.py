"""End to end vs step only: does a real training run keep the compiled step busy?

    python -m experiments.benchmarks.end_to_end \
        --config experiments/configs/gan_zoo.py:ns_gan --kimg 600 --out runs/bench_e2e

Trains `--config` (with any `section.key=value` overrides) for `--kimg` with the real loop
(`gan_jax.loop.train`: Fashion-MNIST from its idx files, the prefetching input pipeline,
logging, sample grids and checkpoints; no evaluation unless the config asks for it), in a fresh
run directory under --out. Its throughput is the real images shown per second of wall clock
after the first step (compilation), summed over the logging intervals, so samples and
checkpoints count against it. Then, in the same process, the same config's step alone
(train_step_speed.time_train_step) and the input pipeline alone (`data.device_batches` with no
step). Prints the ratio loop / step (the target is at least 0.9) and the host time each step
costs beyond the step itself; writes results.json under --out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from gan_jax import config as config_lib
from gan_jax.errors import UserError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="path/to/config.py[:variant]")
    parser.add_argument("--kimg", type=float, default=600.0, help="length of the timed run")
    parser.add_argument("--samples", type=int, default=5, help="sample grids over the run")
    parser.add_argument("--steps", type=int, default=100, help="steps per step-only repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_e2e"))
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    return parser.parse_args(argv)


def run_config(args: argparse.Namespace) -> config_lib.Config:
    config = config_lib.load_config(args.config)
    timed = {"train.total_kimg": args.kimg, "train.sample_every_kimg": args.kimg / args.samples,
             "train.checkpoint_every_kimg": args.kimg / 2, "train.log_every_kimg": args.kimg / 20,
             "eval.every_kimg": None}
    user = dict(config_lib.parse_override(o) for o in args.overrides)
    return config_lib.with_overrides(config, {**timed, **user})


def loop_throughput(metrics_path: Path) -> tuple[float, int]:
    """Real images per second over the logged intervals after compilation, and their count."""
    images, seconds, previous = 0.0, 0.0, None
    for line in metrics_path.read_text().splitlines():
        row = json.loads(line)
        if "img_per_sec" not in row:
            continue  # an evaluation row
        if previous is not None:
            shown = (row["kimg"] - previous) * 1000
            images += shown
            seconds += shown / row["img_per_sec"]
        previous = row["kimg"]
    if not seconds:
        raise UserError("the run logged fewer than two intervals; raise --kimg")
    return images / seconds, int(images)


def pipeline_throughput(config: config_lib.Config, batches: int = 2000) -> float:
    """Global batches per second that the configured input pipeline alone delivers."""
    import jax

    from gan_jax import data, sharding
    dataset = data.load_dataset(config.data)
    images = data.fit_resolution(dataset.images, config.model.resolution, config.data.fit)
    rows = config.train.batch_size * config.train.n_critic
    iterator = data.batches_for(config.data.placement, images, dataset.labels, rows, 0,
                                sharding.make_mesh())
    jax.block_until_ready(next(iterator))
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
    jax.block_until_ready(batch)
    seconds = time.perf_counter() - start
    iterator.close()
    return batches / seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = run_config(args)
        started = datetime.datetime.now(datetime.timezone.utc)
        workdir = args.out / f"run-{started:%Y%m%d-%H%M%S}"
        if workdir.exists():
            raise UserError(f"{workdir} exists; wait a second or use another --out")
        from experiments.benchmarks.train_step_speed import time_train_step, versions
        from gan_jax.loop import train
        wall = time.perf_counter()
        train(config, workdir, progress=False)
        wall = time.perf_counter() - wall
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    loop_rate, timed_images = loop_throughput(workdir / "metrics.jsonl")
    step = time_train_step(config, args.steps, args.repeats, warmup=5)
    rows_per_step = step["real_images_per_step"]
    step_rate = rows_per_step / step["seconds_per_step"]
    pipeline = pipeline_throughput(config) * rows_per_step
    overhead = rows_per_step / loop_rate - step["seconds_per_step"]
    record = {"command": "python -m experiments.benchmarks.end_to_end " + " ".join(
                  argv if argv is not None else sys.argv[1:]),
              "date": started.isoformat(timespec="seconds"), "device": step["device"],
              "versions": versions(), "config": config_lib.to_dict(config),
              "run_wall_seconds": wall, "timed_images": timed_images,
              "loop_img_per_sec": loop_rate, "step_img_per_sec": step_rate,
              "ratio": loop_rate / step_rate, "pipeline_img_per_sec": pipeline,
              "host_overhead_us_per_step": 1e6 * overhead, "workdir": str(workdir)}
    (args.out / "results.json").write_text(json.dumps(record, indent=1))
    print(f"\n{record['device']}, {record['date']}, {args.config} "
          f"({rows_per_step} real images per step)")
    print(f"{'loop img/s':>12}{'step img/s':>12}{'loop/step':>11}{'pipeline img/s':>16}"
          f"{'host us/step':>14}{'run s':>8}")
    print(f"{loop_rate:>12,.0f}{step_rate:>12,.0f}{loop_rate / step_rate:>11.3f}"
          f"{pipeline:>16,.0f}{1e6 * overhead:>14.0f}{wall:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

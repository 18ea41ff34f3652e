"""Trains any experiment config; re-running the same command resumes it.

    python -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py \
        --workdir runs/dcgan [section.key=value ...]

`--config path.py:variant` picks a variant of the config (e.g. `:test`, `:cpu`). Overrides such as
`train.batch_size=128 model.g_width=32` are type-checked against the config's fields. The run
directory receives config.json, checkpoints/, samples/ (latest.png is the newest grid),
metrics.jsonl and tensorboard/.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gan_jax import config as config_lib
from gan_jax.errors import UserError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.train",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="path/to/config.py[:variant]")
    parser.add_argument("--workdir", required=True, type=Path, help="run directory")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cluster = parser.add_argument_group(
        "multi-process training (one process per host; README: Long runs, several hosts)")
    env = os.environ.get
    cluster.add_argument("--coordinator-address", default=env("GAN_JAX_COORDINATOR"),
                         help="HOST:PORT of process 0 (env GAN_JAX_COORDINATOR)")
    cluster.add_argument("--num-processes", type=int, default=env("GAN_JAX_NUM_PROCESSES"),
                         help="processes in the job (env GAN_JAX_NUM_PROCESSES)")
    cluster.add_argument("--process-id", type=int, default=env("GAN_JAX_PROCESS_ID"),
                         help="this process's index (env GAN_JAX_PROCESS_ID)")
    cluster.add_argument("--distributed", action="store_true",
                         help="join the job JAX detects (Slurm, Open MPI, Cloud TPU)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_lib.load_config(args.config)
        config = config_lib.with_overrides(
            config, dict(config_lib.parse_override(o) for o in args.overrides))
        # Imported late: JAX start-up is not needed to reject input.
        from gan_jax import distributed
        from gan_jax.loop import total_steps, train
        distributed.initialize(args.coordinator_address, args.num_processes, args.process_id,
                               auto=args.distributed)
        state = train(config, args.workdir, progress=not args.no_progress)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if int(state.step) < total_steps(config):  # stopped by a signal, with a checkpoint
        print(f"stopped at step {int(state.step)} of {total_steps(config)}; run the same "
              "command to resume")
    else:
        print(f"done: samples in {args.workdir / 'samples' / 'latest.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sample grids from a trained run: random, or one row per class, at any truncation.

    python -m experiments.sample --run runs/biggan --out grid.png
    python -m experiments.sample --run runs/biggan --out classes.png --per-class 10 \
        --truncation 0.5 --standing-stats 16 --upscale 3

Images come from the EMA generator when the run has one (G's trained weights with
`--generator trained`), in inference mode, with the run's eval.truncation and
eval.standing_stats unless the flags say otherwise (BigGAN's truncation trick and standing
statistics). `--per-class` makes an intra-class grid of a conditional
generator: row c holds class c, and a column keeps its latent across the rows. `--upscale`
enlarges each pixel (nearest neighbour) so that 28x28 images are readable on a screen.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

from experiments.cli import run_command
from gan_jax.errors import UserError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="training run directory")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--count", type=int, default=64, help="images of a random grid")
    parser.add_argument("--per-class", type=int, help="an intra-class grid: images per class")
    parser.add_argument("--seed", type=int, default=0, help="of the latents")
    parser.add_argument("--truncation", type=float, help="default: the run's eval.truncation")
    parser.add_argument("--standing-stats", type=int,
                        help="batches of standing statistics (default: the run's)")
    parser.add_argument("--generator", help="G's weights: ema (the EMA when the run keeps one; "
                        "the default) or trained")
    parser.add_argument("--upscale", type=int, default=1, help="nearest-neighbour factor")
    return parser.parse_args(argv)


def sample_grid(args: argparse.Namespace) -> Path:
    import jax
    import numpy as np

    from gan_jax import evaluate, explore, sample
    from gan_jax.config import check_section_bounds
    from gan_jax.files import check_can_write
    from gan_jax.sampling import for_sampling, generate_uint8, sample_latents

    for flag, value, low in (("--count", args.count, 1), ("--per-class", args.per_class, 1),
                             ("--upscale", args.upscale, 1),
                             ("--standing-stats", args.standing_stats, 0)):
        if value is not None and value < low:
            raise UserError(f"{flag}={value} must be at least {low}")
    if args.truncation is not None and args.truncation <= 0:
        raise UserError(f"--truncation={args.truncation} must be positive")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out {args.out} must end in .png")
    check_can_write(args.out, "--out", folder=False)
    config, gan, state = evaluate.restore_run(args.run, args.step)
    settings = {name: value for name, value in (("truncation", args.truncation),
                                                ("standing_stats", args.standing_stats),
                                                ("generator", args.generator))
                if value is not None}
    eval_config = dataclasses.replace(config.eval, **settings)
    check_section_bounds("eval", eval_config)  # --generator's choice
    state = for_sampling(gan, state, eval_config)
    key = jax.random.key(args.seed)
    if args.per_class is not None:
        if gan.num_classes < 2:
            raise UserError(f"--per-class needs a class-conditional run; {args.run} is "
                            "unconditional")
        z = sample_latents(key, args.per_class, gan.latent_dim, eval_config.truncation)
        images = explore.class_grid(gan, state, args.per_class, key, z=z)
        columns = args.per_class
    else:
        z = sample_latents(key, args.count, gan.latent_dim, eval_config.truncation)
        images = np.asarray(jax.jit(functools.partial(generate_uint8, gan))(state, z))
        columns = None
    grid = sample.image_grid(images, columns)
    if args.upscale > 1:
        grid = grid.repeat(args.upscale, axis=0).repeat(args.upscale, axis=1)
    sample.save_png(grid, args.out)
    return args.out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command("sample", {"sample": lambda: print(f"wrote {sample_grid(args)}")})


if __name__ == "__main__":
    sys.exit(main())

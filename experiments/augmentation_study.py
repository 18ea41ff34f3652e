"""Does GAN-made data help a classifier when labels are scarce? The augmentation study.

    python -m experiments.augmentation_study run --out runs/augmentation_study
    python -m experiments.augmentation_study report --out runs/augmentation_study

For each seed: a balanced subset of Fashion-MNIST train (`--per-class`, 100 -> 1,000 images)
is drawn; a class-conditional GAN (experiments/configs/augmentation_study.py, or `--gan-config`)
is trained on that subset only; then the same small CNN (gan_jax.classifier) is trained for the
same number of steps on each arm and tested on the 10k test images:
  real              the subset alone
  real+aug          the subset with standard augmentation (random shifts of 2 px, flips)
  real+gan:R        the subset and R times as many generated images (R from --ratios)
  real+aug+gan:R    the same with standard augmentation
  gan               generated images only, as many as the largest ratio gives (the
                    Classification Accuracy Score of Ravuri & Vinyals 2019)
  full              all 60,000 real training images (the ceiling)
Every arm takes `--classifier-steps` steps of `--batch-size`, so no arm wins by training
longer. Generated images come from the EMA generator, with BigGAN's truncation when
`--truncation` is set, and the FID of such a set (`--fid-metric` images vs the test split) is
reported beside the accuracies. Results go to `results.jsonl` (one line per seed and arm; a
finished seed is skipped when the command is run again); `report` prints mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from gan_jax import config as config_lib
from experiments.cli import comma_list, run_command
from gan_jax.errors import UserError

GAN_CONFIG = Path(__file__).parent / "configs" / "augmentation_study.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.augmentation_study",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--out", type=Path, default=Path("runs/augmentation_study"))
    parser.add_argument("--gan-config", default=str(GAN_CONFIG), help="path.py[:variant]")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ratios", default="0.5,1,2,4", help="generated per real image")
    parser.add_argument("--classifier-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--classifier-width", type=int, default=32)
    parser.add_argument("--test-limit", type=int, default=None,
                        help="test on the first N test images only (quick checks)")
    parser.add_argument("--truncation", type=float, default=None)
    parser.add_argument("--fid-metric", default="fid10k", help="'' to skip the FID")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="applied to the GAN config")
    return parser.parse_intermixed_args(argv)


def gan_config(args: argparse.Namespace, seed: int) -> config_lib.Config:
    config = config_lib.load_config(args.gan_config)
    study = {"data.per_class": args.per_class, "data.subset_seed": seed, "train.seed": seed}
    user = dict(config_lib.parse_override(o) for o in args.overrides)
    config = config_lib.with_overrides(config, {**study, **user})
    if config.model.conditioning == "none":
        raise UserError(f"{args.gan_config} trains an unconditional GAN; the study needs "
                        "model.conditioning=projection or acgan")
    return config


def arms(ratios: list[float]) -> list[tuple[str, float, bool, bool]]:
    """(name, generated images per real one, with real images, with standard augmentation)."""
    out = [("real", 0.0, True, False), ("real+aug", 0.0, True, True)]
    out += [(f"real+gan:{r:g}", r, True, False) for r in ratios]
    out += [(f"real+aug+gan:{r:g}", r, True, True) for r in ratios]
    return out + [("gan", max(ratios), False, False), ("full", 0.0, True, False)]


def generated_fid(config, gan, state, metric: str, truncation: float | None,
                  seed: int) -> float:
    """FID of a balanced generated set (with the study's truncation) vs the reference."""
    import jax

    from gan_jax import evaluate as ev
    from gan_jax.metrics.evaluators import compute_metrics
    from gan_jax.synthetic import labelled_samples
    eval_config = dataclasses.replace(config.eval, metrics=metric)
    specs = ev.check_eval_config(eval_config)
    count = specs[0].count
    samples = labelled_samples(gan, state, -(-count // gan.num_classes),
                               jax.random.key(10_000 + seed), truncation)
    extractor = ev.make_extractor(eval_config)
    reference = ev.reference_spec(config)
    real = ev.real_set(reference, ev.reference_images(reference, config.data, config.model),
                       extractor, eval_config, specs)
    fake = extractor.features(samples.images[:count], eval_config.resize,
                              eval_config.batch_size)
    return compute_metrics(specs, fake, real, seed=eval_config.seed)[specs[0].name]


def run_seed(args: argparse.Namespace, seed: int, ratios: list[float]) -> list[dict[str, Any]]:
    import jax

    from gan_jax import classifier, data, synthetic
    from gan_jax.loop import train
    from gan_jax.train import build_gan
    config = gan_config(args, seed)
    train_set = data.load_dataset(config.data)
    test_set = data.load_dataset(dataclasses.replace(config.data, split="test"))
    subset = data.balanced_subset(train_set, args.per_class, seed)
    state = train(config, args.out / f"gan_seed_{seed}", progress=not args.no_progress)
    gan = build_gan(config)
    generated = synthetic.labelled_samples(gan, state, round(max(ratios) * args.per_class),
                                           jax.random.key(seed), args.truncation)
    fid = (generated_fid(config, gan, state, args.fid_metric, args.truncation, seed)
           if args.fid_metric else None)
    clf = classifier.make_classifier(train_set.num_classes, args.classifier_width)
    test_images = data.fit_resolution(test_set.images[:args.test_limit],
                                      config.model.resolution, config.data.fit)
    test_labels = test_set.labels[:args.test_limit]
    rows = []
    for name, ratio, with_real, augment in arms(ratios):
        if name == "full":
            images, labels = train_set.images, train_set.labels
        elif not with_real:
            images, labels = generated.images, generated.labels
        else:
            mixed = synthetic.mix(subset, generated, ratio)
            images, labels = mixed.images, mixed.labels
        images = data.fit_resolution(images, config.model.resolution, config.data.fit)
        trained = classifier.train_classifier(clf, images, labels, steps=args.classifier_steps,
                                              batch_size=args.batch_size, seed=seed,
                                              augment=augment)
        rows.append({"seed": seed, "arm": name, "ratio": ratio, "train_images": len(labels),
                     "accuracy": classifier.accuracy(clf, trained.params, test_images,
                                                     test_labels),
                     "test_images": len(test_labels),
                     "generated_fid": fid, "fid_metric": args.fid_metric or None,
                     "truncation": args.truncation, "per_class": args.per_class,
                     "classifier_steps": args.classifier_steps, "batch_size": args.batch_size})
        print(f"seed {seed} {name}: accuracy {rows[-1]['accuracy']:.4f}", flush=True)
    return rows


def run(args: argparse.Namespace) -> None:
    seeds = comma_list(args.seeds, int, "--seeds")
    ratios = comma_list(args.ratios, float, "--ratios")
    if not ratios or min(ratios) <= 0:
        raise UserError(f"--ratios '{args.ratios}' must list positive numbers")
    for seed in seeds:
        gan_config(args, seed)  # every seed's config is checked before anything trains
    results = args.out / "results.jsonl"
    done = {json.loads(line)["seed"] for line in results.read_text().splitlines()} \
        if results.is_file() else set()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if seed in done:
            print(f"seed {seed}: done before, skipped", flush=True)
            continue
        rows = run_seed(args, seed, ratios)
        with open(results, "a") as handle:  # a seed's rows land together, or not at all
            handle.write("".join(json.dumps(row) + "\n" for row in rows))


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std of the test accuracy per arm, in the order the arms ran."""
    by_arm: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_arm.setdefault(row["arm"], []).append(row)
    out = []
    for arm, of_arm in by_arm.items():
        accuracies = [r["accuracy"] for r in of_arm]
        out.append({"arm": arm, "seeds": len(of_arm), "mean": statistics.mean(accuracies),
                    "std": statistics.stdev(accuracies) if len(of_arm) > 1 else None,
                    "train_images": of_arm[0]["train_images"]})
    return out


def report(args: argparse.Namespace) -> str:
    path = args.out / "results.jsonl"
    if not path.is_file():
        raise UserError(f"no results under {args.out}; run `augmentation_study run` first")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    lines = ["| arm | train images | test accuracy (mean ± std) | seeds |", "|---|---|---|---|"]
    for s in summary(rows):
        std = f" ± {100 * s['std']:.2f}" if s["std"] is not None else ""
        lines.append(f"| {s['arm']} | {s['train_images']} | {100 * s['mean']:.2f}%{std} "
                     f"| {s['seeds']} |")
    fids = sorted({(r["seed"], r["generated_fid"]) for r in rows if r["generated_fid"]})
    if fids:
        lines.append(f"\nGenerated-set {rows[0]['fid_metric']} per seed: "
                     + ", ".join(f"{fid:.2f}" for _, fid in fids))
    table = "\n".join(lines)
    print(table)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(args.command, {"run": lambda: run(args), "report": lambda: report(args)})


if __name__ == "__main__":
    sys.exit(main())

"""Bitwise fingerprints of the train step, the safety net for changing how the step is built.

    python -m experiments.step_fingerprints record --out fingerprints.json
    python -m experiments.step_fingerprints check --against fingerprints.json

For every recipe of the zoo, of the "Are GANs Created Equal?" table and of the best-recipe
candidates, for ProGAN's Fashion-MNIST recipe, the quickstarts (MLP and DCGAN on
Fashion-MNIST) and the augmentation study's GAN (their test variants: tiny networks), and for
the step's options the recipes leave out (lazy and R2 penalties, feature matching, historical
averaging, label smoothing, ADA, minibatch features, projection and bfloat16 on the DCGAN
networks, LeCam, bCR, top-k, orthogonal regularisation, RpGAN with R1 + R2), this builds the
GAN, runs two jit-compiled steps on a fixed random batch from a fixed key, and records a SHA-256 of every array of the state and the metrics, by name. `check`
recomputes them and lists every case and component that differs.

Refactoring the step (how its losses are grouped, how state is laid out) must leave every
fingerprint identical: the same arithmetic in the same order. A deliberate change of the
numbers shows up here, and is explained where it is made. Fingerprints are bitwise, so they
compare runs on one machine with one set of library versions: XLA's CPU code differs between
processors and releases. experiments/results/step_fingerprints_cpu.json holds the record of
one 2-core x86-64 machine (its environment inside), to check a change on a like machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

from experiments.cli import comma_list, run_command
from experiments.provenance import cpu_model
from gan_jax.config import Config, load_config, with_overrides
from gan_jax.errors import UserError

CONFIGS = Path(__file__).parent / "configs"
STEPS = 2
_TINY_DCGAN = {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16,
               "train.batch_size": 8, "model.resolution": 16}
# The step's options beyond the recipes, each on the tiny DCGAN (LayerNorm D where a penalty
# needs per-sample gradients).
OPTIONS: dict[str, dict[str, Any]] = {
    "lazy_r1": {"reg.penalty": "r1", "reg.penalty_every": 2, "model.d_norm": "none"},
    "r2": {"reg.penalty": "r2", "reg.penalty_weight": 1.0, "model.d_norm": "none"},
    "feature_matching": {"reg.feature_matching": 0.5},
    "historical_averaging": {"reg.historical_averaging": 0.1},
    "label_smoothing": {"reg.label_smoothing": 0.1},
    "ada": {"augment.policy": "color,translation,cutout", "augment.ada_target": 0.6,
            "augment.p": 0.2},
    "minibatch_features": {"model.minibatch_std": 4, "model.minibatch_discrimination": 4},
    "projection_dcgan": {"model.conditioning": "projection", "train.loss": "hinge"},
    "bfloat16": {"model.compute_dtype": "bfloat16"},
    "ema_linear_decay": {"optim.ema_kimg": 0.01, "optim.ema_rampup": 0.05,
                         "optim.lr_decay": "linear", "train.total_kimg": 0.032},
    "lecam": {"reg.lecam_weight": 0.3},
    "bcr": {"reg.consistency_real": 10.0, "reg.consistency_fake": 10.0},
    # epochs of 6 images, batches of 8: step 1 comes after 1 complete epoch (of 1.33), so k is
    # 8 * 0.5 = 4 (a decay within epochs would give 3)
    "top_k": {"reg.top_k_min": 0.1, "reg.top_k_decay": 0.5, "reg.top_k_epoch_kimg": 0.006},
    "orthogonal": {"reg.g_orthogonal": 1e-4},
    "rpgan_r1_r2": {"train.loss": "relativistic_pairing", "reg.penalty": "r1_r2",
                    "reg.penalty_weight": 0.1, "model.d_norm": "none"},
    # the critic loop and G's own latents and classes
    "g_latents_fresh": {"train.g_latents": "fresh", "train.n_critic": 2,
                        "model.conditioning": "projection", "train.loss": "hinge"},
}


# The configs of one recipe each (the quickstarts, the augmentation study's GAN), by their
# `:test` variant.
SINGLE_RECIPE_CONFIGS = ("mlp_gan_fashion_mnist", "dcgan_fashion_mnist", "augmentation_study")


def cases(only: list[str] | None = None) -> dict[str, Config]:
    """Every fingerprinted config by name, or those named in `only`."""
    from experiments.configs import best_fashion_mnist, gan_zoo, lucic_fashion_mnist
    found = {}
    for experiment, recipes in (("gan_zoo", gan_zoo.RECIPES),
                                ("lucic_fashion_mnist", lucic_fashion_mnist.RECIPES),
                                ("best_fashion_mnist", best_fashion_mnist.RECIPES),
                                ("progan", ("fashion_mnist",))):
        for name in sorted(recipes):
            found[f"{experiment}:{name}"] = load_config(f"{CONFIGS / experiment}.py:{name}.test")
    for experiment in SINGLE_RECIPE_CONFIGS:
        found[f"{experiment}:test"] = load_config(f"{CONFIGS / experiment}.py:test")
    for name, overrides in OPTIONS.items():
        found[f"option:{name}"] = with_overrides(Config(), {**_TINY_DCGAN, **overrides})
    if only is None:
        return found
    unknown = [name for name in only if name not in found]
    if unknown:
        raise UserError(f"--cases: unknown case '{unknown[0]}'; the cases are "
                        f"{', '.join(found)}")
    return {name: found[name] for name in only}


def _digest(tree: Any) -> str:
    hasher = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(tree)):
        value = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(
            leaf.dtype, jax.dtypes.prng_key) else leaf)
        hasher.update(jax.tree_util.keystr(path).encode())
        hasher.update(str(value.dtype).encode() + str(value.shape).encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    return hasher.hexdigest()[:16]


def components(state: Any) -> dict[str, Any]:
    """The state's parts by name, each slot on its own ("slots.ema"): each fingerprinted
    separately, so a difference is located."""
    parts = {name: getattr(state, name) for name in state.__dataclass_fields__
             if name != "slots"}
    return parts | {f"slots.{name}": value for name, value in state.slots.items()}


def fingerprint(config: Config) -> dict[str, str]:
    from gan_jax.train import build_gan, init_state, train_step_for
    gan = build_gan(config)
    state = jax.jit(lambda key: init_state(gan, key))(jax.random.key(0))
    step = jax.jit(train_step_for(gan))
    rng = np.random.default_rng(0)
    rows = config.train.batch_size * config.train.n_critic
    m = config.model
    batch = {"image": rng.integers(0, 256, (rows, m.resolution, m.resolution, m.channels),
                                   dtype=np.uint8),
             "label": rng.integers(0, m.num_classes, (rows,), dtype=np.int32)}
    metrics = {}
    for _ in range(STEPS):
        state, metrics = step(state, batch, jax.random.key(1))
    prints = {name: _digest(part) for name, part in components(state).items()}
    prints["metrics"] = _digest(dict(sorted(metrics.items())))
    return prints


def environment() -> dict[str, str]:
    import platform

    import flax
    import optax
    return {"device": jax.devices()[0].device_kind, "processor": cpu_model(),
            "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
            "python": platform.python_version()}


def record(args: argparse.Namespace) -> None:
    prints = {name: fingerprint(config) for name, config in cases(args.cases).items()}
    args.out.write_text(json.dumps({"environment": environment(), "steps": STEPS,
                                    "fingerprints": prints}, indent=1) + "\n")
    print(f"{len(prints)} fingerprints written to {args.out}")


def check(args: argparse.Namespace) -> int:
    if not args.against.is_file():
        raise UserError(f"--against {args.against} is not a file; record one first")
    saved = json.loads(args.against.read_text())
    if saved["environment"] != environment():
        print(f"note: recorded with {saved['environment']}, now {environment()}: bitwise "
              "differences are expected across machines and versions", file=sys.stderr)
    now = cases()
    recorded = {name: prints for name, prints in saved["fingerprints"].items()
                if args.cases is None or name in args.cases}
    differences = []
    for name, prints in recorded.items():
        if name not in now:
            differences.append(f"{name}: no longer a case")
            continue
        new = fingerprint(now[name])
        changed = sorted(k for k in prints.keys() | new.keys() if prints.get(k) != new.get(k))
        if changed:
            differences.append(f"{name}: {', '.join(changed)} differ")
    differences += [f"{name}: new case, not recorded" for name in cases(args.cases)
                    if name not in saved["fingerprints"]]
    cases_checked = f"{len(recorded)} case{'s' * (len(recorded) != 1)}"
    print("\n".join(differences) or f"every fingerprint identical ({cases_checked})")
    return 1 if differences else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    record_parser, check_parser = commands.add_parser("record"), commands.add_parser("check")
    record_parser.add_argument("--out", type=Path, required=True)
    check_parser.add_argument("--against", type=Path, required=True)
    for command in (record_parser, check_parser):
        command.add_argument("--cases", type=lambda text: comma_list(text, str, "--cases"),
                             default=None, help="comma-separated case names (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command(args.command, {"record": lambda: record(args),
                                      "check": lambda: check(args)})


if __name__ == "__main__":
    sys.exit(main())

"""Evaluating a generator: sample images, Inception features, metrics against real images.

Shared by the training loop (`eval.metrics` every `eval.every_kimg`) and the evaluation CLI
(`python -m experiments.evaluate --run DIR`). The evaluated latents come from `eval.seed` and
are the same at every evaluation, so successive numbers of one run differ by the model only.
Both keep an evaluation's generated features as they come in the run's `PROGRESS_FOLDER`, so
one that is stopped part-way resumes there (an image set's: `resumable.image_features`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import numpy as np

from gan_jax.config import (Config, DataConfig, EvalConfig, ModelConfig, check_section_bounds,
                            read_config)
from gan_jax.data import fit_resolution
from gan_jax.errors import UserError
from gan_jax.metrics.evaluators import (MetricSpec, RealSet, check_counts, compute_metrics,
                                        parse_metrics, real_set_from_dataset,
                                        real_set_from_features)
from gan_jax.metrics.features import FeatureExtractor
from gan_jax.metrics.images import is_dataset_spec, load_images
from gan_jax.metrics.resumable import (FeatureChunks, evaluation_key, image_features,
                                      resumed_features)
from gan_jax.sampling import balanced_labels, for_sampling, generate_uint8, sample_latents
from gan_jax.train import Gan, TrainState, build_gan, init_state


PROGRESS_FOLDER = "evaluation_progress"  # in a run directory: features of evaluations under way
# The eval.* settings that decide a generator's features (with the state, the count and batch).
_FEATURE_SETTINGS = ("resize", "weights", "storage", "compute", "seed", "truncation",
                     "standing_stats")


def check_eval_config(config: EvalConfig) -> list[MetricSpec]:
    """The requested metrics, after checking every eval.* choice (nothing is loaded)."""
    specs = parse_metrics(config.metrics)
    # Bounds and choices: the CLI's flags bypass the config's overrides.
    check_section_bounds("eval", config)
    check_counts(specs, available=max((s.count for s in specs), default=0))
    return specs


def reference_spec(config: Config) -> str:
    if config.eval.reference is None and config.data.source == "folder":
        # The folder's "test split" would be the training images themselves.
        raise UserError("data.source=folder has no test split to evaluate against; set "
                        "eval.reference to a folder or .npz of held-out real images")
    return config.eval.reference or f"{config.data.dataset}:test"


def reference_images(reference: str, data: DataConfig | None = None,
                     model: ModelConfig | None = None) -> np.ndarray:
    """The real images. For a generator (`model` given) they are brought to its resolution the
    way its training data was (`data.fit`), so a generator that matched its training data
    perfectly would score the floor, and a channel mismatch is refused."""
    images = load_images(reference, data)
    if model is None:
        return images
    if images.shape[-1] != model.channels:
        raise UserError(f"reference {reference} has {images.shape[-1]}-channel images but the "
                        f"generator makes {model.channels}-channel ones; choose a reference "
                        "like the training data")
    if images.shape[1:3] != (model.resolution, model.resolution):
        images = fit_resolution(images, model.resolution, data.fit if data else "resize")
    return images


def real_set(reference: str, images: np.ndarray, extractor: FeatureExtractor,
             config: EvalConfig, specs: list[MetricSpec]) -> RealSet:
    """The real side: a dataset split (statistics cached per protocol), or a folder / .npz of
    images (features computed here, not cached, since files can change under the same name;
    resumable while they are computed, keyed by the images' bytes)."""
    if is_dataset_spec(reference):
        return real_set_from_dataset(reference, images, extractor, config.resize, specs,
                                     config.batch_size)
    return real_set_from_features(image_features(extractor, images, config.resize,
                                                 config.batch_size),
                                  reference)


def make_extractor(config: EvalConfig, progress: bool = False) -> FeatureExtractor:
    return FeatureExtractor(config.weights, config.storage, config.compute, progress=progress)


def generated_features(gan: Gan, state: TrainState, count: int, extractor: FeatureExtractor,
                       config: EvalConfig, progress_dir: Path | None = None) -> np.ndarray:
    """Inception features of `count` images from the generator (inference-mode BatchNorm,
    with standing statistics when eval.standing_stats > 0).

    The latents are drawn at once from `eval.seed` (truncated at eval.truncation), so they do
    not depend on the batch size: the CLI reproduces the numbers logged in training whatever
    `--batch-size` it uses. With `progress_dir`, the features are saved there as they come
    (`gan_jax.metrics.resumable`): an evaluation of the same state and settings that was
    stopped part-way starts where it stopped.
    """
    batch = extractor.padded_batch_size(config.batch_size, count)
    saved = None
    if progress_dir is not None:
        settings = {name: getattr(config, name) for name in _FEATURE_SETTINGS}
        if config.generator != "ema":  # the default adds nothing: older saved features resume
            settings["generator"] = config.generator
        key = evaluation_key(state, {**settings, "count": count, "batch": batch})
        saved = FeatureChunks(progress_dir, key, batch, count)
    state = for_sampling(gan, state, config)  # standing statistics once, not per batch
    batches = -(-count // batch)
    latents = sample_latents(jax.random.key(config.seed), batches * batch, gan.latent_dim,
                             config.truncation)
    # A conditional generator gets classes 0, 1, ..., K-1, 0, ... over all `count` images.
    labels = balanced_labels(batches * batch, gan.num_classes)

    generate = jax.jit(functools.partial(generate_uint8, gan))
    # Images stay on the device between the generator and the Inception network.
    def batches_from(start: int):
        return ((generate(state, latents[i:i + batch],
                          None if labels is None else labels[i:i + batch]),
                 min(batch, count - i))
                for i in range(start, batches * batch, batch))

    return resumed_features(extractor, batches_from, count, config.resize, saved)


class GeneratorEvaluator:
    """Computes `config.eval.metrics` for a train state.

    `prepare()` loads (downloading on first use) and verifies the weights and loads the
    reference images, so that a problem with either stops the run before it starts, not hours
    into it; the reference features are computed at the first evaluation.
    """

    def __init__(self, config: Config, gan: Gan):
        self.specs = check_eval_config(config.eval)
        self.config, self.gan = config, gan
        self.reference = reference_spec(config) if self.specs else None
        self._extractor: FeatureExtractor | None = None
        self._real: RealSet | None = None

    def prepare(self) -> None:
        if self.specs and self._real is None:
            extractor = make_extractor(self.config.eval)
            images = reference_images(self.reference, self.config.data, self.config.model)
            self._extractor = extractor
            self._real = real_set(self.reference, images, extractor, self.config.eval,
                                  self.specs)

    def __call__(self, state: TrainState, progress_dir: Path | None = None) -> dict[str, float]:
        """The metrics of `state`'s generator; `progress_dir`: see `generated_features`."""
        if not self.specs:
            return {}
        self.prepare()
        count = max(spec.count for spec in self.specs)
        fake = generated_features(self.gan, state, count, self._extractor, self.config.eval,
                                  progress_dir)
        return compute_metrics(self.specs, fake, self._real, seed=self.config.eval.seed)


def describe(results: dict[str, float], reference: str, config: EvalConfig) -> str:
    values = ", ".join(f"{k}={v:.4g}" for k, v in results.items())
    return f"{values} (vs {reference}, resize={config.resize}, compute={config.compute})"


def restore_run(workdir: Path, step: int | None = None) -> tuple[Config, Gan, TrainState]:
    """The config, networks and checkpointed state (of `step`, default the latest) of a run."""
    from gan_jax.checkpoint import Checkpointer, has_checkpoint  # orbax: only this path

    config_path, checkpoints = workdir / "config.json", workdir / "checkpoints"
    if not config_path.is_file():
        raise UserError(f"{workdir} is not a run directory (no config.json); pass the --workdir "
                        "of a training run")
    if not has_checkpoint(checkpoints):
        raise UserError(f"{workdir} has no checkpoint yet; train longer or wait for the first "
                        "checkpoint_every_kimg")
    config = read_config(config_path)
    gan = build_gan(config)
    like = jax.jit(functools.partial(init_state, gan))(jax.random.key(0))
    checkpointer = Checkpointer(checkpoints, read_only=True)
    try:
        steps = checkpointer.all_steps()
        if step is not None and step not in steps:
            raise UserError(f"{workdir} has no checkpoint of step {step}; it has steps "
                            f"{', '.join(map(str, steps))}")
        state = checkpointer.restore(steps[-1] if step is None else step, like)
    finally:
        checkpointer.close()
    return config, gan, state

"""The training loop: config -> data -> sharded state -> jitted steps -> logs, samples, checkpoints.

    state = train(config, Path("runs/dcgan"))

With `eval.metrics` set (e.g. "fid10k"), the generator is evaluated every `eval.every_kimg` and at
the end, and the results go to metrics.jsonl and TensorBoard beside the training scalars.
Every row also has `wall_s`, seconds since `train` was called in this process (a resumed run
starts again from 0), and evaluation rows have `eval_s`, the seconds the evaluation took; the
logged img/s leaves evaluations out.

Re-running the same call resumes from the newest checkpoint in the run directory. Because the
batch order and the step's randomness are functions of the step number, a resumed run ends in
the same state as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np
from tqdm import tqdm

from gan_jax import config as config_lib
from gan_jax import data, sample, sharding
from gan_jax.checkpoint import Checkpointer, has_checkpoint
from gan_jax.compatibility import check_labels
from gan_jax.config import Config, EvalConfig
from gan_jax.errors import UserError
from gan_jax.evaluate import GeneratorEvaluator, describe
from gan_jax.metric_writers import MetricWriter
from gan_jax.train import TrainState, build_gan, generate_images, init_state, train_step_for

# Keys that may change when a run is resumed: they change how long the run is, how it reports
# and where data lives, never what a step computes.
RESUMABLE_CHANGES = frozenset({
    "train.total_kimg", "train.log_every_kimg", "train.sample_every_kimg",
    "train.checkpoint_every_kimg", "train.keep_checkpoints", "data.dir", "data.tfds_data_dir",
    "data.placement",
    # Evaluation reads the state and never changes it.
    *(f"eval.{field.name}" for field in dataclasses.fields(EvalConfig))})


class TrainingDiverged(UserError):
    """Losses, gradients or parameters became non-finite."""


def steps_for_kimg(kimg: float, batch_size: int) -> int:
    """Train steps that show at least `kimg` thousand real images (at least one step)."""
    return max(1, math.ceil(kimg * 1000 / batch_size))


def train(config: Config, workdir: Path, *, devices: Sequence[jax.Device] | None = None,
          progress: bool = True) -> TrainState:
    started = time.perf_counter()  # "wall_s" in the logs counts from here (this process)
    workdir = Path(workdir)
    t = config.train
    # Everything that can be wrong with the input is checked before the run directory is touched.
    mesh = sharding.make_mesh(devices)
    sharding.check_batch_size(t.batch_size, mesh)
    gan = build_gan(config)
    dataset = data.load_dataset(config.data)
    if config.data.per_class is not None:
        dataset = data.balanced_subset(dataset, config.data.per_class, config.data.subset_seed)
    check_labels(config, dataset.num_classes, config.data.dataset)
    images = data.fit_resolution(dataset.images, config.model.resolution, config.data.fit)
    data.check_channels(images, config.model.channels, config.data.dataset)
    evaluator = GeneratorEvaluator(config, gan)
    evaluator.prepare()  # weights verified (or fetched) and reference loaded before any write
    checkpoints_dir = workdir / "checkpoints"
    _check_resumable(config, workdir, has_checkpoint=has_checkpoint(checkpoints_dir))

    init_key, step_key, grid_key = jax.random.split(jax.random.key(t.seed), 3)
    state = jax.jit(functools.partial(init_state, gan),
                    out_shardings=sharding.replicated(mesh))(init_key)
    workdir.mkdir(parents=True, exist_ok=True)
    config_lib.save_config(config, workdir / "config.json")
    checkpointer = Checkpointer(checkpoints_dir, keep=t.keep_checkpoints)
    state = checkpointer.restore_latest(like=state) or state
    start_step = int(state.step)

    # Every step shows D n_critic batches of real images; schedules count those images.
    images_per_step = t.batch_size * t.n_critic
    total_steps = steps_for_kimg(t.total_kimg, images_per_step)
    log_every = steps_for_kimg(t.log_every_kimg, images_per_step)
    sample_every = steps_for_kimg(t.sample_every_kimg, images_per_step)
    checkpoint_every = steps_for_kimg(t.checkpoint_every_kimg, images_per_step)
    eval_every = (steps_for_kimg(config.eval.every_kimg, images_per_step)
                  if config.eval.every_kimg is not None else total_steps)

    train_step = sharding.jit_train_step(train_step_for(gan), mesh)
    grid_latents = jax.random.normal(grid_key, (t.grid_size, gan.latent_dim))
    # Compiled now, so the first sample grid does not stall training or count against img/s.
    generate = jax.jit(functools.partial(generate_images, gan)).lower(state,
                                                                      grid_latents).compile()
    batches = data.batches_for(config.data.placement, images, dataset.labels, images_per_step,
                               t.seed, mesh, start_step=start_step)
    writer = MetricWriter(workdir)
    bar = tqdm(total=total_steps * images_per_step, initial=start_step * images_per_step,
               unit="img", unit_scale=True, dynamic_ncols=True, disable=not progress)
    last_log = (start_step, time.perf_counter())
    try:
        for step in range(start_step + 1, total_steps + 1):
            state, metrics = train_step(state, next(batches), step_key)
            bar.update(images_per_step)
            is_last = step == total_steps
            if step % log_every == 0 or is_last:
                values = _checked(metrics, step, checkpointer)
                now = time.perf_counter()
                values["img_per_sec"] = ((step - last_log[0]) * images_per_step
                                         / (now - last_log[1]))
                values["kimg"] = step * images_per_step / 1000
                values["wall_s"] = now - started
                last_log = (step, now)
                writer.write_scalars(step, values)
                bar.set_postfix(d_loss=f"{values['d_loss']:.3f}", g_loss=f"{values['g_loss']:.3f}")
            if step == start_step + 1:  # throughput is measured from after compilation
                jax.block_until_ready(state)
                last_log = (step, time.perf_counter())
            if step % sample_every == 0 or is_last:
                _save_samples(generate(state, grid_latents), step, workdir, writer)
            evaluate_now = evaluator.specs and (step % eval_every == 0 or is_last)
            # A checkpoint also precedes every evaluation, so a failed evaluation loses nothing.
            if step % checkpoint_every == 0 or is_last or evaluate_now:
                _checked(metrics, step, checkpointer)  # never save a diverged state
                checkpointer.save(state)
            if evaluate_now:
                evaluation_started = time.perf_counter()
                results = evaluator(state)
                now = time.perf_counter()
                # Evaluation time is reported on its own, not as slower training.
                last_log = (last_log[0], last_log[1] + now - evaluation_started)
                writer.write_scalars(step, {**results, "kimg": step * images_per_step / 1000,
                                            "wall_s": now - started,
                                            "eval_s": now - evaluation_started})
                bar.write(f"step {step}: {describe(results, evaluator.reference, config.eval)}")
    finally:
        bar.close()
        batches.close()
        writer.close()
        checkpointer.close()
    if start_step >= total_steps:  # nothing left to train: still leave fresh samples behind
        _save_samples(generate(state, grid_latents), start_step, workdir, writer=None)
    return state


def _check_resumable(config: Config, workdir: Path, has_checkpoint: bool) -> None:
    saved_path = workdir / "config.json"
    if not (has_checkpoint and saved_path.is_file()):
        return
    resumable = RESUMABLE_CHANGES
    if config.optim.lr_decay == "linear" and config.optim.decay_kimg is None:
        resumable = resumable - {"train.total_kimg"}  # the decay ends with the run
    changed = {k: v for k, v in config_lib.differences(config_lib.read_config(saved_path),
                                                       config).items()
               if k not in resumable}
    if changed:
        key, (old, new) = next(iter(changed.items()))
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise UserError(f"{workdir} holds a run with {key}={old!r} but this config has "
                        f"{key}={new!r}{more}; use a new --workdir, or the run's own config "
                        f"({saved_path}) to resume it")


def _checked(metrics: dict[str, jax.Array], step: int,
             checkpointer: Checkpointer) -> dict[str, float]:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not values.pop("finite"):
        bad = ", ".join(k for k, v in values.items() if not np.isfinite(v))
        last = checkpointer.latest_step()
        last_good = ("no checkpoint was saved yet" if last is None
                     else f"the last good checkpoint is step {last}")
        raise TrainingDiverged(f"training diverged at step {step} (non-finite {bad}); "
                               f"{last_good}; lower the learning rates or change the loss")
    return values


def _save_samples(images: jax.Array, step: int, workdir: Path,
                  writer: MetricWriter | None) -> None:
    grid = sample.image_grid(sample.to_uint8(jax.device_get(images)))
    sample.save_png(grid, workdir / "samples" / f"step_{step:08d}.png")
    sample.save_png(grid, workdir / "samples" / "latest.png")
    if writer is not None:
        writer.write_image(step, "samples", grid)

"""The training loop: config -> data -> sharded state -> jitted steps -> logs, samples, checkpoints.

    state = train(config, Path("runs/dcgan"))

With `eval.metrics` set (e.g. "fid10k"), the generator is evaluated every `eval.every_kimg` and at
the end, and the results go to metrics.jsonl and TensorBoard beside the training scalars.
Every row also has `wall_s`, seconds since `train` was called in this process (a resumed run
starts again from 0), and evaluation rows have `eval_s`, the seconds the evaluation took; the
logged img/s leaves evaluations out.

Re-running the same call resumes from the newest complete checkpoint in the run directory.
Because the batch order and the step's randomness are functions of the step number, a resumed
run ends in the same state as an uninterrupted one, bit for bit, wherever it was killed
(tests/test_preemption.py kills real runs with SIGKILL); metrics.jsonl forgets the rows of
steps after that checkpoint, so every step is logged once. SIGTERM and SIGINT stop a run at the
next step boundary with a checkpoint (gan_jax.preemption). An evaluation runs to its end (a
checkpoint precedes it); one killed part-way is evaluated again when the run resumes, from the
features it had saved in `evaluation_progress/` (gan_jax.metrics.resumable), not from the start.

Non-finite losses, gradients or parameters stop the run with a message naming the step and the
last good checkpoint (a diverged state is never saved). With `train.rollback_tries=N` the run
instead goes back to that checkpoint and continues with both learning rates multiplied by
`train.rollback_lr_factor`, at most N times; the multiplier is part of the saved state.
A run directory that cannot be written (full, read-only) ends the run with one line that says
which checkpoint is complete.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np
import psutil
from tqdm import tqdm

from gan_jax import config as config_lib
from gan_jax import batching, data, sample, sharding
from gan_jax.checkpoint import Checkpointer, has_checkpoint, latest_checkpoint_step, ocp_layout
from gan_jax.compatibility import check_labels
from gan_jax.config import Config, EvalConfig
from gan_jax.errors import UserError
from gan_jax.evaluate import PROGRESS_FOLDER, GeneratorEvaluator, describe
from gan_jax.files import check_can_write, storage_advice, storage_errno
from gan_jax.metric_writers import MetricWriter, forget_metrics_after, read_metrics
from gan_jax.models import run_batching
from gan_jax.preemption import StopSignals
from gan_jax.sampling import generate_images, sample_latents, sampling_state_for
from gan_jax.train import (Gan, TrainState, build_gan, init_state, level_of_step,
                           level_train_steps, train_step_for)

# Keys that may change when a run is resumed: they change how long the run is, how it reports
# and where data lives, never what a step computes.
RESUMABLE_CHANGES = frozenset({
    "train.total_kimg", "train.log_every_kimg", "train.sample_every_kimg",
    "train.checkpoint_every_kimg", "train.keep_checkpoints", "data.dir", "data.tfds_data_dir",
    "data.placement", "train.rollback_tries", "train.rollback_lr_factor",
    # How convolutions are computed, not what: a CPU run may continue on a GPU.
    "model.conv_implementation",
    # Evaluation reads the state and never changes it.
    *(f"eval.{field.name}" for field in dataclasses.fields(EvalConfig))})


# The host may run this many train steps ahead of the devices, no more. Enough to hide the
# dispatch of the next step behind the current one; unbounded, the queue holds a batch per
# step (memory grows when the host is faster than the devices), and XLA:CPU with several
# devices deadlocks in its collectives after a few hundred queued steps (jax 0.10).
MAX_STEPS_IN_FLIGHT = 2


class TrainingDiverged(UserError):
    """Losses, gradients or parameters became non-finite."""


def total_steps(config: Config) -> int:
    """The train steps of a whole run (each shows D train.n_critic batches)."""
    return batching.steps_to_show(run_batching(config), config.train.total_kimg * 1000)


def train(config: Config, workdir: Path, *, devices: Sequence[jax.Device] | None = None,
          progress: bool = True) -> TrainState:
    """Trains (or resumes) the run in `workdir` and returns its final state.

    A SIGTERM or SIGINT stops it at the next step boundary with a checkpoint: the returned
    state is then short of `total_steps(config)`, and calling `train` again resumes it.
    """
    started = time.perf_counter()  # "wall_s" in the logs counts from here (this process)
    workdir = Path(workdir)
    t = config.train
    # Everything that can be wrong with the input is checked before the run directory is touched.
    check_can_write(workdir, "the run directory", folder=True)
    mesh = sharding.make_mesh(devices)
    sharding.check_batch_size(t.batch_size, mesh)
    for stage in run_batching(config):  # per-resolution batches (model.progan.batch_sizes)
        if stage.per_step != t.batch_size * t.n_critic:
            sharding.check_batch_size(stage.per_step // t.n_critic, mesh,
                                      "a batch of model.progan.batch_sizes")
    gan = build_gan(config)
    dataset = data.load_dataset(config.data, config.model.resolution)
    if config.data.per_class is not None:
        dataset = data.balanced_subset(dataset, config.data.per_class, config.data.subset_seed)
    check_labels(config, dataset.num_classes, config.data.dataset)
    images = data.fit_resolution(dataset.images, config.model.resolution, config.data.fit)
    data.check_channels(images, config.model.channels, config.data.dataset)
    evaluator = GeneratorEvaluator(config, gan)
    if evaluator.specs and jax.process_count() > 1:
        raise UserError("eval.metrics during multi-process training is not supported yet; "
                        "train with eval.metrics='' and evaluate the checkpoints with "
                        "python -m experiments.evaluate --run")
    evaluator.prepare()  # weights verified (or fetched) and reference loaded before any write
    _check_resumable(config, workdir, has_checkpoint=has_checkpoint(workdir / "checkpoints"))
    try:
        with StopSignals() as stop:
            return _train(config, gan, mesh, images, dataset.labels, evaluator, workdir, stop,
                          started, progress)
    except Exception as error:
        code = storage_errno(error)
        if code is None:
            raise
        last = latest_checkpoint_step(workdir / "checkpoints")
        resume = ("no checkpoint was saved yet" if last is None else
                  f"the checkpoint of step {last} is complete and the same command resumes it")
        raise UserError(f"cannot write to the run directory {workdir} ({storage_advice(code)}); "
                        f"{resume}") from None


def _train(config: Config, gan: Gan, mesh: jax.sharding.Mesh, images: np.ndarray,
           labels: np.ndarray, evaluator: GeneratorEvaluator, workdir: Path, stop: StopSignals,
           started: float, progress: bool) -> TrainState:
    t = config.train
    writes = jax.process_index() == 0  # one process writes logs and samples; all checkpoint
    init_key, step_key, grid_key = jax.random.split(jax.random.key(t.seed), 3)
    state = jax.jit(functools.partial(init_state, gan),
                    out_shardings=sharding.replicated(mesh))(init_key)
    layout = jax.tree.map(ocp_layout, state)  # kept: the live state's buffers are donated
    checkpointer = Checkpointer(workdir / "checkpoints", keep=t.keep_checkpoints)
    # Restored before anything is written: a checkpoint that does not fit changes no file.
    state = checkpointer.restore_latest(like=layout) or state
    start_step = int(state.step)
    if writes:
        config_lib.save_config(config, workdir / "config.json")
        forget_metrics_after(workdir, start_step)  # steps after it are trained (logged) again

    # Every step shows D n_critic batches of real images; schedules and intervals count those
    # images (gan_jax.batching), each interval rounded up to whole steps.
    clock = run_batching(config)
    shown = functools.partial(batching.images_before, clock)
    last_step = total_steps(config)
    every = functools.partial(batching.interval_images, clock)
    due = functools.partial(batching.is_due, clock)
    log_every, sample_every = every(t.log_every_kimg), every(t.sample_every_kimg)
    checkpoint_every = every(t.checkpoint_every_kimg)
    eval_every = every(config.eval.every_kimg) if config.eval.every_kimg is not None else None
    eval_due = lambda step: step == last_step or (eval_every is not None and due(step, eval_every))

    train_step = _train_step(config, gan, mesh, clock)
    grid_latents = sharding.replicate(sample_latents(grid_key, t.grid_size, gan.latent_dim,
                                                     config.eval.truncation), mesh)
    # Compiled now, so the first sample grid does not stall training or count against img/s;
    # with standing statistics (eval.standing_stats) each grid gets its own.
    sampling_state = sampling_state_for(gan)
    generate = jax.jit(lambda state, z: generate_images(gan, sampling_state(state), z)).lower(
        state, grid_latents).compile()
    batches_from = functools.partial(data.batches_for, config.data.placement, images, labels,
                                     clock, t.seed, mesh)
    batches = batches_from(start_step=start_step)
    writer = MetricWriter(workdir) if writes else None
    bar = tqdm(total=int(shown(last_step)), initial=int(shown(start_step)),
               unit="img", unit_scale=True, dynamic_ncols=True, disable=not (progress and writes))

    def evaluate(state: TrainState, step: int) -> float:
        """Computes, logs and prints `config.eval.metrics`; returns the seconds it took."""
        evaluation_started = time.perf_counter()
        results = evaluator(state, progress_dir=workdir / PROGRESS_FOLDER)
        now = time.perf_counter()
        if writer:
            writer.write_scalars(step, {**results, "kimg": int(shown(step)) / 1000,
                                        "wall_s": now - started,
                                        "eval_s": now - evaluation_started})
        bar.write(f"step {step}: {describe(results, evaluator.reference, config.eval)}")
        return now - evaluation_started

    last_log = (start_step, time.perf_counter())
    rollbacks_left = t.rollback_tries
    in_flight: collections.deque[jax.Array] = collections.deque()
    step = start_step
    try:
        # A run stopped during (or just before) an evaluation resumes from the checkpoint saved
        # before it: evaluate that step now, or its result (for a finished run, the final one)
        # is never made.
        if (evaluator.specs and start_step > 0 and eval_due(start_step)
                and not _evaluated(workdir, start_step)):
            evaluate(state, start_step)
        while step < last_step:
            step += 1
            state, metrics = train_step(step - 1, state, next(batches), step_key)
            in_flight.append(metrics["finite"])
            if len(in_flight) > MAX_STEPS_IN_FLIGHT:  # see MAX_STEPS_IN_FLIGHT
                in_flight.popleft().block_until_ready()
            bar.update(int(shown(step) - shown(step - 1)))
            is_last = step == last_step
            stopping = stop.agreed(step)
            log_now = due(step, log_every) or is_last or stopping
            evaluate_now = evaluator.specs and not stopping and eval_due(step)
            # A checkpoint also precedes every evaluation, so a failed evaluation loses nothing.
            checkpoint_now = (due(step, checkpoint_every) or is_last or evaluate_now
                              or stopping)
            try:
                # Never log or save a diverged state.
                values = _checked(metrics, step, checkpointer) if log_now or checkpoint_now else {}
                if log_now:
                    now = time.perf_counter()
                    values["img_per_sec"] = (int(shown(step) - shown(last_log[0]))
                                             / (now - last_log[1]))
                    values["kimg"] = int(shown(step)) / 1000
                    values["wall_s"] = now - started
                    values.update(memory_use())
                    last_log = (step, now)
                    if writer:
                        writer.write_scalars(step, values)
                    bar.set_postfix(d_loss=f"{values['d_loss']:.3f}",
                                    g_loss=f"{values['g_loss']:.3f}", **stage_postfix(values))
                if checkpoint_now:
                    checkpointer.save(state)
            except TrainingDiverged as diverged:
                if rollbacks_left == 0 or checkpointer.latest_step() is None:
                    if t.rollback_tries:
                        raise TrainingDiverged(f"{diverged} (after {t.rollback_tries} "
                                               "rollbacks)") from None
                    raise
                rollbacks_left -= 1
                state = _rolled_back(checkpointer, layout, t.rollback_lr_factor)
                step = int(state.step)
                batches.close()
                batches = batches_from(start_step=step)
                if writer:
                    writer.close()
                    forget_metrics_after(workdir, step)
                    writer = MetricWriter(workdir)
                    writer.write_scalars(step, {"rollback": 1.0,
                                                "lr_multiplier": float(state.lr_multiplier)})
                bar.n = int(shown(step))
                bar.write(f"{diverged}: rolled back to step {step} with the learning rates x"
                          f"{float(state.lr_multiplier):g} ({rollbacks_left} rollbacks left)")
                last_log = (step, time.perf_counter())
                continue
            if step == start_step + 1:  # throughput is measured from after compilation
                jax.block_until_ready(state)
                last_log = (step, time.perf_counter())
            if stopping:
                checkpointer.wait()
                bar.write(f"stopped by {stop.requested} after step {step}: checkpoint saved in "
                          f"{checkpointer.directory}; run the same command to resume")
                break
            if due(step, sample_every) or is_last:  # one computation over every process
                _save_samples(generate(state, grid_latents), step, workdir, writer, writes)
            if evaluate_now:
                evaluation_s = evaluate(state, step)
                # Evaluation time is reported on its own, not as slower training.
                last_log = (last_log[0], last_log[1] + evaluation_s)
    finally:
        with contextlib.ExitStack() as closing:  # every one is closed, even if one fails
            closing.callback(checkpointer.close)
            closing.callback(batches.close)
            if writer:
                closing.callback(writer.close)
            closing.callback(bar.close)
    if start_step >= last_step:  # nothing left to train: still leave fresh samples behind
        _save_samples(generate(state, grid_latents), start_step, workdir, None, writes)
    return state


def _train_step(config: Config, gan: Gan, mesh: jax.sharding.Mesh, clock: batching.Batching
                ) -> Callable[[int, TrainState, dict, jax.Array], tuple[TrainState, dict]]:
    """(step before it, state, batch, key) -> (state, metrics): the compiled train step, or for
    a growing architecture (ProGAN) the compiled step of the schedule's level, each level
    compiled when its first stage begins (gan_jax.train.level_train_steps)."""
    levels = level_train_steps(gan)
    if levels is None:
        step_fn = sharding.jit_train_step(train_step_for(gan), mesh)
        return lambda step, state, batch, key: step_fn(state, batch, key)
    compiled = {level: sharding.jit_train_step(fn, mesh) for level, fn in levels.items()}
    return lambda step, state, batch, key: compiled[
        level_of_step(config, step, clock)](state, batch, key)


def stage_postfix(values: dict[str, float]) -> dict[str, str]:
    """A growing model's stage for the progress bar (ProGAN: res=16 alpha=0.42); else none."""
    if "resolution" not in values:
        return {}
    return {"res": f"{values['resolution']:.0f}", "alpha": f"{values['alpha']:.2f}"}


def _evaluated(workdir: Path, step: int) -> bool:
    """Whether the run's log holds an evaluation of `step` (its rows with `eval_s`)."""
    return any(row.get("step") == step and "eval_s" in row for row in read_metrics(workdir))


def _rolled_back(checkpointer: Checkpointer, layout: TrainState,
                 lr_factor: float) -> TrainState:
    """The last checkpoint's state with its learning-rate multiplier lowered by `lr_factor`."""
    checkpointer.wait()
    restored = checkpointer.restore_latest(like=layout)
    return restored.replace(lr_multiplier=restored.lr_multiplier * lr_factor)


def memory_use() -> dict[str, float]:
    """This process's resident host memory, and the devices' peak memory where the backend
    reports it (GPU and TPU; not the CPU), in GiB."""
    values = {"host_rss_gib": psutil.Process().memory_info().rss / 2**30}
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    if all(p is not None for p in peaks):
        values["device_peak_gib"] = max(peaks) / 2**30
    return values


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


def _save_samples(images: jax.Array, step: int, workdir: Path, writer: MetricWriter | None,
                  writes: bool) -> None:
    if not writes:
        return
    grid = sample.image_grid(sample.to_uint8(jax.device_get(images)))
    sample.save_png(grid, workdir / "samples" / f"step_{step:08d}.png")
    sample.save_png(grid, workdir / "samples" / "latest.png")
    if writer is not None:
        writer.write_image(step, "samples", grid)

"""How many real images each train step shows D, and how many came before it: the run's clock.

Schedules count real images (kimg), not steps: the learning-rate decay, the EMA's half-life,
ProGAN's stages, and the loop's logging, checkpoint and evaluation intervals. For most runs
every step shows train.batch_size * train.n_critic images, so step s has seen s times that. A
growing ProGAN with per-resolution batches (model.progan.batch_sizes) changes the batch when a
new resolution begins, so the clock is piecewise linear: a tuple of `BatchStage`s, each the
first step of a stretch of equal batches. The functions here take that tuple (`Batching`)
and work with NumPy on the host and jax.numpy inside the compiled step alike.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np


class BatchStage(NamedTuple):
    step: int  # its first train step (0-based)
    images: int  # real images shown before that step
    per_step: int  # real images each of its steps shows (D's batch times train.n_critic)


Batching = tuple[BatchStage, ...]


def constant(per_step: int) -> Batching:
    """The clock of a run whose every step shows `per_step` real images."""
    return (BatchStage(0, 0, per_step),)


def images_before(batching: Batching, step: Any, xp: Any = np) -> Any:
    """Real images shown before train step `step` (0-based; an integer or an integer array)."""
    first = batching[0]
    images = first.images + (step - first.step) * first.per_step
    for stage in batching[1:]:  # a handful of stages: a chain of selects, no search
        images = xp.where(step >= stage.step,
                          stage.images + (step - stage.step) * stage.per_step, images)
    return images


def stage_of_step(batching: Batching, step: int) -> BatchStage:
    """The stage that train step `step` belongs to."""
    return next(stage for stage in reversed(batching) if step >= stage.step)


def steps_to_show(batching: Batching, images: float) -> int:
    """The fewest steps (at least one) after which at least `images` real images were shown."""
    stage = next(stage for stage in reversed(batching) if images >= stage.images)
    return max(1, stage.step + math.ceil((images - stage.images) / stage.per_step))


def steps_for_kimg(kimg: float, per_step: int) -> int:
    """Steps of `per_step` real images that show at least `kimg` thousand (at least one)."""
    return max(1, math.ceil(kimg * 1000 / per_step))


def interval_images(batching: Batching, kimg: float) -> int:
    """An interval of `kimg` in real images, rounded up to a multiple of every stage's batch
    (their greatest common divisor): with one batch size, an interval of whole steps."""
    unit = math.gcd(*(stage.per_step for stage in batching))
    return steps_for_kimg(kimg, unit) * unit


def is_due(batching: Batching, step: int, every_images: int) -> bool:
    """Whether the `step` steps done so far crossed a multiple of `every_images` with their last
    step. With a constant batch and an interval of whole steps (`interval_images`), that is
    every k-th step: an interval of k steps."""
    return (images_before(batching, step) // every_images
            > images_before(batching, step - 1) // every_images)

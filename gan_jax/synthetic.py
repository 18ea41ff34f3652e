"""GAN-made labelled datasets: class-conditional samples as training data for a classifier.

    fake = labelled_samples(gan, state, per_class=500, key=key, truncation=1.0)
    train_set = mix(real_subset, fake, ratio=2.0)   # the real images + twice as many fakes

Samples come from `generate_images` (the EMA generator when the run has one, inference-mode
BatchNorm) and are rounded to uint8 like saved PNGs. `truncation` is BigGAN's truncation trick:
latents from a normal truncated to [-t, t] in every coordinate trade diversity for fidelity.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from gan_jax.data import Dataset
from gan_jax.errors import UserError
from gan_jax.sampling import generate_uint8, sample_latents
from gan_jax.train import Gan, TrainState


def labelled_samples(gan: Gan, state: TrainState, per_class: int, key: jax.Array,
                     truncation: float | None = None, batch_size: int = 500) -> Dataset:
    """`per_class` images of each class, labelled with the class they were generated for,
    grouped by class (0, 0, ..., 1, 1, ...)."""
    if gan.num_classes < 2:
        raise UserError("labelled samples need a class-conditional generator "
                        "(model.conditioning=projection or acgan)")
    labels = np.repeat(np.arange(gan.num_classes, dtype=np.int32), per_class)
    z = sample_latents(key, len(labels), gan.latent_dim, truncation)
    generate = jax.jit(functools.partial(generate_uint8, gan))
    images = [np.asarray(generate(state, z[i:i + batch_size], labels[i:i + batch_size]))
              for i in range(0, len(labels), batch_size)]
    return Dataset(np.concatenate(images), labels, gan.num_classes)


def mix(real: Dataset, generated: Dataset, ratio: float) -> Dataset:
    """The real images and `ratio` times as many generated ones, the same number from each
    class (the first ones of each class, so a larger ratio adds images to a smaller one's)."""
    classes = real.num_classes
    per_class, remainder = divmod(round(ratio * len(real.labels)), classes)
    if remainder:
        raise UserError(f"ratio {ratio} x {len(real.labels)} real images is not a whole "
                        f"number of images per class for {classes} classes")
    rows = []
    for label in range(classes):
        of_class = np.flatnonzero(generated.labels == label)
        if len(of_class) < per_class:
            raise UserError(f"ratio {ratio} needs {per_class} generated images of class "
                            f"{label} but there are {len(of_class)}; generate more")
        rows.append(of_class[:per_class])
    rows = np.concatenate(rows).astype(np.int64)
    return Dataset(np.concatenate([real.images, generated.images[rows]]),
                   np.concatenate([real.labels, generated.labels[rows]]), classes)

"""Differentiable augmentation (DiffAugment) with an ADA-style adaptive probability.

With little data, D memorises the training images and its feedback to G collapses. DiffAugment
(Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training") augments every
image D sees, real and fake alike, with transforms that are differentiable in the image so G is
trained through them. Because both sides are augmented the same way, D cannot tell "augmented"
from "real" and the augmentations do not leak into G's samples.

The ops and their constants follow the official DiffAugment-pytorch code, which works on [-1, 1]
images like these, with the same draws per sample:
  color        brightness x + (u - 0.5); saturation (x - mean_C) * 2u + mean_C;
               contrast (x - mean_CHW) * (u + 0.5) + mean_CHW;  u ~ U[0, 1) per sample each.
  translation  an integer shift in [-s, s] per axis, s = int(size / 8 + 0.5), zeros shifted in.
  cutout       a zeroed square of side int(size / 2 + 0.5) at a random, border-clipped centre.

StyleGAN2-ADA (Karras et al. 2020) adds the adaptive part: each op is applied to each sample
only with probability p, and p follows how sure D is about the reals (`adjust_probability`).
With p = 1 every op is always applied, which is DiffAugment exactly.

Everything is plain jnp on whole batches (no Python per sample, no host randomness), so it jits,
runs on batch-sharded arrays, and a traced p does not recompile. Random draws are float32 and
cast to the images' dtype, as the reference draws in its images' dtype; outputs keep the input's
dtype and shape. `translate` and `cutout` take their shifts and centres as arguments so they can
be checked against hand-chosen values.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gan_jax.config import AugmentConfig
from gan_jax.errors import UserError

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(text: str) -> tuple[str, ...]:
    """"color,translation,cutout" -> ("color", "translation", "cutout"); "" -> () (no-op)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if name not in POLICIES:
            raise UserError(f"augment.policy has unknown {name!r}; choose from "
                            f"{', '.join(POLICIES)}")
    return names


def check_augment_config(a: AugmentConfig) -> None:
    """The augment section's own rules: a known policy, and ADA only with one to adapt."""
    parse_policy(a.policy)
    if a.ada_target is not None and not a.policy:
        raise UserError(f"augment.ada_target={a.ada_target} adapts the augmentation "
                        "probability, but augment.policy is empty; set augment.policy, e.g. "
                        "augment.policy=color,translation,cutout")


def _scaled(size: int, ratio: float) -> int:
    # The reference's int(size * ratio + 0.5): round half up, e.g. 32 -> 4 for translation.
    return int(size * ratio + 0.5)


def _per_sample(values: jax.Array, dtype) -> jax.Array:
    """(N,) -> (N, 1, 1, 1) in `dtype`, to broadcast one value over each NHWC image."""
    return values.astype(dtype).reshape(-1, 1, 1, 1)


# --- color ----------------------------------------------------------------------------------------

def color_uniforms(key: jax.Array, n: int) -> jax.Array:
    """The three U[0, 1) draws per sample (brightness, saturation, contrast), shape (N, 3)."""
    return jax.random.uniform(key, (n, 3), jnp.float32)


def adjust_color(images: jax.Array, uniforms: jax.Array) -> jax.Array:
    """The reference's rand_brightness, rand_saturation, rand_contrast, in that order.

    `uniforms` are the raw U[0, 1) draws from `color_uniforms`; the affine maps onto each op's
    range are written out here exactly as the reference writes them.
    """
    brightness, saturation, contrast = (_per_sample(u, images.dtype) for u in uniforms.T)
    x = images + (brightness - 0.5)
    # Scaling the distance to the per-pixel grey level; a no-op for one channel (x == its mean).
    mean = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (saturation * 2) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (contrast + 0.5) + mean


# --- translation ----------------------------------------------------------------------------------

def translation_shifts(key: jax.Array, n: int, height: int, width: int,
                       ratio: float = TRANSLATION_RATIO) -> jax.Array:
    """(N, 2) int32 (rows, columns) shifts, uniform on [-s, s] with s = int(size * ratio + 0.5)."""
    limit = jnp.array([_scaled(height, ratio), _scaled(width, ratio)], jnp.int32)
    return jax.random.randint(key, (n, 2), -limit, limit + 1, jnp.int32)


def _shift_axis(images: jax.Array, shifts: jax.Array, axis: int) -> jax.Array:
    """Moves each image's content by shifts[i] along `axis`, filling with zeros (np.roll + zero)."""
    size = images.shape[axis]
    source = jnp.arange(size)[None, :] - shifts[:, None]  # output index j reads input j - shift
    shape = [len(images), 1, 1, 1]
    shape[axis] = size
    valid = ((source >= 0) & (source < size)).reshape(shape)
    # A gather, so the gradient flows back to the source pixels (a scatter-add in reverse mode).
    gathered = jnp.take_along_axis(images, jnp.clip(source, 0, size - 1).reshape(shape), axis)
    return jnp.where(valid, gathered, jnp.zeros((), images.dtype))


def translate(images: jax.Array, shifts: jax.Array) -> jax.Array:
    """Content of image i moves down by shifts[i, 0] rows and right by shifts[i, 1] columns.

    Pixels shifted in are 0, as the reference pads with zeros. The reference reads input j + t
    into output j, the mirror of this convention; with t symmetric on [-s, s] the two draw the
    same distribution of translations.
    """
    return _shift_axis(_shift_axis(images, shifts[:, 0], 1), shifts[:, 1], 2)


# --- cutout ---------------------------------------------------------------------------------------

def cutout_size(height: int, width: int, ratio: float = CUTOUT_RATIO) -> tuple[int, int]:
    return _scaled(height, ratio), _scaled(width, ratio)


def cutout_centers(key: jax.Array, n: int, height: int, width: int,
                   ratio: float = CUTOUT_RATIO) -> jax.Array:
    """(N, 2) int32 centres, uniform on [0, size + (1 - side % 2)) per axis as in the reference.

    The extra position for even sides keeps the square's placement symmetric: an even square
    starts side // 2 before its centre, so centres up to `size` let it reach the far border
    as far as centre 0 lets it reach the near one.
    """
    side_h, side_w = cutout_size(height, width, ratio)
    high = jnp.array([height + 1 - side_h % 2, width + 1 - side_w % 2], jnp.int32)
    return jax.random.randint(key, (n, 2), 0, high, jnp.int32)


def cutout(images: jax.Array, centers: jax.Array, ratio: float = CUTOUT_RATIO) -> jax.Array:
    """Zeroes rows [c0 - side_h // 2, + side_h) x columns [c1 - side_w // 2, + side_w) per image.

    The square is clipped to the image (the reference clamps its indices, which zeroes the same
    pixels). A mask rather than a scatter: zeroed pixels get zero gradient, the rest identity.
    """
    _, height, width, _ = images.shape
    side_h, side_w = cutout_size(height, width, ratio)

    def inside(size: int, side: int, center: jax.Array) -> jax.Array:
        start = (center - side // 2)[:, None]
        index = jnp.arange(size)[None, :]
        return (index >= start) & (index < start + side)

    square = (inside(height, side_h, centers[:, 0])[:, :, None]
              & inside(width, side_w, centers[:, 1])[:, None, :])
    return jnp.where(square[..., None], jnp.zeros((), images.dtype), images)


def random_flip(images: jax.Array, key: jax.Array, p: float = 0.5) -> jax.Array:
    """Each sample mirrored left-right with probability p."""
    flipped = jax.random.uniform(key, (len(images),)) < p
    return jnp.where(flipped.reshape(-1, 1, 1, 1), images[:, :, ::-1], images)


def consistency_transform(images: jax.Array, key: jax.Array) -> jax.Array:
    """T of consistency regularisation (Zhang et al. 2020; bCR, Zhao et al. 2021, as StudioGAN
    applies it): a horizontal flip with probability 1/2, then a translation of up to 1/8 of
    the side, zero-padded."""
    flip_key, shift_key = jax.random.split(key)
    return _random_translation(random_flip(images, flip_key), shift_key)


# --- the policy -----------------------------------------------------------------------------------

def _random_color(images: jax.Array, key: jax.Array) -> jax.Array:
    return adjust_color(images, color_uniforms(key, len(images)))


def _random_translation(images: jax.Array, key: jax.Array) -> jax.Array:
    n, height, width, _ = images.shape
    return translate(images, translation_shifts(key, n, height, width))


def _random_cutout(images: jax.Array, key: jax.Array) -> jax.Array:
    n, height, width, _ = images.shape
    return cutout(images, cutout_centers(key, n, height, width))


_OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "color": _random_color, "translation": _random_translation, "cutout": _random_cutout}


def diff_augment(images: jax.Array, key: jax.Array, policy: tuple[str, ...],
                 p: float | jax.Array = 1.0) -> jax.Array:
    """Applies the ops of `policy` in order, each to each sample with probability p.

    images: NHWC in [-1, 1], any float dtype. p: a Python float or a (traced) scalar. p = 1 is
    DiffAugment; p = 0 returns the images unchanged, bit for bit.
    """
    unknown = [name for name in policy if name not in _OPS]
    if unknown:
        raise ValueError(f"unknown augmentations {unknown}; choose from {', '.join(POLICIES)}")
    if not policy:
        return images
    for name, op_key in zip(policy, jax.random.split(key, len(policy))):
        gate_key, draw_key = jax.random.split(op_key)
        # ADA's per-sample, per-op coin: u < p is never true for p = 0 and always for p = 1,
        # since u lies in [0, 1). Computing the op for every sample and selecting keeps the
        # shapes static and the cost fixed whatever p is.
        applied = jax.random.uniform(gate_key, (len(images),), jnp.float32) < p
        images = jnp.where(applied.reshape(-1, 1, 1, 1), _OPS[name](images, draw_key), images)
    return images


def adjust_probability(p: float | jax.Array, real_logits: jax.Array, target: float,
                       batch_size: int, speed_kimg: float) -> jax.Array:
    """ADA's heuristic: raise p while D is too sure about the reals, lower it otherwise.

    r_t = E[sign(D(real))] measures overfitting (1: every real confidently "real"). p moves by
    batch_size / (speed_kimg * 1000) towards whichever side keeps r_t at `target`, clipped to
    [0, 1]. StyleGAN2-ADA adjusts every 4 steps from the signs accumulated over those steps,
    moving p by 4 * batch_size / (speed_kimg * 1000); this adjusts every step from that step's
    batch, so speed_kimg keeps its meaning: the number of kimg for p to move from 0 to 1.
    Returns a float32 scalar.
    """
    r_t = jnp.mean(jnp.sign(real_logits.astype(jnp.float32)))
    step = jnp.sign(r_t - target) * (batch_size / (speed_kimg * 1000.0))
    return jnp.clip(jnp.asarray(p, jnp.float32) + step, 0.0, 1.0).astype(jnp.float32)

"""Progressive growing of GANs (Karras et al. 2018, arXiv 1710.10196, "Progressive Growing of
GANs for Improved Quality, Stability, and Variation").

Layer for layer the paper's table 2 as its official code builds it (tkarras/
progressive_growing_of_gans, networks.py `G_paper` and `D_paper`), with nf(r) = min(fmap_base /
2^r, fmap_max) channels (model.progan.fmap_base / fmap_max; 8192 / 512 as published):

  G  z [+ one-hot class] -> pixel norm -> 4x4: dense to 4x4 maps (gain sqrt(2)/4), conv3x3
     then per side s = 8, 16, ...: upsample (nearest 2x), conv3x3, conv3x3       (nf(log2 s - 1))
     toRGB: conv1x1 to the image channels, linear (gain 1)
  D  fromRGB: conv1x1 (nf(log2 s - 1)) -> per side s = R, ..., 8: conv3x3 nf(log2 s - 1),
     conv3x3 nf(log2 s - 2) pooled 2x before its activation -> 4x4: minibatch stddev
     (model.minibatch_std, the official 4), conv3x3, dense nf(0) -> [the shared head: dense 1,
     gain 1]

Every convolution and dense layer has an equalised learning rate: weights stored N(0, 1) and
scaled at run time by He's constant gain / sqrt(fan_in) (gain sqrt(2) unless stated), biases
0; LeakyReLU 0.2 after every layer but the outputs; pixel norm after every G convolution.

Growing. Both networks hold the layers of every resolution from the start, and a run never
changes their parameters' structure, so checkpoints, resume and sharding work as for any other
model. Which resolution trains, and how far its fade-in has gone, are values of the state: the
collection "schedule" holds `level` (0 for 4x4, 1 for 8x8, ...) and `alpha` in [0, 1], which
the train step sets from the images seen (`growth`); one compiled step serves every stage, and
`nn.switch` runs the current level's layers only (and compiles those of the levels from the
first stage on). At level k, G's image is
(1 - alpha) * upsample(toRGB_{k-1}(h_{k-1})) + alpha * toRGB_k(h_k), and D's features
(1 - alpha) * fromRGB_{k-1}(avgpool(x_k)) + alpha * block_k(fromRGB_k(x_k)), as the paper's
figure 2. Both work at the model's full resolution, as the official code does: G's image is
upsampled (nearest) to it, and D pools its input down to the level's side first, so samples and
metrics see the current resolution upscaled to the final one, and the real images D sees
(`real_images`) fade between levels as the official `process_reals` makes them.

G's output is linear, as the paper's (the images are clipped to [-1, 1] only when they become
pixels). Where the paper's table 2 and the official code differ, this follows the code that
made the published results (its fused up- and downsampling convolutions: the same functions,
with D's activation after the pooling). The batch is train.batch_size at every stage, as in
the paper's runs (16 from 4x4 to 128x128, lower above for memory), or per resolution with
model.progan.batch_sizes, as the official code's later preset (128 at 4x4-16x16, 64 at 32x32,
...): each level then has its own batch, and the run's clock (gan_jax.batching) counts the
images of each stage's own batch, so every schedule stays in kimg.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import batching
from gan_jax.config import ModelConfig, ProGANSettings
from gan_jax.errors import UserError
from gan_jax.models import initializers
from gan_jax.models.architecture import (Architecture, Growth, conv_implementation, fixed,
                                         generator_classes)
from gan_jax.models.layers import (HE_GAIN, EqualizedConv, EqualizedDense, avgpool2x,
                                   minibatch_stddev, pixel_norm, upsample2x)

LEAK = 0.2
FIRST_SIDE = 4


def _leaky(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, LEAK)


def level_sides(resolution: int) -> tuple[int, ...]:
    """4, 8, ..., resolution: the side of each level."""
    return tuple(FIRST_SIDE * 2 ** i for i in range(int(math.log2(resolution // FIRST_SIDE)) + 1))


def first_level(start_resolution: int) -> int:
    """The level of a side: 0 for 4x4, 1 for 8x8, ..."""
    return int(math.log2(start_resolution // FIRST_SIDE))


def feature_maps(side: int, fmap_base: int, fmap_max: int, down: int = 1) -> int:
    """The official nf(log2(side) - down): channels of a level's maps."""
    return min(int(fmap_base / 2.0 ** (math.log2(side) - down)), fmap_max)


def check_resolution(resolution: int, start_resolution: int) -> None:
    for name, side in (("model.resolution", resolution),
                       ("model.progan.start_resolution", start_resolution)):
        if side < FIRST_SIDE or side & (side - 1):
            raise UserError(f"{name}={side}: progressive growing doubles the side from 4x4, so "
                            "it must be a power of 2, at least 4 (pad 28x28 data to 32 with "
                            "data.fit=pad)")
    if start_resolution > resolution:
        raise UserError(f"model.progan.start_resolution={start_resolution} is above "
                        f"model.resolution={resolution}; start at or below the final side")


def _scaled_to(x: jax.Array, side: int) -> jax.Array:
    """NHWC maps brought to `side` by nearest upsampling or average pooling (the official
    upscale2d / downscale2d), whole factors of 2."""
    if side > x.shape[1]:
        factor = side // x.shape[1]
        return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)
    if side < x.shape[1]:
        factor = x.shape[1] // side
        return nn.avg_pool(x, (factor, factor), strides=(factor, factor))
    return x


def _lerp(low: jax.Array, high: jax.Array, alpha: jax.Array) -> jax.Array:
    """(1 - alpha) low + alpha high: exactly `low` at alpha 0 and `high` at 1."""
    alpha = alpha.astype(low.dtype)
    return (1 - alpha) * low + alpha * high


def _schedule_variables(module: nn.Module, levels: int) -> None:
    """Declares the module's schedule, in setup: the full network, faded in, unless the train
    step sets them (`growth`)."""
    module.level = module.variable("schedule", "level",
                                   lambda: jnp.asarray(levels - 1, jnp.int32))
    module.alpha = module.variable("schedule", "alpha", lambda: jnp.ones((), jnp.float32))
    module.stage = module.variable("schedule", "stage", lambda: jnp.zeros((), jnp.int32))


def _switch(module: nn.Module, branches: list[Callable], *operands: Any):
    """The branch of the module's level: its `fixed_level` when set (the train step's, see
    `networks_at_levels`), else the schedule's, by `nn.switch` over the levels from the first
    stage's on (the levels below it never train). At initialisation every branch runs, so the
    parameters of every resolution exist from the start."""
    if module.is_initializing():
        for branch in branches:
            branch(module, *operands)
    if module.fixed_level is not None:
        return branches[module.fixed_level](module, *operands)
    first = module.first_level
    index = jnp.clip(module.level.value - first, 0, len(branches) - 1 - first)
    return nn.switch(index, branches[first:], module, *operands)


class GeneratorBlock(nn.Module):
    """The layers of one G level: the 4x4 dense and conv3x3, or upsample and two conv3x3."""

    side: int
    features: int
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(EqualizedConv, self.features, dtype=self.dtype,
                                 conv_implementation=self.conv_implementation)
        if self.side == FIRST_SIDE:
            h = EqualizedDense(FIRST_SIDE * FIRST_SIDE * self.features, gain=HE_GAIN / 4,
                               use_bias=False, dtype=self.dtype, name="dense")(x)
            h = h.reshape(x.shape[0], FIRST_SIDE, FIRST_SIDE, self.features)
            h = h + self.param("bias", nn.initializers.zeros, (self.features,)).astype(h.dtype)
            h = pixel_norm(_leaky(h))
            return pixel_norm(_leaky(conv(name="conv")(h)))
        h = pixel_norm(_leaky(conv(name="conv0")(upsample2x(x))))
        return pixel_norm(_leaky(conv(name="conv1")(h)))


class ProGANGenerator(nn.Module):
    """(z (N, latent_dim), labels) -> images (N, R, R, C) at the current level's side,
    upsampled to R."""

    resolution: int
    channels: int
    fmap_base: int = 8192
    fmap_max: int = 512
    num_classes: int = 0  # > 0: the one-hot class joins z (the official code's labels_in)
    first_level: int = 0  # the level of the first stage (model.progan.start_resolution)
    fixed_level: int | None = None  # this level whatever the schedule says (see _switch)
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    def setup(self):
        sides = level_sides(self.resolution)
        self.blocks = [GeneratorBlock(side, feature_maps(side, self.fmap_base, self.fmap_max),
                                      self.dtype, self.conv_implementation)
                       for side in sides]
        self.to_rgb = [EqualizedConv(self.channels, 1, gain=1.0, dtype=self.dtype,
                                     conv_implementation=self.conv_implementation)
                       for _ in sides]
        _schedule_variables(self, len(sides))

    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        del train  # no layer behaves differently in training
        sides = level_sides(self.resolution)
        x = z.astype(jnp.float32)
        if self.num_classes:
            x = jnp.concatenate([x, jax.nn.one_hot(labels, self.num_classes)], axis=-1)
        x = pixel_norm(x).astype(self.dtype)

        def at_level(k: int) -> Callable:
            def branch(module, x, alpha):
                hidden = [x]
                for block in module.blocks[:k + 1]:
                    hidden.append(block(hidden[-1]))
                image = module.to_rgb[k](hidden[-1])
                if k:  # the new level fades in over the previous one's upsampled image
                    image = _lerp(upsample2x(module.to_rgb[k - 1](hidden[-2])), image, alpha)
                return _scaled_to(image, self.resolution).astype(jnp.float32)
            return branch
        return _switch(self, [at_level(k) for k in range(len(sides))], x, self.alpha.value)


class DiscriminatorBlock(nn.Module):
    """The layers of one D level: conv3x3, conv3x3, avgpool; at 4x4 minibatch stddev, conv3x3
    and the dense layer to nf(0) features."""

    side: int
    features: int
    next_features: int
    minibatch_std: int = 4  # group size; 0 or 1 = off
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(EqualizedConv, dtype=self.dtype,
                                 conv_implementation=self.conv_implementation)
        if self.side == FIRST_SIDE:
            if self.minibatch_std > 1:
                x = minibatch_stddev(x, self.minibatch_std)
            h = _leaky(conv(self.features, name="conv")(x))
            return _leaky(EqualizedDense(self.next_features, dtype=self.dtype,
                                         name="dense")(h.reshape(h.shape[0], -1)))
        h = _leaky(conv(self.features, name="conv0")(x))
        # Pooled before the activation: the official code's fused conv2d_downscale2d (its
        # default; the paper's table 2 lists the activation first)
        return _leaky(avgpool2x(conv(self.next_features, name="conv1")(h)))


class ProGANDiscriminatorBody(nn.Module):
    """images (N, R, R, C) -> features (N, nf(0)) in float32, at the current level."""

    resolution: int
    fmap_base: int = 8192
    fmap_max: int = 512
    minibatch_std: int = 4
    first_level: int = 0
    fixed_level: int | None = None
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    def setup(self):
        sides = level_sides(self.resolution)
        nf = functools.partial(feature_maps, fmap_base=self.fmap_base, fmap_max=self.fmap_max)
        self.from_rgb = [EqualizedConv(nf(side), 1, dtype=self.dtype,
                                       conv_implementation=self.conv_implementation)
                         for side in sides]
        self.blocks = [DiscriminatorBlock(side, nf(side), nf(side, down=2), self.minibatch_std,
                                          self.dtype, self.conv_implementation)
                       for side in sides]
        _schedule_variables(self, len(sides))

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train
        sides = level_sides(self.resolution)

        def at_level(k: int) -> Callable:
            def branch(module, x, alpha):
                x = _scaled_to(x, sides[k]).astype(self.dtype)
                h = module.blocks[k](_leaky(module.from_rgb[k](x)))
                if k:  # the previous level's input path fades out
                    h = _lerp(_leaky(module.from_rgb[k - 1](avgpool2x(x))), h, alpha)
                for block in reversed(module.blocks[:k]):
                    h = block(h)
                return h.astype(jnp.float32)
            return branch
        return _switch(self, [at_level(k) for k in range(len(sides))], x, self.alpha.value)


# --- the schedule --------------------------------------------------------------------------


def growth(p: ProGANSettings, resolution: int, images: jax.Array, xp: Any = jnp
           ) -> dict[str, jax.Array]:
    """The schedule after `images` real images (an integer): {"level", "alpha", "stage",
    "resolution"}.

    The official TrainingSchedule: from model.progan.start_resolution, each resolution trains
    stable_kimg, then the next one fades in over fade_kimg, alpha rising linearly from 0 to 1,
    until the final side, which trains on. `stage` counts the stable and fading stages (0, 1,
    2, ...); the step resets the optimizers where it changes (reset_optimizer). `xp` is the
    array library: jax.numpy in the step, numpy where the host picks a level's compiled step.
    """
    first, last = first_level(p.start_resolution), len(level_sides(resolution)) - 1
    stable, fade = round(p.stable_kimg * 1000), round(p.fade_kimg * 1000)
    images = xp.asarray(images, xp.int32)
    phase = images // (stable + fade)
    within = images - phase * (stable + fade)
    fading = within > stable
    level = first + phase + fading.astype(xp.int32)
    alpha = xp.where(fading, (within - stable).astype(xp.float32) / max(fade, 1), 1.0)
    done = level > last
    level = xp.minimum(level, last).astype(xp.int32)
    return {"level": level, "resolution": FIRST_SIDE * 2 ** level,
            "alpha": xp.where(done, 1.0, alpha).astype(xp.float32),
            "stage": xp.minimum(2 * phase + fading, 2 * (last - first)).astype(xp.int32)}


def batch_sizes(p: ProGANSettings, resolution: int) -> dict[int, int]:
    """model.progan.batch_sizes as {side: D's batch}: "side:batch" pairs, e.g. the official
    code's later preset "4:128,8:128,16:128,32:64,64:32,128:16"; a side not listed trains at
    train.batch_size (its minibatch_base)."""
    sides = level_sides(resolution)[first_level(p.start_resolution):]
    sizes = {}
    for pair in filter(None, p.batch_sizes.replace(" ", "").split(",")):
        try:
            side, size = (int(part) for part in pair.split(":"))
        except ValueError:
            raise UserError(f"model.progan.batch_sizes={p.batch_sizes!r}: {pair!r} is not "
                            "'side:batch' (e.g. '4:128,8:128,16:64')") from None
        if side not in sides or size < 1:
            raise UserError(f"model.progan.batch_sizes={p.batch_sizes!r}: {pair!r} needs a "
                            f"side this run trains at ({', '.join(map(str, sides))}) and a "
                            "batch of at least 1")
        sizes[side] = size
    return sizes


def stage_batching(c: ModelConfig, batch_size: int, n_critic: int) -> batching.Batching | None:
    """The run's clock when model.progan.batch_sizes changes the batch with the level: each
    level's steps show its own batch (times n_critic) from the first step whose images seen
    put `growth` at that level, as the official loop sizes each minibatch by the schedule of
    the images shown so far. None when every level trains at train.batch_size."""
    p = c.progan
    check_resolution(c.resolution, p.start_resolution)  # may be asked before the networks
    sizes = batch_sizes(p, c.resolution)
    sides = level_sides(c.resolution)[first_level(p.start_resolution):]
    per_level = [sizes.get(side, batch_size) * n_critic for side in sides]
    if len(set(per_level)) == 1:  # one batch for every level the run trains
        return None if per_level[0] == batch_size * n_critic else batching.constant(per_level[0])
    stable, fade = round(p.stable_kimg * 1000), round(p.fade_kimg * 1000)
    stages = [batching.BatchStage(0, 0, per_level[0])]
    for level, per_step in enumerate(per_level[1:], 1):
        if per_step == stages[-1].per_step:
            continue  # the same batch goes on
        # the fewest images at which `growth` is at this level (its fade-in's first image)
        threshold = (level - 1) * (stable + fade) + stable + (1 if fade else 0)
        last = stages[-1]
        steps = max(0, math.ceil((threshold - last.images) / last.per_step))
        stage = batching.BatchStage(last.step + steps, last.images + steps * last.per_step,
                                    per_step)
        stages[-1:] = [last, stage] if steps else [stage]
    return tuple(stages)


def real_images(images: jax.Array, schedule: dict[str, jax.Array]) -> jax.Array:
    """Real images (N, R, R, C) as D sees them at the schedule's level: pooled to its side and,
    while it fades in, blended with the previous level's image (the official process_reals),
    then upsampled back to R."""
    resolution = images.shape[1]
    sides = level_sides(resolution)

    def at_level(k: int) -> Callable[[jax.Array, jax.Array], jax.Array]:
        def branch(images, alpha):
            x = _scaled_to(images, sides[k])
            if k:
                x = _lerp(upsample2x(avgpool2x(x)), x, alpha)
            return _scaled_to(x, resolution)
        return branch
    return jax.lax.switch(schedule["level"], [at_level(k) for k in range(len(sides))],
                          images, schedule["alpha"])


def networks_at_levels(c: ModelConfig, generator: nn.Module, discriminator: nn.Module
                       ) -> dict[int, tuple[nn.Module, nn.Module]]:
    """G and D (the body under its head) with the level fixed, for each level from the first
    stage's on: the train step switches between whole steps, one per level, instead of
    differentiating through `nn.switch`, whose gradient on XLA:CPU cost 4x the level's own
    (G at 32x32, batch 64: 2.6 s against 0.6 s)."""
    return {level: (generator.clone(fixed_level=level),
                    discriminator.clone(body=discriminator.body.clone(fixed_level=level)))
            for level in range(first_level(c.progan.start_resolution),
                               len(level_sides(c.resolution)))}


def build(c: ModelConfig, dtype: Any, d_norm: str) -> tuple[nn.Module, nn.Module]:
    p = c.progan
    check_resolution(c.resolution, p.start_resolution)
    if p.stable_kimg + p.fade_kimg <= 0:
        raise UserError("model.progan.stable_kimg + model.progan.fade_kimg must be positive: "
                        "they are the length of each stage")
    batch_sizes(p, c.resolution)  # refused here, before anything trains
    unsupported = [(key, value) for key, value, default in (
        ("model.d_norm", d_norm, "none"), ("model.spectral_norm", c.spectral_norm, "none"),
        ("model.attention_resolution", c.attention_resolution, 0)) if value != default]
    if unsupported:
        key, value = unsupported[0]
        raise UserError(f"model.arch='progan' has no {key.split('.')[-1]} (the paper's "
                        f"networks): {key}={value!r}; leave it at its default")
    # "auto" is lax's convolution on every platform: ProGAN's layers are thin (16-64 channels
    # at Fashion-MNIST's size), and on the CPU its 32x32 step took 0.73-0.76 s with lax
    # against 1.06-1.15 s as patch products, and later 0.54-0.55 s against 0.58-0.70 s in the
    # taps form (experiments/results/cpu_speed.md).
    conv = "xla" if c.conv_implementation == "auto" else conv_implementation(c)
    first = first_level(p.start_resolution)
    return (ProGANGenerator(c.resolution, c.channels, p.fmap_base, p.fmap_max,
                            generator_classes(c), first_level=first, dtype=dtype,
                            conv_implementation=conv),
            ProGANDiscriminatorBody(c.resolution, p.fmap_base, p.fmap_max, c.minibatch_std,
                                    first_level=first, dtype=dtype, conv_implementation=conv))


ARCHITECTURE = Architecture(
    build, head_init=fixed(initializers.normal(1.0)), default_d_norm="none",
    equalized_head=True,
    growth=Growth(schedule=lambda c, images, xp: growth(c.progan, c.resolution, images, xp),
                  real_images=real_images, networks_at_levels=networks_at_levels,
                  resets_optimizers=lambda c: c.progan.reset_optimizer,
                  batching=stage_batching))

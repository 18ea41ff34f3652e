"""ResNet generator and discriminator of WGAN-GP and SNGAN, for 32x32 and 64x64 images.

Sources: Gulrajani et al. 2017 (WGAN-GP, the CIFAR-10 ResNet of gan_cifar_resnet.py), Miyato et
al. 2018 (SNGAN, appendix tables 4 and 5) and the PyTorch/Chainer code that reproduces them:
chainer-gan-lib (resnet_32), Mimicry (torch_mimicry.nets.sngan.sngan_32 / sngan_64) and
StudioGAN (models/resnet.py). The layouts are Mimicry's.

Blocks (every convolution has a bias; 3x3 ones pad by 1):

  GBlock      residual  BN - ReLU - upsample (nearest 2x) - conv3x3 - BN - ReLU - conv3x3
              shortcut  upsample - conv1x1
  DBlockFirst residual  conv3x3 - ReLU - conv3x3 - avgpool2       (SNGAN's "optimized" block)
              shortcut  avgpool2 - conv1x1
  DBlock      residual  [norm] - ReLU - conv3x3 - [norm] - ReLU - conv3x3 [- avgpool2]
              shortcut  conv1x1 [- avgpool2] when it downsamples or changes the channels,
                        else the identity. The hidden width is the block's input width.

Networks (w = `width`):

  G 32x32  Dense(z -> 4*4*w) - 3 GBlocks (w -> w, 4 -> 8 -> 16 -> 32)
           - BN - ReLU - conv3x3(channels) - tanh.                  SNGAN / WGAN-GP: w = 256 / 128
  G 64x64  Dense(z -> 4*4*16w) - 4 GBlocks 16w -> 8w -> 4w -> 2w -> w (4 -> ... -> 64)
           - BN - ReLU - conv3x3(channels) - tanh.                  Mimicry SNGAN-64: w = 64
  D 32x32  DBlockFirst(w, 32 -> 16) - DBlock(w, down to 8) - DBlock(w) - DBlock(w)
           - ReLU - global sum pool.                                SNGAN / WGAN-GP: w = 128
  D 64x64  DBlockFirst(w, 64 -> 32) - DBlocks 2w, 4w, 8w, 16w, each halving (down to 2x2)
           - ReLU - global sum pool.                                Mimicry SNGAN-64: w = 64

At 64x64 `width` is the channels of G's last block and of D's first block (the DCGAN ngf / ndf
convention of this package), so Mimicry's ngf = ndf = 1024 is width 64. The field defaults (G
256, D 128) are the 32x32 models'; at 64x64 they would give 4096- and 2048-channel layers, so
set the widths explicitly there.

The discriminator body stops at the pooled features (N, F); the shared head in
gan_jax.models adds the linear output, projection or ACGAN classifier. `norm` ("none" for SNGAN,
"layer" for the WGAN-GP critic, or "batch") goes before each ReLU of the DBlocks; the first block
has none, as WGAN-GP's OptimizedResBlockDisc1. `minibatch_std` > 0 appends ProGAN's
standard-deviation map before the last DBlock, whose input then has one extra channel (so it
gets a 1x1 shortcut; its hidden width stays w). WGAN-GP pools by the mean and upsamples by
depth-to-space; here both papers share SNGAN's sum pool and nearest upsampling.

Initialisation (chainer-gan-lib, Mimicry): Xavier/Glorot uniform with gain sqrt(2) for the 3x3
convolutions inside the residual branches, gain 1 for the 1x1 shortcuts, G's input Dense and
output convolution; biases start at zero. With `spectral_norm` every convolution and Dense of
the network (G as in SAGAN / BigGAN, D as in SNGAN) is spectrally normalised; BatchNorm is not.
With `num_classes` > 0 every BatchNorm of G is class-conditional (the projection cGAN's G).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.architecture import (Architecture, check_attention_resolution,
                                         conv_implementation, fixed, generator_classes)
from gan_jax.models.convolution import Conv
from gan_jax.models.initializers import glorot_uniform
from gan_jax.models.layers import (AttentionAt, GeneratorNorm, avgpool2x, feature_norm,
                                   maybe_spectral, minibatch_stddev, upsample2x)

RESOLUTIONS = (32, 64)
BOTTOM = 4  # side of G's first feature map


RESIDUAL_INIT = glorot_uniform(math.sqrt(2.0))  # 3x3 convolutions of the residual branches
SHORTCUT_INIT = glorot_uniform(1.0)  # 1x1 shortcuts, G's input Dense and output convolution

Layer = Callable[[nn.Module, jax.Array], jax.Array]


def check_resolution(resolution: int) -> None:
    if resolution not in RESOLUTIONS:
        raise UserError(f"model.resolution={resolution} is not supported by the ResNet models; "
                        f"choose one of {', '.join(map(str, RESOLUTIONS))}")


def generator_widths(resolution: int, width: int) -> tuple[int, ...]:
    """Channels of G's first feature map, then the output of each GBlock."""
    check_resolution(resolution)
    if resolution == 32:
        return (width,) * 4
    return tuple(width * m for m in (16, 8, 4, 2, 1))


def discriminator_widths(resolution: int, width: int) -> tuple[tuple[int, bool], ...]:
    """(output channels, downsamples) of each D block; the first is the optimized block."""
    check_resolution(resolution)
    if resolution == 32:
        return (width, True), (width, True), (width, False), (width, False)
    return tuple((width * m, True) for m in (1, 2, 4, 8, 16))


def _conv(features: int, kernel: int, init: nn.initializers.Initializer, name: str, *,
          dtype: Any, implementation: str) -> nn.Conv:
    return Conv(features, (kernel, kernel), padding=kernel // 2, kernel_init=init,
                bias_init=nn.initializers.zeros, dtype=dtype, name=name,
                implementation=implementation)


class GBlock(nn.Module):
    features: int
    num_classes: int = 0
    bn_momentum: float = 0.9
    spectral_norm: bool = False
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, *, train: bool) -> jax.Array:
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        conv = functools.partial(_conv, dtype=self.dtype, implementation=self.conv_implementation)
        norm = lambda h, name: GeneratorNorm(self.num_classes, self.bn_momentum,
                                             dtype=self.dtype, name=name)(h, labels, train=train)
        h = upsample2x(nn.relu(norm(x, "bn1")))
        h = layer(conv(self.features, 3, RESIDUAL_INIT, "conv1"), h)
        h = nn.relu(norm(h, "bn2"))
        h = layer(conv(self.features, 3, RESIDUAL_INIT, "conv2"), h)
        shortcut = layer(conv(self.features, 1, SHORTCUT_INIT, "shortcut"),
                         upsample2x(x))
        return h + shortcut


class DBlockFirst(nn.Module):
    """SNGAN's "optimized" first block: works on the image itself, always downsamples."""

    features: int
    spectral_norm: bool = False
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        conv = functools.partial(_conv, dtype=self.dtype, implementation=self.conv_implementation)
        h = layer(conv(self.features, 3, RESIDUAL_INIT, "conv1"), x)
        h = layer(conv(self.features, 3, RESIDUAL_INIT, "conv2"), nn.relu(h))
        shortcut = layer(conv(self.features, 1, SHORTCUT_INIT, "shortcut"),
                         avgpool2x(x))
        return avgpool2x(h) + shortcut


class DBlock(nn.Module):
    features: int
    downsample: bool
    hidden: int = 0  # width of the first convolution; 0 = the input's channels
    norm: str = "none"
    spectral_norm: bool = False
    bn_momentum: float = 0.9
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        conv = functools.partial(_conv, dtype=self.dtype, implementation=self.conv_implementation)
        norm = functools.partial(feature_norm, self.norm, train=train, momentum=self.bn_momentum,
                                 dtype=self.dtype)
        h = layer(conv(self.hidden or x.shape[-1], 3, RESIDUAL_INIT, "conv1"),
                  nn.relu(norm(x)))
        h = layer(conv(self.features, 3, RESIDUAL_INIT, "conv2"), nn.relu(norm(h)))
        shortcut = x
        if self.downsample or x.shape[-1] != self.features:
            shortcut = layer(conv(self.features, 1, SHORTCUT_INIT, "shortcut"), x)
        if self.downsample:
            h, shortcut = avgpool2x(h), avgpool2x(shortcut)
        return h + shortcut


class ResNetGenerator(nn.Module):
    """z (N, latent) [, labels (N,)] -> images (N, R, R, channels) in [-1, 1], in `dtype`."""

    resolution: int  # 32 or 64
    channels: int
    width: int = 256  # 32x32: every block's channels; 64x64: the last block's (16w ... w)
    num_classes: int = 0  # > 0: class-conditional BatchNorm everywhere
    bn_momentum: float = 0.9
    spectral_norm: bool = False  # on every convolution and Dense (SAGAN, BigGAN)
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"
    attention_resolution: int = 0  # SAGAN self-attention after the block of this side

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        widths = generator_widths(self.resolution, self.width)
        attention = AttentionAt(self.attention_resolution, kernel_init=RESIDUAL_INIT,
                                spectral_norm=self.spectral_norm, dtype=self.dtype)
        if self.num_classes and labels is None:
            raise ValueError("a class-conditional ResNetGenerator needs labels")
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        conv = functools.partial(_conv, dtype=self.dtype, implementation=self.conv_implementation)
        x = layer(nn.Dense(BOTTOM * BOTTOM * widths[0], kernel_init=SHORTCUT_INIT,
                           dtype=self.dtype, name="dense"), z)
        x = x.reshape(z.shape[0], BOTTOM, BOTTOM, widths[0])
        for i, features in enumerate(widths[1:], start=1):
            x = GBlock(features, self.num_classes, self.bn_momentum, self.spectral_norm,
                       self.dtype, self.conv_implementation, name=f"block{i}")(
                x, labels, train=train)
            x = attention(x, train=train)
        x = GeneratorNorm(self.num_classes, self.bn_momentum, dtype=self.dtype,
                          name="bn_out")(x, labels, train=train)
        x = layer(conv(self.channels, 3, SHORTCUT_INIT, "conv_out"), nn.relu(x))
        return jnp.tanh(x).astype(self.dtype)


class ResNetDiscriminatorBody(nn.Module):
    """Images (N, R, R, C) -> features (N, F) float32: residual blocks, ReLU, global sum pool."""

    resolution: int  # 32 or 64
    width: int = 128  # 32x32: every block's channels; 64x64: the first block's (w ... 16w)
    norm: str = "none"  # before each ReLU of the DBlocks: "none" (SNGAN), "layer" (WGAN-GP)
    spectral_norm: bool = False
    minibatch_std: int = 0  # group size of ProGAN's stddev map before the last block; 0 = off
    bn_momentum: float = 0.9
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"
    attention_resolution: int = 0  # SAGAN self-attention after the first block of this side

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        blocks = discriminator_widths(self.resolution, self.width)
        attention = AttentionAt(self.attention_resolution, kernel_init=RESIDUAL_INIT,
                                spectral_norm=self.spectral_norm, dtype=self.dtype)
        x = DBlockFirst(blocks[0][0], self.spectral_norm, self.dtype, self.conv_implementation,
                        name="block1")(
            x.astype(self.dtype), train=train)
        x = attention(x, train=train)
        for i, (features, downsample) in enumerate(blocks[1:], start=2):
            hidden = 0
            if self.minibatch_std and i == len(blocks):
                hidden = x.shape[-1]
                x = minibatch_stddev(x, self.minibatch_std)
            x = DBlock(features, downsample, hidden, self.norm, self.spectral_norm,
                       self.bn_momentum, self.dtype, self.conv_implementation,
                       name=f"block{i}")(x, train=train)
            x = attention(x, train=train)
        return jnp.sum(nn.relu(x).astype(jnp.float32), axis=(1, 2))


def hidden_sides(resolution: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sides of G's block outputs and of D's (where self-attention can go)."""
    g_blocks = len(generator_widths(resolution, 1)) - 1
    d_sides, side = [], resolution
    for _, downsample in discriminator_widths(resolution, 1):
        side //= 2 if downsample else 1
        d_sides.append(side)
    return tuple(BOTTOM * 2 ** k for k in range(1, g_blocks + 1)), tuple(d_sides)


def build(c: ModelConfig, dtype: Any, d_norm: str) -> tuple[nn.Module, nn.Module]:
    check_attention_resolution(c.attention_resolution, *hidden_sides(c.resolution), "resnet")
    conv = conv_implementation(c)
    return (ResNetGenerator(c.resolution, c.channels, c.g_width,
                            num_classes=generator_classes(c), bn_momentum=c.bn_momentum,
                            spectral_norm=c.spectral_norm == "g_and_d", dtype=dtype,
                            conv_implementation=conv,
                            attention_resolution=c.attention_resolution),
            ResNetDiscriminatorBody(c.resolution, c.d_width, norm=d_norm,
                                    spectral_norm=c.spectral_norm != "none",
                                    minibatch_std=c.minibatch_std, bn_momentum=c.bn_momentum,
                                    dtype=dtype, conv_implementation=conv,
                                    attention_resolution=c.attention_resolution))


ARCHITECTURE = Architecture(build, head_init=fixed(glorot_uniform(1.0)),
                            default_d_norm="none")

"""The InfoGAN-style networks of "Are GANs Created Equal?" (Lucic et al. 2018, arXiv 1711.10337).

Lucic et al. train every loss on MNIST and Fashion-MNIST with the networks of InfoGAN's MNIST
experiment (Chen et al. 2016, appendix C.1), as google/compare_gan's `architectures/infogan.py`
builds them; with `width` = 64 (the defaults) the layers are exactly theirs:

  G  z -> FC 16w (1024) -> BN -> LReLU -> FC 2w * (H/4) * (W/4) (128 x 7 x 7) -> BN -> LReLU
       -> 4x4 stride-2 transposed conv to w (64) channels -> BN -> LReLU
       -> 4x4 stride-2 transposed conv to the image channels -> sigmoid
  D  4x4 stride-2 conv w (64) -> LReLU -> 4x4 stride-2 conv 2w (128) -> norm -> LReLU
       -> FC 16w (1024) -> norm -> LReLU -> [the shared head: FC 1]

LeakyReLU slope 0.2 in both networks (compare_gan's `lrelu`, in G too); every layer has a bias;
weights N(0, 0.02), biases 0; BatchNorm with epsilon 1e-3 (compare_gan's) and gain 1, bias 0.
D's `norm` is compare_gan's `discriminator_normalization`: batch (the paper's default), layer or
none; Lucic et al. drop BatchNorm from the critics of the gradient-penalty losses (WGAN-GP,
DRAGAN), whose penalty is per sample. The sigmoid's [0, 1] image is mapped to the [-1, 1] every
gan_jax generator emits (2 * sigmoid(x) - 1, the same function as tanh(x / 2)).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.architecture import (Architecture, conv_implementation, fixed,
                                         generator_classes)
from gan_jax.models import initializers
from gan_jax.models.convolution import Conv, ConvTranspose
from gan_jax.models.layers import GeneratorNorm, feature_norm, maybe_spectral

WEIGHT_INIT = initializers.normal(0.02)
BN_EPSILON = 1e-3  # compare_gan's standardize_batch
LEAK = 0.2
_KERNEL = (4, 4)


def check_resolution(resolution: int) -> None:
    if resolution % 4 or resolution < 4:
        raise UserError(f"model.resolution={resolution} cannot be made by the InfoGAN networks: "
                        "they upsample twice from resolution/4; use a multiple of 4 (e.g. 28)")


class InfoGANGenerator(nn.Module):
    resolution: int
    channels: int
    width: int = 64
    bn_momentum: float = 0.999  # compare_gan's moving-average decay
    num_classes: int = 0  # > 0: class-conditional BatchNorm gains and biases
    spectral_norm: bool = False
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        check_resolution(self.resolution)
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        norm = lambda x: GeneratorNorm(self.num_classes, self.bn_momentum, dtype=self.dtype,
                                       epsilon=BN_EPSILON)(x, labels, train=train)
        act = lambda x: nn.leaky_relu(norm(x), LEAK)
        dense = lambda n: nn.Dense(n, kernel_init=WEIGHT_INIT, dtype=self.dtype)
        side = self.resolution // 4
        x = act(layer(dense(16 * self.width), z))
        x = act(layer(dense(2 * self.width * side * side), x))
        x = x.reshape(z.shape[0], side, side, 2 * self.width)
        up = lambda n: ConvTranspose(n, _KERNEL, strides=(2, 2), padding="SAME",
                                     kernel_init=WEIGHT_INIT, dtype=self.dtype,
                                     implementation=self.conv_implementation)
        x = act(layer(up(self.width), x))
        x = layer(up(self.channels), x)
        return 2 * nn.sigmoid(x) - 1


class InfoGANDiscriminatorBody(nn.Module):
    """Everything below the shared head's FC 1: the LReLU'd 16w features."""

    resolution: int
    width: int = 64
    bn_momentum: float = 0.999
    norm: str = "batch"  # "batch" (the paper), "layer" or "none" (gradient penalties)
    spectral_norm: bool = False
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_resolution(self.resolution)
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        norm = lambda x: feature_norm(self.norm, x, train=train, momentum=self.bn_momentum,
                                      dtype=self.dtype, epsilon=BN_EPSILON)
        down = lambda n: Conv(n, _KERNEL, strides=(2, 2), padding="SAME",
                              kernel_init=WEIGHT_INIT, dtype=self.dtype,
                              implementation=self.conv_implementation)
        x = nn.leaky_relu(layer(down(self.width), x), LEAK)
        x = nn.leaky_relu(norm(layer(down(2 * self.width), x)), LEAK)
        x = x.reshape(x.shape[0], -1)
        x = layer(nn.Dense(16 * self.width, kernel_init=WEIGHT_INIT, dtype=self.dtype), x)
        return nn.leaky_relu(norm(x), LEAK)


def build(c: ModelConfig, dtype: Any, d_norm: str) -> tuple[nn.Module, nn.Module]:
    if c.attention_resolution:
        raise UserError(f"model.attention_resolution={c.attention_resolution} needs "
                        "model.arch='dcgan' or 'resnet'; the infogan networks have no "
                        "self-attention: set model.attention_resolution=0")
    check_resolution(c.resolution)  # fail early, with the user-facing message
    conv = conv_implementation(c)
    if c.minibatch_std:
        raise UserError("model.minibatch_std needs model.arch='dcgan' or 'resnet': the InfoGAN "
                        "discriminator's last features are a vector, not a feature map")
    return (InfoGANGenerator(c.resolution, c.channels, c.g_width, c.bn_momentum,
                             num_classes=generator_classes(c),
                             spectral_norm=c.spectral_norm == "g_and_d", dtype=dtype,
                             conv_implementation=conv),
            InfoGANDiscriminatorBody(c.resolution, c.d_width, c.bn_momentum, norm=d_norm,
                                     spectral_norm=c.spectral_norm != "none", dtype=dtype,
                                     conv_implementation=conv))


ARCHITECTURE = Architecture(build, head_init=fixed(WEIGHT_INIT), default_d_norm="batch")

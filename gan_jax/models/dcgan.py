"""DCGAN generator and discriminator (Radford et al. 2015) for square images.

The generator projects z to a `base x base` feature map and doubles the side with stride-2
transposed convolutions (BatchNorm + ReLU, tanh output); the discriminator mirrors it with
stride-2 convolutions (LeakyReLU 0.2, BatchNorm on all but the first block). Widths follow the
paper's convention: the generator's last hidden block has `width` channels (ngf) and each block
before it twice as many; the discriminator's first block has `width` channels (ndf).

`base` is 4 for resolutions 4*2^k (32, 64, 128) and 7 for 7*2^k (28, 56), so 28x28 data is
modelled natively (7 -> 14 -> 28) instead of padded.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.architecture import (Architecture, check_attention_resolution,
                                         conv_implementation, fixed, generator_classes)
from gan_jax.models import initializers
from gan_jax.models.convolution import Conv, ConvTranspose
from gan_jax.models.layers import (AttentionAt, GeneratorNorm, feature_norm, maybe_spectral,
                                   minibatch_stddev)

_BASES = (4, 7)
_KERNEL = (4, 4)
# The paper initialises every weight from N(0, 0.02) (BatchNorm scales too, around 1).
WEIGHT_INIT = initializers.normal(0.02)
_BN_SCALE_INIT = initializers.normal(0.02, mean=1.0)


def upsampling_plan(resolution: int) -> tuple[int, int]:
    """Returns (base side, number of 2x up/downsamplings) that reach `resolution`."""
    for base in _BASES:
        ratio, remainder = divmod(resolution, base)
        if remainder == 0 and ratio >= 2 and ratio & (ratio - 1) == 0:
            return base, ratio.bit_length() - 1
    raise UserError(f"model.resolution={resolution} cannot be made by DCGAN: it needs "
                    "4*2^k or 7*2^k with k >= 1 (e.g. 28, 32, 64); set model.resolution to one")


class DCGANGenerator(nn.Module):
    resolution: int
    channels: int
    width: int = 64
    bn_momentum: float = 0.9
    kernel_init: nn.initializers.Initializer = WEIGHT_INIT
    num_classes: int = 0  # > 0: class-conditional BatchNorm gains and biases
    spectral_norm: bool = False
    dtype: Any = jnp.float32  # compute dtype; parameters stay float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"
    attention_resolution: int = 0  # SAGAN self-attention on the hidden map of this side

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        base, n_up = upsampling_plan(self.resolution)
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        attention = AttentionAt(self.attention_resolution, kernel_init=self.kernel_init,
                                spectral_norm=self.spectral_norm, dtype=self.dtype)
        norm = lambda x: GeneratorNorm(self.num_classes, self.bn_momentum, _BN_SCALE_INIT,
                                       self.dtype)(x, labels, train=train)
        features = self.width * 2 ** (n_up - 1)
        x = layer(nn.Dense(base * base * features, use_bias=False, kernel_init=self.kernel_init,
                           dtype=self.dtype), z)
        x = x.reshape(z.shape[0], base, base, features)
        x = attention(nn.relu(norm(x)), train=train)
        for _ in range(n_up - 1):
            features //= 2
            x = layer(ConvTranspose(features, _KERNEL, strides=(2, 2), padding="SAME",
                                    use_bias=False, kernel_init=self.kernel_init,
                                    dtype=self.dtype,
                                    implementation=self.conv_implementation), x)
            x = attention(nn.relu(norm(x)), train=train)
        x = layer(ConvTranspose(self.channels, _KERNEL, strides=(2, 2), padding="SAME",
                                kernel_init=self.kernel_init, dtype=self.dtype,
                                implementation=self.conv_implementation), x)
        return jnp.tanh(x)


class DCGANDiscriminatorBody(nn.Module):
    """Strided convolutions down to the base x base map, flattened: the features under the head.

    The head's Dense(1) over these features is the paper's final valid 4x4 convolution.
    """

    resolution: int
    width: int = 64
    bn_momentum: float = 0.9
    kernel_init: nn.initializers.Initializer = WEIGHT_INIT
    norm: str = "batch"  # "batch" (the paper), "layer" or "none" (gradient penalties, SNGAN)
    spectral_norm: bool = False
    minibatch_std: int = 0  # group size of ProGAN's stddev feature before the head; 0 = off
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"  # gan_jax.models.convolution: "matmul" or "xla"
    attention_resolution: int = 0  # SAGAN self-attention on the hidden map of this side

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        _, n_down = upsampling_plan(self.resolution)
        features = self.width
        attention = AttentionAt(self.attention_resolution, kernel_init=self.kernel_init,
                                spectral_norm=self.spectral_norm, dtype=self.dtype)
        for block in range(n_down):
            # The first block has no normalisation (DCGAN paper); a normalised block needs no
            # bias of its own.
            normalised = block > 0 and self.norm != "none"
            x = maybe_spectral(Conv(features, _KERNEL, strides=(2, 2), padding="SAME",
                                    use_bias=not normalised, kernel_init=self.kernel_init,
                                    dtype=self.dtype, implementation=self.conv_implementation),
                               x,
                               spectral_norm=self.spectral_norm, train=train)
            if normalised:
                x = feature_norm(self.norm, x, train=train, momentum=self.bn_momentum,
                                 dtype=self.dtype)
            x = attention(nn.leaky_relu(x, 0.2), train=train)
            features *= 2
        if self.minibatch_std:
            x = minibatch_stddev(x, self.minibatch_std)
        return x.reshape(x.shape[0], -1)


def hidden_sides(resolution: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sides of G's and of D's hidden feature maps (where self-attention can go)."""
    base, n_up = upsampling_plan(resolution)
    return (tuple(base * 2 ** k for k in range(n_up)),
            tuple(resolution // 2 ** k for k in range(1, n_up + 1)))


def build(c: ModelConfig, dtype: Any, d_norm: str) -> tuple[nn.Module, nn.Module]:
    upsampling_plan(c.resolution)  # fail early, with the user-facing message
    check_attention_resolution(c.attention_resolution, *hidden_sides(c.resolution), "dcgan")
    conv = conv_implementation(c)
    return (DCGANGenerator(c.resolution, c.channels, c.g_width, c.bn_momentum,
                           num_classes=generator_classes(c),
                           spectral_norm=c.spectral_norm == "g_and_d", dtype=dtype,
                           conv_implementation=conv, attention_resolution=c.attention_resolution),
            DCGANDiscriminatorBody(c.resolution, c.d_width, c.bn_momentum, norm=d_norm,
                                   spectral_norm=c.spectral_norm != "none",
                                   minibatch_std=c.minibatch_std, dtype=dtype,
                                   conv_implementation=conv,
                                   attention_resolution=c.attention_resolution))


ARCHITECTURE = Architecture(build, head_init=fixed(WEIGHT_INIT), default_d_norm="batch")

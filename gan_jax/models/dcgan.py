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

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.errors import UserError

_BASES = (4, 7)
_KERNEL = (4, 4)
# The paper initialises every weight from N(0, 0.02) (BatchNorm scales too, around 1).
WEIGHT_INIT = nn.initializers.normal(0.02)


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _batch_norm(train: bool, momentum: float) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                        scale_init=_bn_scale_init)


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

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        base, n_up = upsampling_plan(self.resolution)
        features = self.width * 2 ** (n_up - 1)
        x = nn.Dense(base * base * features, use_bias=False, kernel_init=self.kernel_init)(z)
        x = x.reshape(z.shape[0], base, base, features)
        x = nn.relu(_batch_norm(train, self.bn_momentum)(x))
        for _ in range(n_up - 1):
            features //= 2
            x = nn.ConvTranspose(features, _KERNEL, strides=(2, 2), padding="SAME",
                                 use_bias=False, kernel_init=self.kernel_init)(x)
            x = nn.relu(_batch_norm(train, self.bn_momentum)(x))
        x = nn.ConvTranspose(self.channels, _KERNEL, strides=(2, 2), padding="SAME",
                             kernel_init=self.kernel_init)(x)
        return jnp.tanh(x)


class DCGANDiscriminator(nn.Module):
    resolution: int
    width: int = 64
    bn_momentum: float = 0.9
    kernel_init: nn.initializers.Initializer = WEIGHT_INIT

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        _, n_down = upsampling_plan(self.resolution)
        features = self.width
        for block in range(n_down):
            # The first block has no BatchNorm (DCGAN paper), so it keeps a bias.
            x = nn.Conv(features, _KERNEL, strides=(2, 2), padding="SAME", use_bias=block == 0,
                        kernel_init=self.kernel_init)(x)
            if block > 0:
                x = _batch_norm(train, self.bn_momentum)(x)
            x = nn.leaky_relu(x, 0.2)
            features *= 2
        # A dense layer over the base x base map: the paper's final valid 4x4 convolution.
        return nn.Dense(1, kernel_init=self.kernel_init)(x.reshape(x.shape[0], -1))[:, 0]

"""The fully-connected GAN of the original paper (Goodfellow et al. 2014, MNIST).

Generator: ReLU hidden layers (1200 units in the paper) and a tanh output, since gan_jax scales
images to [-1, 1] (the paper used sigmoid on [0, 1]). Discriminator: maxout hidden layers
(240 units of 5 pieces in the paper) with dropout, as in the paper's pylearn2 model.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPGenerator(nn.Module):
    resolution: int
    channels: int
    width: int = 1200
    layers: int = 2

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        del train  # no layer behaves differently in training
        x = z
        for _ in range(self.layers):
            x = nn.relu(nn.Dense(self.width)(x))
        x = nn.Dense(self.resolution * self.resolution * self.channels)(x)
        return jnp.tanh(x).reshape(z.shape[0], self.resolution, self.resolution, self.channels)


class Maxout(nn.Module):
    """`units` outputs, each the maximum of `pieces` affine functions of the input."""

    units: int
    pieces: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = nn.Dense(self.units * self.pieces)(x)
        return y.reshape(*x.shape[:-1], self.units, self.pieces).max(axis=-1)


class MLPDiscriminator(nn.Module):
    width: int = 240
    layers: int = 2
    pieces: int = 5
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for _ in range(self.layers):
            x = Maxout(self.width, self.pieces)(x)
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(1)(x)[:, 0]

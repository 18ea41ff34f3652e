"""The fully-connected GAN of the original paper (Goodfellow et al. 2014, MNIST).

Generator: ReLU hidden layers (1200 units in the paper) and a tanh output, since gan_jax scales
images to [-1, 1] (the paper used sigmoid on [0, 1]). Discriminator: maxout hidden layers
(240 units of 5 pieces in the paper) with dropout, as in the paper's pylearn2 model; its output
layer is the shared head in `gan_jax.models.Discriminator`.

Conditional variants (Mirza & Osindero 2014) concatenate a learned class embedding to z.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.layers import maybe_spectral
from gan_jax.models.architecture import Architecture, fixed, generator_classes


class MLPGenerator(nn.Module):
    resolution: int
    channels: int
    width: int = 1200
    layers: int = 2
    num_classes: int = 0  # > 0: a class embedding of z's size is concatenated to z
    spectral_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        layer = functools.partial(maybe_spectral, spectral_norm=self.spectral_norm, train=train)
        x = z
        if self.num_classes:
            x = jnp.concatenate([z, nn.Embed(self.num_classes, z.shape[-1])(labels)], axis=-1)
        for _ in range(self.layers):
            x = nn.relu(layer(nn.Dense(self.width, dtype=self.dtype), x))
        x = layer(nn.Dense(self.resolution * self.resolution * self.channels, dtype=self.dtype), x)
        return jnp.tanh(x).reshape(z.shape[0], self.resolution, self.resolution, self.channels)


class Maxout(nn.Module):
    """`units` outputs, each the maximum of `pieces` affine functions of the input."""

    units: int
    pieces: int
    spectral_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        y = maybe_spectral(nn.Dense(self.units * self.pieces, dtype=self.dtype), x,
                           spectral_norm=self.spectral_norm, train=train)
        return y.reshape(*x.shape[:-1], self.units, self.pieces).max(axis=-1)


class MLPDiscriminatorBody(nn.Module):
    width: int = 240
    layers: int = 2
    pieces: int = 5
    dropout: float = 0.5
    spectral_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for _ in range(self.layers):
            x = Maxout(self.width, self.pieces, self.spectral_norm, self.dtype)(x, train=train)
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x


def build(c: ModelConfig, dtype: Any, d_norm: str) -> tuple[nn.Module, nn.Module]:
    if c.attention_resolution:
        raise UserError(f"model.attention_resolution={c.attention_resolution} needs "
                        "model.arch='dcgan' or 'resnet'; the mlp networks have no "
                        "self-attention: set model.attention_resolution=0")
    if d_norm != "none" or c.minibatch_std:
        raise UserError(f"model.arch='mlp' has no feature maps to normalise: model.d_norm="
                        f"'{c.d_norm}' and model.minibatch_std={c.minibatch_std} need "
                        "a convolutional model.arch ('dcgan', 'infogan' or 'resnet')")
    return (MLPGenerator(c.resolution, c.channels, c.g_width, c.mlp.layers,
                         num_classes=generator_classes(c),
                         spectral_norm=c.spectral_norm == "g_and_d", dtype=dtype),
            MLPDiscriminatorBody(c.d_width, c.mlp.layers, c.mlp.maxout_pieces,
                                 c.mlp.d_dropout,
                                 spectral_norm=c.spectral_norm != "none", dtype=dtype))


ARCHITECTURE = Architecture(build, head_init=fixed(nn.initializers.lecun_normal()),
                            default_d_norm="none")

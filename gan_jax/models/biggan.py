"""BigGAN's generator and discriminator (Brock et al. 2019), for 32x32, 64x64 and 128x128.

Layer for layer BigGAN-PyTorch (ajbrock/BigGAN-PyTorch, BigGAN.py and layers.py), the authors'
reimplementation; ch is `model.g_width` for G (--G_ch) and `model.d_width` for D (--D_ch).

  G 32   Linear(z_0 -> 4*4*4ch), GBlocks 4ch -> 4ch, 4ch, 4ch          (4 -> 8 -> 16 -> 32)
  G 64   Linear(z_0 -> 4*4*16ch), GBlocks 16ch -> 16ch, 8ch, 4ch, 2ch  (4 -> ... -> 64)
  G 128  Linear(z_0 -> 4*4*16ch), GBlocks 16ch -> 16ch, 8ch, 4ch, 2ch, ch
         then BatchNorm - ReLU - conv3x3(channels) - tanh
  D 32   DBlocks 4ch, 4ch, 4ch, 4ch; the first two halve the side     (32 -> 16 -> 8 -> 8 -> 8)
  D 64   DBlocks ch, 2ch, 4ch, 8ch, each halving, then 16ch           (64 -> ... -> 4 -> 4)
  D 128  DBlocks ch, 2ch, 4ch, 8ch, 16ch, each halving, then 16ch     (128 -> ... -> 4 -> 4)
         then ReLU - global sum pool; the shared head (gan_jax.models.heads) adds the linear
         output and, conditional, the projection <embed(y), h> (Miyato & Koyama 2018)

  GBlock  residual  cBN - ReLU - upsample (nearest 2x) - conv3x3 - cBN - ReLU - conv3x3
          shortcut  upsample - conv1x1
  DBlock  residual  [ReLU] - conv3x3 - ReLU - conv3x3 [- avgpool2]; every block but the
                    first starts with its ReLU (preactivation); the hidden width is the
                    block's output width (BigGAN's "wide" D)
          shortcut  conv1x1 where the block downsamples or changes the width, else the
                    identity; the first block pools before its 1x1, the others after (the
                    same numbers either way: both are linear)

Conditioning (G): a shared class embedding (model.biggan.shared_dim channels, not spectrally
normalised: "applying SN to G's embedding seems to randomly cripple G"), and with
`hierarchical` latents z split into one chunk per block plus one for the first linear layer.
Every BatchNorm of a GBlock is conditional: no affine part of its own, then gain
1 + W_gain c and bias W_bias c, with c = [embedding, z chunk] (or either alone), W_* linear
without bias (spectrally normalised with G). Unconditional and not hierarchical, they are plain
BatchNorms. BatchNorm epsilon 1e-5, PyTorch's momentum 0.1 (model.bn_momentum = 0.9).

Self-attention (SAGAN, gan_jax.models.layers.SelfAttention) goes after the block whose output
first has side `model.attention_resolution` (the paper: 64 at 128x128), in G and in D.
BigGAN-PyTorch's D table lists every 32x32 block at "16", so its attention there would follow
each block; here it follows the first.

Initialisation (model.biggan.init, --G_init / --D_init): every convolution, linear layer and
embedding weight is orthogonal ("ortho", the paper's), N(0, 0.02) or Xavier uniform; biases keep
PyTorch's default U(+-1/sqrt(fan_in)), as BigGAN-PyTorch leaves them, except the shared head's,
which starts at 0 in every architecture here. Spectral norm (model.spectral_norm="g_and_d", the
paper's) covers every convolution and linear layer of both networks and D's projection embedding.

BigGAN-PyTorch's G reshapes the first linear layer's output channels-first (N, C, 4, 4); so
does this one, so that its weights keep their order. PyTorch's BatchNorm keeps the unbiased
variance in its running statistics, Flax the biased one: training outputs agree exactly,
inference ones by a factor n / (n - 1) inside the variance.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.architecture import (Architecture, check_attention_resolution,
                                         conv_implementation, generator_classes)
from gan_jax.models.convolution import Conv
from gan_jax.models.initializers import glorot_uniform, normal, torch_default_bias
from gan_jax.models.layers import AttentionAt, avgpool2x, maybe_spectral, upsample2x

RESOLUTIONS = (32, 64, 128)
BOTTOM = 4  # side of G's first feature map
EPSILON = 1e-5  # of every BatchNorm (BigGAN-PyTorch's BN_eps)

# Channel multipliers of ch (BigGAN.py's G_arch and D_arch): G's first map, then each block's
# output; each D block's output and whether it halves the side.
G_MULTIPLIERS = {32: (4, 4, 4, 4), 64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1)}
D_MULTIPLIERS = {32: ((4, True), (4, True), (4, False), (4, False)),
                 64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
                 128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False))}

WEIGHT_INITS = {"ortho": nn.initializers.orthogonal(), "n02": normal(0.02),
                "glorot": glorot_uniform(1.0)}


def check_resolution(resolution: int) -> None:
    if resolution not in RESOLUTIONS:
        raise UserError(f"model.resolution={resolution} is not supported by the BigGAN models; "
                        f"choose one of {', '.join(map(str, RESOLUTIONS))} (pad 28x28 images "
                        "to 32 with data.fit=pad)")


def generator_widths(resolution: int, ch: int) -> tuple[int, ...]:
    check_resolution(resolution)
    return tuple(ch * m for m in G_MULTIPLIERS[resolution])


def discriminator_widths(resolution: int, ch: int) -> tuple[tuple[int, bool], ...]:
    check_resolution(resolution)
    return tuple((ch * m, down) for m, down in D_MULTIPLIERS[resolution])


def latent_chunks(resolution: int, latent_dim: int, hierarchical: bool) -> tuple[int, ...]:
    """The sizes z is split into: the first linear layer's, then each block's (empty when not
    hierarchical: the first layer takes all of z)."""
    if not hierarchical:
        return (latent_dim,)
    slots = len(generator_widths(resolution, 1))  # the blocks + the first layer
    if latent_dim % slots:
        raise UserError(f"model.latent_dim={latent_dim} does not split evenly into the {slots} "
                        f"chunks of hierarchical latents at {resolution}x{resolution} (the first "
                        f"layer and each of {slots - 1} blocks); use a multiple of {slots}, "
                        "e.g. 120 (the paper's), or model.biggan.hierarchical=false")
    return (latent_dim // slots,) * slots


def _hidden_sides(resolution: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The sides of the outputs of G's blocks and of D's blocks (where attention can go)."""
    g = tuple(BOTTOM * 2 ** k for k in range(1, len(G_MULTIPLIERS[resolution])))
    d, side = [], resolution
    for _, down in D_MULTIPLIERS[resolution]:
        side //= 2 if down else 1
        d.append(side)
    return g, tuple(d)


class _Layers:
    """The convolutions and linear layers of one network: its initialiser, PyTorch's default
    biases, spectral norm when asked. Built inside a compact method."""

    def __init__(self, weight_init: str, spectral_norm: bool, train: bool, dtype: Any,
                 implementation: str):
        self.kernel_init = WEIGHT_INITS[weight_init]
        self.spectral_norm, self.train = spectral_norm, train
        self.dtype, self.implementation = dtype, implementation

    def _apply(self, layer: nn.Module, x: jax.Array) -> jax.Array:
        return maybe_spectral(layer, x, spectral_norm=self.spectral_norm, train=self.train)

    def conv(self, x: jax.Array, features: int, kernel: int, name: str) -> jax.Array:
        return self._apply(Conv(features, (kernel, kernel), padding=kernel // 2,
                                kernel_init=self.kernel_init,
                                bias_init=torch_default_bias(kernel * kernel * x.shape[-1]),
                                dtype=self.dtype, name=name,
                                implementation=self.implementation), x)

    def linear(self, x: jax.Array, features: int, name: str, use_bias: bool = True
               ) -> jax.Array:
        return self._apply(nn.Dense(features, use_bias=use_bias, kernel_init=self.kernel_init,
                                    bias_init=torch_default_bias(x.shape[-1]),
                                    dtype=self.dtype, name=name), x)


class ConditionalNorm(nn.Module):
    """BigGAN's ccbn: BatchNorm without its own affine part, then gain 1 + W_gain c and bias
    W_bias c from the conditioning vector c (N, K); a plain BatchNorm when c is None."""

    momentum: float = 0.9
    weight_init: str = "ortho"  # a key of WEIGHT_INITS
    spectral_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array | None, *, train: bool) -> jax.Array:
        conditional = c is not None
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=EPSILON,
                         use_scale=not conditional, use_bias=not conditional,
                         dtype=self.dtype)(x)
        if not conditional:
            return x
        layers = _Layers(self.weight_init, self.spectral_norm, train, self.dtype, "xla")
        gain = 1.0 + layers.linear(c, x.shape[-1], "gain", use_bias=False)
        bias = layers.linear(c, x.shape[-1], "bias", use_bias=False)
        return x * gain[:, None, None, :].astype(x.dtype) + bias[:, None, None, :].astype(x.dtype)


class GBlock(nn.Module):
    features: int
    momentum: float = 0.9
    weight_init: str = "ortho"  # a key of WEIGHT_INITS
    spectral_norm: bool = False
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array | None, *, train: bool) -> jax.Array:
        layers = _Layers(self.weight_init, self.spectral_norm, train, self.dtype,
                         self.conv_implementation)
        norm = functools.partial(ConditionalNorm, self.momentum, self.weight_init,
                                 self.spectral_norm, self.dtype)
        h = upsample2x(nn.relu(norm(name="bn1")(x, c, train=train)))
        h = layers.conv(h, self.features, 3, "conv1")
        h = nn.relu(norm(name="bn2")(h, c, train=train))
        h = layers.conv(h, self.features, 3, "conv2")
        return h + layers.conv(upsample2x(x), self.features, 1, "shortcut")


class DBlock(nn.Module):
    features: int
    downsample: bool
    preactivation: bool  # every block but the first
    weight_init: str = "ortho"  # a key of WEIGHT_INITS
    spectral_norm: bool = False
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers = _Layers(self.weight_init, self.spectral_norm, train, self.dtype,
                         self.conv_implementation)
        pool = avgpool2x if self.downsample else (lambda h: h)
        h = layers.conv(nn.relu(x) if self.preactivation else x, self.features, 3, "conv1")
        h = pool(layers.conv(nn.relu(h), self.features, 3, "conv2"))
        shortcut = x
        if self.downsample or x.shape[-1] != self.features:
            shortcut = (pool(layers.conv(x, self.features, 1, "shortcut")) if self.preactivation
                        else layers.conv(pool(x), self.features, 1, "shortcut"))
        return h + shortcut


class BigGANGenerator(nn.Module):
    """z (N, latent) [, labels (N,)] -> images (N, R, R, channels) in [-1, 1], in `dtype`."""

    resolution: int  # 32, 64 or 128
    channels: int
    width: int = 64  # ch (--G_ch)
    num_classes: int = 0  # > 0: the shared class embedding conditions every GBlock
    shared_dim: int = 128
    hierarchical: bool = True
    weight_init: str = "ortho"  # a key of WEIGHT_INITS
    bn_momentum: float = 0.9
    spectral_norm: bool = True
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"
    attention_resolution: int = 0

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> jax.Array:
        widths = generator_widths(self.resolution, self.width)
        chunks = latent_chunks(self.resolution, z.shape[-1], self.hierarchical)
        layers = _Layers(self.weight_init, self.spectral_norm, train, self.dtype,
                         self.conv_implementation)
        z = z.astype(self.dtype)
        first, *block_z = jnp.split(z, list(itertools.accumulate(chunks[:-1])), axis=-1)
        block_z = block_z or [None] * (len(widths) - 1)  # not hierarchical: all z goes first
        embedding = None
        if self.num_classes:
            embedding = nn.Embed(self.num_classes, self.shared_dim,
                                 embedding_init=WEIGHT_INITS[self.weight_init],
                                 name="shared")(labels)
            embedding = embedding.astype(self.dtype)
        h = layers.linear(first, widths[0] * BOTTOM * BOTTOM, "linear")
        # channels-first, as BigGAN-PyTorch's h.view(N, -1, 4, 4)
        h = h.reshape(-1, widths[0], BOTTOM, BOTTOM).transpose(0, 2, 3, 1)
        attention = AttentionAt(self.attention_resolution,
                                kernel_init=WEIGHT_INITS[self.weight_init],
                                spectral_norm=self.spectral_norm, dtype=self.dtype)
        for index, (features, chunk) in enumerate(zip(widths[1:], block_z)):
            parts = [p for p in (embedding, chunk) if p is not None]
            c = jnp.concatenate(parts, axis=-1) if parts else None
            h = GBlock(features, self.bn_momentum, self.weight_init, self.spectral_norm,
                       self.dtype, self.conv_implementation, name=f"block{index}")(h, c,
                                                                                  train=train)
            h = attention(h, train=train)
        h = nn.relu(ConditionalNorm(self.bn_momentum, self.weight_init, self.spectral_norm,
                                    self.dtype, name="output_bn")(h, None, train=train))
        return jnp.tanh(layers.conv(h, self.channels, 3, "output"))


class BigGANDiscriminatorBody(nn.Module):
    """images (N, R, R, C) -> pooled features (N, F) in float32; the head is shared."""

    resolution: int
    width: int = 64  # ch (--D_ch)
    weight_init: str = "ortho"  # a key of WEIGHT_INITS
    spectral_norm: bool = True
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"
    attention_resolution: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        h = x.astype(self.dtype)
        attention = AttentionAt(self.attention_resolution,
                                kernel_init=WEIGHT_INITS[self.weight_init],
                                spectral_norm=self.spectral_norm, dtype=self.dtype)
        for index, (features, down) in enumerate(discriminator_widths(self.resolution,
                                                                      self.width)):
            h = DBlock(features, down, preactivation=index > 0, weight_init=self.weight_init,
                       spectral_norm=self.spectral_norm, dtype=self.dtype,
                       conv_implementation=self.conv_implementation,
                       name=f"block{index}")(h, train=train)
            h = attention(h, train=train)
        return jnp.sum(nn.relu(h), axis=(1, 2)).astype(jnp.float32)


def build(c: ModelConfig, dtype: Any, d_norm: str) -> tuple[nn.Module, nn.Module]:
    check_resolution(c.resolution)
    if d_norm != "none" or c.minibatch_std:
        raise UserError(f"model.arch='biggan' has no normalisation or minibatch statistics in D "
                        f"(the paper's): model.d_norm='{c.d_norm}' and model.minibatch_std="
                        f"{c.minibatch_std} need model.d_norm=default and model.minibatch_std=0, "
                        "or model.arch='resnet'")
    latent_chunks(c.resolution, c.latent_dim, c.biggan.hierarchical)
    check_attention_resolution(c.attention_resolution, *_hidden_sides(c.resolution), "biggan")
    b, conv = c.biggan, conv_implementation(c)
    return (BigGANGenerator(c.resolution, c.channels, c.g_width, generator_classes(c),
                            b.shared_dim or c.latent_dim, b.hierarchical, b.init, c.bn_momentum,
                            spectral_norm=c.spectral_norm == "g_and_d", dtype=dtype,
                            conv_implementation=conv,
                            attention_resolution=c.attention_resolution),
            BigGANDiscriminatorBody(c.resolution, c.d_width, b.init,
                                    spectral_norm=c.spectral_norm != "none", dtype=dtype,
                                    conv_implementation=conv,
                                    attention_resolution=c.attention_resolution))


ARCHITECTURE = Architecture(build, head_init=lambda c: WEIGHT_INITS[c.biggan.init],
                            default_d_norm="none")

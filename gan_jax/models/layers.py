"""Layers shared by the architectures: spectral norm, normalisations, minibatch statistics.

  SpectralNorm            W / sigma(W) with sigma from power iteration (Miyato et al. 2018); the
                          iteration vector u lives in the "batch_stats" collection, is advanced
                          once per training call, and evaluation uses the stored u.
  maybe_spectral          applies a layer with or without spectral norm (one config flag).
  ConditionalBatchNorm    BatchNorm whose gain and bias are looked up by class (de Vries 2017;
                          the generator of the projection cGAN and of ACGAN in StudioGAN).
  feature_norm            the discriminator's normalisation: "batch", "layer" or "none"
                          (gradient penalties need a per-sample one: layer or none).
  minibatch_stddev        ProGAN's extra feature map: the standard deviation across a group.
  MinibatchDiscrimination Salimans et al. 2016: per-sample closeness to the rest of the batch.
  EqualizedDense/Conv     ProGAN's equalised learning rate: N(0, 1) weights scaled at run time.
  pixel_norm              ProGAN's per-pixel feature normalisation.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.errors import UserError
from gan_jax.models import initializers
from gan_jax.models.convolution import Conv

NORMS = ("batch", "layer", "none")
HE_GAIN = math.sqrt(2.0)
PIXEL_NORM_EPSILON = 1e-8


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x), eps * eps))


def power_iteration(matrix: jax.Array, u: jax.Array, steps: int) -> tuple[jax.Array, jax.Array]:
    """Advances the estimate u (out,) of the top right-singular vector of `matrix` (in, out);
    returns (u, sigma) with sigma = v . matrix u, v = normalize(matrix u) from the last step."""
    v = _l2_normalize(matrix @ u)
    for _ in range(steps):
        v = _l2_normalize(matrix @ u)
        u = _l2_normalize(matrix.T @ v)
    # u and v are constants to the gradient, which still flows through sigma (Miyato et al.).
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    return u, v @ matrix @ u


class SpectralNorm(nn.Module):
    """Wraps a Dense/Conv/ConvTranspose/Embed so that each weight matrix is divided by its top
    singular value. Kernels are flattened to (fan_in, out) as in Miyato et al.; biases (ndim 1)
    are left alone, and the stored parameters are the raw weights (as in PyTorch).

    Training calls (`update_stats=True`) run `n_steps` of power iteration from the stored u,
    normalise by the resulting sigma and store the new u. Evaluation computes sigma from the
    stored u and the weights in use, without advancing or storing anything: deterministic, and
    right for weights the iteration never saw (a generator EMA), unlike a stored sigma would be.
    """

    layer: nn.Module
    n_steps: int = 1

    @nn.compact
    def __call__(self, *args: Any, update_stats: bool, **kwargs: Any) -> jax.Array:
        def normalize(path, value):
            if value.ndim < 2:
                return value
            name = "/".join([self.layer.name, *(str(getattr(k, "key", k)) for k in path[1:])])
            matrix = value.reshape(-1, value.shape[-1]).astype(jnp.float32)
            u_var = self.variable("batch_stats", f"{name}/u", lambda: _l2_normalize(
                jax.random.normal(self.make_rng("params"), (matrix.shape[-1],))))
            if self.is_initializing():
                # map_variables stores what this returns at init: keep the raw weight, as
                # PyTorch does, so optimizer steps are relative to the initialiser's scale.
                return value
            u, sigma = power_iteration(matrix, u_var.value, self.n_steps if update_stats else 0)
            if update_stats:
                u_var.value = u
            return (value / sigma.astype(value.dtype)).astype(value.dtype)

        return nn.map_variables(
            lambda layer: layer(*args, **kwargs),
            trans_in_fn=lambda variables: jax.tree_util.tree_map_with_path(normalize, variables),
            init=self.is_initializing(), mutable=True)(self.layer)


def maybe_spectral(layer: nn.Module, x: jax.Array, *, spectral_norm: bool,
                   train: bool) -> jax.Array:
    """`layer(x)`, spectrally normalised when asked; call from inside a compact method."""
    if spectral_norm:
        return SpectralNorm(layer)(x, update_stats=train)
    return layer(x)


def feature_norm(kind: str, x: jax.Array, *, train: bool, momentum: float,
                 dtype: Any = jnp.float32, epsilon: float = 1e-5) -> jax.Array:
    """The discriminator's normalisation after a convolution; call from a compact method."""
    if kind == "batch":
        return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon,
                            dtype=dtype)(x)
    if kind == "layer":
        # Over all of a sample's features (C, H, W) with a per-channel gain and bias: WGAN-GP's
        # layer norm (PyTorch's GroupNorm with one group).
        return nn.LayerNorm(reduction_axes=tuple(range(1, x.ndim)), feature_axes=-1,
                            epsilon=epsilon, dtype=dtype)(x)
    if kind == "none":
        return x
    raise ValueError(f"unknown norm {kind!r}; expected one of {NORMS}")


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine part, then a per-class gain (init 1) and bias (init 0)."""

    num_classes: int
    momentum: float = 0.9
    dtype: Any = jnp.float32
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array, *, train: bool) -> jax.Array:
        features = x.shape[-1]
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, use_scale=False,
                         use_bias=False, epsilon=self.epsilon, dtype=self.dtype)(x)
        gain = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones,
                        name="gain")(labels)
        bias = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros,
                        name="bias")(labels)
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
        return x * gain.reshape(shape).astype(x.dtype) + bias.reshape(shape).astype(x.dtype)


class GeneratorNorm(nn.Module):
    """The generator's BatchNorm: class-conditional when `num_classes` > 0 and labels are given."""

    num_classes: int = 0
    momentum: float = 0.9
    scale_init: Any = nn.initializers.ones
    dtype: Any = jnp.float32
    epsilon: float = 1e-5  # Flax's and PyTorch's; TensorFlow's compare_gan uses 1e-3

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, *, train: bool) -> jax.Array:
        if self.num_classes:
            return ConditionalBatchNorm(self.num_classes, self.momentum, self.dtype,
                                        self.epsilon)(x, labels, train=train)
        return nn.BatchNorm(use_running_average=not train, momentum=self.momentum,
                            epsilon=self.epsilon, scale_init=self.scale_init,
                            dtype=self.dtype)(x)


def upsample2x(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling of NHWC maps (PyTorch's F.interpolate(scale_factor=2))."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avgpool2x(x: jax.Array) -> jax.Array:
    """2x2 average pooling with stride 2 of NHWC maps (PyTorch's F.avg_pool2d(x, 2))."""
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


def minibatch_stddev(x: jax.Array, group_size: int = 4) -> jax.Array:
    """Appends ProGAN's minibatch standard-deviation map to NHWC features.

    Samples are split into groups of `group_size` (the batch must divide evenly); for each group
    the standard deviation of every feature across the group is averaged to one number, which
    is broadcast as an extra channel to the group's samples. A collapsed generator gives a
    near-zero value that the discriminator can see.
    """
    n, h, w, c = x.shape
    group = min(group_size, n)
    if n % group:
        raise ValueError(f"minibatch stddev: batch {n} is not divisible by group {group}")
    y = x.astype(jnp.float32).reshape(group, n // group, h, w, c)
    std = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)  # (n/group, h, w, c)
    value = jnp.mean(std, axis=(1, 2, 3))  # (n/group,)
    stat = jnp.tile(value, group)[:, None, None, None]  # sample i belongs to subgroup i % (n/g)
    return jnp.concatenate([x, jnp.broadcast_to(stat, (n, h, w, 1)).astype(x.dtype)], axis=-1)


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, section 3.2: o(x_i)_b = sum_{j != i} exp(-||M_i,b - M_j,b||_1).

    M = f(x) T reshaped to (N, kernels, kernel_dim); the outputs are appended to the features.
    """

    kernels: int = 50
    kernel_dim: int = 5

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        m = nn.Dense(self.kernels * self.kernel_dim, use_bias=False,
                     kernel_init=nn.initializers.normal(0.02))(features.astype(jnp.float32))
        m = m.reshape(-1, self.kernels, self.kernel_dim)
        l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # (N, N, kernels)
        closeness = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # exp(0) = 1 is the sample itself
        return jnp.concatenate([features, closeness.astype(features.dtype)], axis=-1)


class SelfAttention(nn.Module):
    """SAGAN's self-attention block (Zhang et al. 2019) as BigGAN-PyTorch's `Attention`
    computes it: 1x1 projections theta, phi (C/8) and g (C/2), phi and g max-pooled 2x2,
    beta = softmax over the pooled positions of theta . phi, o = 1x1 (C/2 -> C) of beta . g,
    and x + gamma * o with a learned gain gamma that starts at 0 (the block starts as the
    identity). No biases; spectral norm on the projections when the network has it.
    """

    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    spectral_norm: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        n, height, width, channels = x.shape
        if channels % 8 or height % 2 or width % 2:
            # Reached from a config (model.attention_resolution on a map the architecture's
            # widths or sides cannot pool and split), so a user error, not a traceback.
            raise UserError(f"self-attention needs channels divisible by 8 and an even side, "
                            f"but the map at model.attention_resolution is {height}x{width}x"
                            f"{channels}; pick another model.attention_resolution (0: none) "
                            "or widths (model.g_width, model.d_width) that are multiples of 8")

        def project(inputs, features, name):  # a 1x1 convolution: Dense on the channel axis
            return maybe_spectral(nn.Dense(features, use_bias=False, kernel_init=self.kernel_init,
                                           dtype=self.dtype, name=name), inputs,
                                  spectral_norm=self.spectral_norm, train=train)

        def pooled(inputs):
            return nn.max_pool(inputs, (2, 2), strides=(2, 2))

        theta = project(x, channels // 8, "theta").reshape(n, height * width, channels // 8)
        phi = pooled(project(x, channels // 8, "phi")).reshape(n, -1, channels // 8)
        g = pooled(project(x, channels // 2, "g")).reshape(n, -1, channels // 2)
        beta = jax.nn.softmax(jnp.einsum("npc,nqc->npq", theta, phi), axis=-1)
        attended = jnp.einsum("npq,nqc->npc", beta, g).reshape(n, height, width, channels // 2)
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return x + (gamma * project(attended, channels, "o")).astype(x.dtype)


class AttentionAt:
    """Inserts one SelfAttention where a network's feature map first has side `resolution`
    (0: never): call it on every hidden map of a compact method, in order."""

    def __init__(self, resolution: int, *, kernel_init: nn.initializers.Initializer,
                 spectral_norm: bool, dtype: Any):
        self.resolution, self.done = resolution, False
        self.block = functools.partial(SelfAttention, kernel_init=kernel_init,
                                       spectral_norm=spectral_norm, dtype=dtype, name="attention")

    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if self.done or not self.resolution or x.shape[1] != self.resolution:
            return x
        self.done = True
        return self.block()(x, train=train)


def pixel_norm(x: jax.Array, epsilon: float = PIXEL_NORM_EPSILON) -> jax.Array:
    """Each pixel's feature vector scaled to unit root mean square (the paper's section 4.2)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + epsilon)


def he_scale(fan_in: int, gain: float = HE_GAIN) -> float:
    """The equalised learning rate's run-time weight scale, gain / sqrt(fan_in)."""
    return gain / math.sqrt(fan_in)


class EqualizedDense(nn.Module):
    """x @ (W * gain / sqrt(fan_in)) + b, W stored N(0, 1): every weight learns at the same
    speed under Adam, whatever its layer's fan-in (the paper's section 4.1)."""

    features: int
    gain: float = HE_GAIN
    use_bias: bool = True
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", initializers.normal(1.0), (x.shape[-1], self.features))
        y = (x.astype(self.dtype) @ kernel.astype(self.dtype)) * he_scale(x.shape[-1], self.gain)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y


class EqualizedConv(nn.Module):
    """A stride-1 "same" convolution with an equalised learning rate; the scale is applied to
    the output, (x * W) c = x * (c W), so the convolution itself is the project's fast one."""

    features: int
    kernel_size: int = 3
    gain: float = HE_GAIN
    dtype: Any = jnp.float32
    conv_implementation: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        y = Conv(self.features, (k, k), padding=k // 2, use_bias=False,
                 kernel_init=initializers.normal(1.0), dtype=self.dtype,
                 implementation=self.conv_implementation, name="conv")(x)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return y * he_scale(k * k * x.shape[-1], self.gain) + bias.astype(self.dtype)

"""Weight initialisers drawn as one flat vector and reshaped.

The distributions are the usual ones; the flat draw is for compile time: XLA:CPU compiles the
(partitionable) threefry generator for each new 4-D kernel shape several times slower than for
a flat one, and initialisation is compiled once per model, per test, per run.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax.linen.initializers import Initializer


def normal(stddev: float, mean: float = 0.0) -> Initializer:
    """N(mean, stddev^2) per weight (DCGAN: N(0, 0.02), BatchNorm gains N(1, 0.02))."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        flat = jax.random.normal(key, (math.prod(shape),), dtype)
        return (mean + stddev * flat).reshape(shape)

    return init


def glorot_uniform(gain: float = 1.0) -> Initializer:
    """torch.nn.init.xavier_uniform_(w, gain) for HWIO / (in, out) kernels: U(-a, a) with
    a = gain * sqrt(6 / (fan_in + fan_out)), fans counting the receptive field (the same
    distribution as nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform"))."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        receptive = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
        flat = jax.random.uniform(key, (math.prod(shape),), dtype, -limit, limit)
        return flat.reshape(shape)

    return init


def torch_default_bias(fan_in: int) -> Initializer:
    """PyTorch's default bias of nn.Linear / nn.Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in counting the receptive field. BigGAN-PyTorch initialises weights only, so its
    biases keep this."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init

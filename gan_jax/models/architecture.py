"""What an architecture declares in its own file, and the settings every architecture reads.

Each of dcgan.py, infogan.py, resnet.py, biggan.py, progan.py and mlp.py ends with an
`ARCHITECTURE`: a function that builds its generator and its discriminator body from the model
config (checking what only it can check), the initialiser of the shared head
(gan_jax.models.heads) for that config, initialised like the body's own layers, and D's
normalisation under `model.d_norm=default` (its paper's). An architecture whose networks change
during training (ProGAN's growing) also declares its `Growth`: the values the train step sets
in the networks' "schedule" collection, the real images D is shown under it, its networks at
each fixed level, and its batch per level.
`gan_jax.models.ARCHITECTURES` registers them by `model.arch`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.convolution import default_implementation


class Growth(NamedTuple):
    """What an architecture whose networks change during training (ProGAN's growing)
    declares: the train step sets the networks' "schedule" collection, shows D the real images
    the schedule asks for, and compiles one step per level."""
    # (config, real images seen (an integer array), the array library: jax.numpy or numpy) ->
    # the values of the networks' "schedule" collection, set before every step
    schedule: Callable[[ModelConfig, Any, Any], dict[str, Any]]
    # (real images in [-1, 1], the schedule's values) -> the real images D is shown
    real_images: Callable[[Any, dict[str, Any]], Any]
    # (config, G, D) -> {level: (G, D) at that level}: one compiled step per level, chosen by
    # the schedule's "level"
    networks_at_levels: Callable[[ModelConfig, nn.Module, nn.Module],
                                 dict[int, tuple[nn.Module, nn.Module]]]
    # whether a new "stage" of the schedule starts G's and D's optimizers afresh
    resets_optimizers: Callable[[ModelConfig], bool] = lambda config: False
    # (config, train.batch_size, train.n_critic) -> the run's clock (gan_jax.batching) where
    # the batch changes with the schedule (per-resolution batches); None: constant.
    batching: Callable[[ModelConfig, int, int], Any] | None = None


class Architecture(NamedTuple):
    # (config, compute dtype, D's resolved normalisation) -> (generator, discriminator body)
    build: Callable[[ModelConfig, Any, str], tuple[nn.Module, nn.Module]]
    head_init: Callable[[ModelConfig], nn.initializers.Initializer]
    default_d_norm: str  # "batch", "layer" or "none"
    equalized_head: bool = False  # the head's layers with an equalised learning rate (ProGAN)
    growth: Growth | None = None  # networks that grow during training (ProGAN); None: fixed


def fixed(init: nn.initializers.Initializer
          ) -> Callable[[ModelConfig], nn.initializers.Initializer]:
    """A head initialiser that is the same for every config of the architecture."""
    return lambda config: init


def check_attention_resolution(side: int, g_sides: tuple[int, ...], d_sides: tuple[int, ...],
                               arch: str) -> None:
    """model.attention_resolution must be the even side (self-attention pools its map 2x2) of
    a hidden map of both G and D. Its channels must be a multiple of 8 too, which the block
    itself checks (gan_jax.models.layers.SelfAttention)."""
    common = sorted(s for s in set(g_sides) & set(d_sides) if s % 2 == 0)
    if side and side not in common:
        sides = ", ".join(map(str, common)) or "none"
        raise UserError(f"model.attention_resolution={side}: model.arch='{arch}' at this "
                        f"resolution has hidden feature maps of even sides {sides} in both G "
                        "and D (self-attention pools its map 2x2); pick one, or 0 for no "
                        "self-attention")


def generator_classes(c: ModelConfig) -> int:
    """The classes G is conditioned on: model.num_classes, or 0 when unconditional."""
    return c.num_classes if c.conditioning != "none" else 0


def conv_implementation(c: ModelConfig) -> str:
    """model.conv_implementation, with "auto" resolved for the platform JAX runs on (matmul
    on the CPU, xla on GPUs and TPUs: gan_jax.models.convolution)."""
    return default_implementation() if c.conv_implementation == "auto" else c.conv_implementation

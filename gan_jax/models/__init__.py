"""Generator and discriminator architectures: pure Flax Linen modules, no training logic.

Every generator maps latents (N, latent_dim) to images (N, H, W, C) in [-1, 1]; every
discriminator maps images to one logit per image, (N,). Both take `train=` so layers that behave
differently in training (BatchNorm, dropout) are explicit at the call site.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models.dcgan import DCGANDiscriminator, DCGANGenerator, upsampling_plan
from gan_jax.models.mlp import MLPDiscriminator, MLPGenerator


class Networks(NamedTuple):
    generator: nn.Module
    discriminator: nn.Module


def _dcgan(c: ModelConfig) -> Networks:
    upsampling_plan(c.resolution)  # fail early, with the user-facing message
    return Networks(
        DCGANGenerator(c.resolution, c.channels, c.g_width, c.bn_momentum),
        DCGANDiscriminator(c.resolution, c.d_width, c.bn_momentum))


def _mlp(c: ModelConfig) -> Networks:
    return Networks(
        MLPGenerator(c.resolution, c.channels, c.g_width, c.mlp_layers),
        MLPDiscriminator(c.d_width, c.mlp_layers, c.maxout_pieces, c.d_dropout))


ARCHITECTURES: dict[str, Callable[[ModelConfig], Networks]] = {"dcgan": _dcgan, "mlp": _mlp}


def build_networks(config: ModelConfig) -> Networks:
    if config.arch not in ARCHITECTURES:
        raise UserError(f"model.arch='{config.arch}' is unknown; choose one of "
                        f"{', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[config.arch](config)


__all__ = ["ARCHITECTURES", "Networks", "build_networks", "DCGANGenerator",
           "DCGANDiscriminator", "MLPGenerator", "MLPDiscriminator", "upsampling_plan"]

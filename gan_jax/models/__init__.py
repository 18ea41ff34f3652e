"""Generator and discriminator architectures: pure Flax Linen modules, no training logic.

Every generator maps latents (N, latent_dim), and class labels (N,) when conditional, to images
(N, H, W, C) in [-1, 1]. Every discriminator is an architecture's *body* (images -> features
(N, F)) under one shared head (gan_jax.models.heads), which returns a `DiscriminatorOutput`: one
logit per image, the features (for feature matching) and, for ACGAN, class logits. Keeping the
heads in one place is what lets every conditioning and minibatch trick compose with every
architecture. Each architecture is one file that ends with its `ARCHITECTURE`
(gan_jax.models.architecture): how to build its networks, its head's initialiser and its D
normalisation. Both networks take `train=` so layers that behave differently in training
(BatchNorm, dropout, spectral norm's power iteration) are explicit at the call site.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax import batching
from gan_jax import config as config_lib
from gan_jax.config import Config, ModelConfig, check_section_bounds
from gan_jax.errors import UserError
from gan_jax.models import biggan, dcgan, infogan, mlp, progan, resnet
from gan_jax.models.architecture import Architecture, conv_implementation
from gan_jax.models.biggan import BigGANDiscriminatorBody, BigGANGenerator
from gan_jax.models.dcgan import DCGANDiscriminatorBody, DCGANGenerator, upsampling_plan
from gan_jax.models.heads import Discriminator, DiscriminatorOutput
from gan_jax.models.infogan import InfoGANDiscriminatorBody, InfoGANGenerator
from gan_jax.models.mlp import MLPDiscriminatorBody, MLPGenerator
from gan_jax.models.progan import ProGANDiscriminatorBody, ProGANGenerator
from gan_jax.models.resnet import ResNetDiscriminatorBody, ResNetGenerator

ARCHITECTURES: dict[str, Architecture] = {
    "biggan": biggan.ARCHITECTURE, "dcgan": dcgan.ARCHITECTURE, "infogan": infogan.ARCHITECTURE,
    "mlp": mlp.ARCHITECTURE, "progan": progan.ARCHITECTURE, "resnet": resnet.ARCHITECTURE}
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# model.<arch>.*: read by that architecture alone (ModelConfig's nested sections, each named
# after its architecture)
ARCHITECTURE_SECTIONS = tuple(name for name, value in vars(ModelConfig()).items()
                              if dataclasses.is_dataclass(value))


class Networks(NamedTuple):
    generator: nn.Module
    discriminator: nn.Module


def effective_d_norm(c: ModelConfig) -> str:
    """model.d_norm, with "default" resolved for the architecture (its paper's)."""
    return ARCHITECTURES[c.arch].default_d_norm if c.d_norm == "default" else c.d_norm


def check_model_config(c: ModelConfig) -> None:
    """Refuses unknown or contradictory model choices with the keys involved."""
    check_section_bounds("model", c)  # its bounds and choices (a ModelConfig built in Python)
    for arch in ARCHITECTURE_SECTIONS:  # an architecture's own settings, set for another
        changed = config_lib.differences_of(getattr(c, arch), type(getattr(c, arch))())
        if arch != c.arch and changed:
            raise UserError(f"model.{arch}.{changed[0]} is set but model.arch='{c.arch}' does "
                            f"not read it; set model.arch={arch} or leave model.{arch}.* alone")
    if c.conditioning != "none" and c.num_classes < 2:
        raise UserError(f"model.conditioning='{c.conditioning}' needs model.num_classes >= 2, "
                        f"got {c.num_classes}")


def build_networks(config: ModelConfig) -> Networks:
    check_model_config(config)
    architecture = ARCHITECTURES[config.arch]
    generator, body = architecture.build(config, COMPUTE_DTYPES[config.compute_dtype],
                                         effective_d_norm(config))
    discriminator = Discriminator(
        body, config.conditioning, config.num_classes if config.conditioning != "none" else 0,
        spectral_norm=config.spectral_norm != "none",
        minibatch_discrimination=config.minibatch_discrimination,
        kernel_init=architecture.head_init(config),
        equalized_lr=architecture.equalized_head)
    return Networks(generator, discriminator)


def run_batching(config: Config) -> batching.Batching:
    """The run's clock (gan_jax.batching): train.batch_size * train.n_critic real images per
    step, or the architecture's own stages where its batch changes with its schedule
    (ProGAN's model.progan.batch_sizes)."""
    t, grows = config.train, ARCHITECTURES[config.model.arch].growth
    staged = grows.batching if grows else None
    stages = staged(config.model, t.batch_size, t.n_critic) if staged else None
    return stages or batching.constant(t.batch_size * t.n_critic)


def schedule_values(config: ModelConfig, images: jax.Array, xp: Any = jnp
                    ) -> dict[str, jax.Array]:
    """The networks' "schedule" collection after `images` real images (Growth.schedule;
    ProGAN's level and alpha), computed with the array library `xp` (numpy on the host); {}
    for an architecture without one."""
    grows = ARCHITECTURES[config.arch].growth
    return {} if grows is None else grows.schedule(config, images, xp)


def networks_at_levels(config: ModelConfig, networks: Networks
                       ) -> dict[int, Networks] | None:
    """{level: the networks fixed at it} for an architecture that grows (ProGAN); else None."""
    grows = ARCHITECTURES[config.arch].growth
    if grows is None:
        return None
    return {level: Networks(*pair)
            for level, pair in grows.networks_at_levels(config, *networks).items()}


def resets_optimizers(config: ModelConfig) -> bool:
    """Whether a new stage of the schedule starts the optimizers afresh (ProGAN's
    model.progan.reset_optimizer)."""
    grows = ARCHITECTURES[config.arch].growth
    return grows is not None and grows.resets_optimizers(config)


def shown_reals(config: ModelConfig, images: jax.Array,
                schedule: dict[str, jax.Array]) -> jax.Array:
    """The real images D is shown under `schedule` (Growth.real_images): the images
    themselves for an architecture without one."""
    grows = ARCHITECTURES[config.arch].growth
    return images if grows is None else grows.real_images(images, schedule)


__all__ = ["ARCHITECTURES", "COMPUTE_DTYPES", "Architecture", "Discriminator",
           "DiscriminatorOutput", "Networks", "build_networks", "check_model_config",
           "conv_implementation", "BigGANGenerator", "BigGANDiscriminatorBody",
           "DCGANGenerator", "DCGANDiscriminatorBody",
           "InfoGANGenerator", "InfoGANDiscriminatorBody", "MLPGenerator",
           "MLPDiscriminatorBody", "ProGANGenerator", "ProGANDiscriminatorBody",
           "ResNetGenerator", "ResNetDiscriminatorBody",
           "effective_d_norm", "networks_at_levels", "resets_optimizers", "schedule_values",
           "shown_reals", "upsampling_plan"]

"""Generator and discriminator architectures: pure Flax Linen modules, no training logic.

Every generator maps latents (N, latent_dim), and class labels (N,) when conditional, to images
(N, H, W, C) in [-1, 1]. Every discriminator is an architecture's *body* (images -> features
(N, F)) under one shared `Discriminator` head, which returns a `DiscriminatorOutput`: one logit
per image, the features (for feature matching) and, for ACGAN, class logits. Keeping the heads in
one place is what lets every conditioning and minibatch trick compose with every architecture.
Both networks take `train=` so layers that behave differently in training (BatchNorm, dropout,
spectral norm's power iteration) are explicit at the call site.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.config import ModelConfig, check_section_bounds
from gan_jax.errors import UserError
from gan_jax.models.convolution import default_implementation
from gan_jax.models.dcgan import WEIGHT_INIT as DCGAN_WEIGHT_INIT
from gan_jax.models.dcgan import DCGANDiscriminatorBody, DCGANGenerator, upsampling_plan
from gan_jax.models.infogan import WEIGHT_INIT as INFOGAN_WEIGHT_INIT
from gan_jax.models.infogan import (InfoGANDiscriminatorBody, InfoGANGenerator,
                                    check_resolution)
from gan_jax.models.layers import MinibatchDiscrimination, maybe_spectral
from gan_jax.models.mlp import MLPDiscriminatorBody, MLPGenerator
from gan_jax.models.resnet import ResNetDiscriminatorBody, ResNetGenerator, glorot_uniform

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class DiscriminatorOutput(NamedTuple):
    logits: jax.Array  # (N,) float32: the adversarial output
    features: jax.Array  # (N, F) float32: the last hidden layer (feature matching)
    class_logits: jax.Array | None  # (N, num_classes) float32 for ACGAN, else None


class Discriminator(nn.Module):
    """An architecture's feature body and the shared output head.

    logit = w . h + b (+ <embed(y), h> with the projection head of Miyato & Koyama 2018);
    ACGAN (Odena et al. 2017) adds a linear classifier on the same features. Minibatch
    discrimination (Salimans et al. 2016) appends its closeness features to h first.
    """

    body: nn.Module
    conditioning: str = "none"
    num_classes: int = 0
    spectral_norm: bool = False
    minibatch_discrimination: int = 0  # kernels; 0 = off
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()  # the body's

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> DiscriminatorOutput:
        h = self.body(images, train=train).astype(jnp.float32)
        if self.minibatch_discrimination:
            h = MinibatchDiscrimination(self.minibatch_discrimination)(h)
        linear = lambda layer, x: maybe_spectral(layer, x, spectral_norm=self.spectral_norm,
                                                 train=train)
        logits = linear(nn.Dense(1, kernel_init=self.kernel_init, name="logit"), h)[:, 0]
        class_logits = None
        if self.conditioning == "projection":
            embedded = linear(nn.Embed(self.num_classes, h.shape[-1],
                                       embedding_init=self.kernel_init, name="projection"),
                              labels)
            logits = logits + jnp.sum(embedded * h, axis=-1)
        elif self.conditioning == "acgan":
            class_logits = linear(nn.Dense(self.num_classes, kernel_init=self.kernel_init,
                                           name="classifier"), h)
        return DiscriminatorOutput(logits, h, class_logits)


class Networks(NamedTuple):
    generator: nn.Module
    discriminator: nn.Module


def _g_classes(c: ModelConfig) -> int:
    return c.num_classes if c.conditioning != "none" else 0


# D's normalisation under model.d_norm="default": each architecture's paper's.
DEFAULT_D_NORMS = {"dcgan": "batch", "infogan": "batch", "mlp": "none", "resnet": "none"}


def effective_d_norm(c: ModelConfig) -> str:
    """model.d_norm, with "default" resolved for the architecture."""
    return DEFAULT_D_NORMS[c.arch] if c.d_norm == "default" else c.d_norm


def conv_implementation(c: ModelConfig) -> str:
    """model.conv_implementation, with "auto" resolved for the platform JAX runs on (matmul
    on the CPU, xla on GPUs and TPUs: gan_jax.models.convolution)."""
    return default_implementation() if c.conv_implementation == "auto" else c.conv_implementation


def _dcgan(c: ModelConfig, dtype: Any) -> tuple[nn.Module, nn.Module]:
    upsampling_plan(c.resolution)  # fail early, with the user-facing message
    conv = conv_implementation(c)
    return (DCGANGenerator(c.resolution, c.channels, c.g_width, c.bn_momentum,
                           num_classes=_g_classes(c), spectral_norm=c.spectral_norm == "g_and_d",
                           dtype=dtype, conv_implementation=conv),
            DCGANDiscriminatorBody(c.resolution, c.d_width, c.bn_momentum,
                                   norm=effective_d_norm(c), spectral_norm=c.spectral_norm != "none",
                                   minibatch_std=c.minibatch_std, dtype=dtype,
                                   conv_implementation=conv))


def _infogan(c: ModelConfig, dtype: Any) -> tuple[nn.Module, nn.Module]:
    check_resolution(c.resolution)  # fail early, with the user-facing message
    conv = conv_implementation(c)
    if c.minibatch_std:
        raise UserError("model.minibatch_std needs model.arch='dcgan' or 'resnet': the InfoGAN "
                        "discriminator's last features are a vector, not a feature map")
    return (InfoGANGenerator(c.resolution, c.channels, c.g_width, c.bn_momentum,
                             num_classes=_g_classes(c),
                             spectral_norm=c.spectral_norm == "g_and_d", dtype=dtype,
                             conv_implementation=conv),
            InfoGANDiscriminatorBody(c.resolution, c.d_width, c.bn_momentum,
                                     norm=effective_d_norm(c),
                                     spectral_norm=c.spectral_norm != "none", dtype=dtype,
                                     conv_implementation=conv))


def _resnet(c: ModelConfig, dtype: Any) -> tuple[nn.Module, nn.Module]:
    conv = conv_implementation(c)
    return (ResNetGenerator(c.resolution, c.channels, c.g_width, num_classes=_g_classes(c),
                            bn_momentum=c.bn_momentum, spectral_norm=c.spectral_norm == "g_and_d",
                            dtype=dtype, conv_implementation=conv),
            ResNetDiscriminatorBody(c.resolution, c.d_width, norm=effective_d_norm(c),
                                    spectral_norm=c.spectral_norm != "none",
                                    minibatch_std=c.minibatch_std, bn_momentum=c.bn_momentum,
                                    dtype=dtype, conv_implementation=conv))


def _mlp(c: ModelConfig, dtype: Any) -> tuple[nn.Module, nn.Module]:
    if effective_d_norm(c) != "none" or c.minibatch_std:
        raise UserError(f"model.arch='mlp' has no feature maps to normalise: model.d_norm="
                        f"'{c.d_norm}' and model.minibatch_std={c.minibatch_std} need "
                        "a convolutional model.arch ('dcgan', 'infogan' or 'resnet')")
    return (MLPGenerator(c.resolution, c.channels, c.g_width, c.mlp_layers,
                         num_classes=_g_classes(c), spectral_norm=c.spectral_norm == "g_and_d",
                         dtype=dtype),
            MLPDiscriminatorBody(c.d_width, c.mlp_layers, c.maxout_pieces, c.d_dropout,
                                 spectral_norm=c.spectral_norm != "none", dtype=dtype))


ARCHITECTURES: dict[str, Callable[[ModelConfig, Any], tuple[nn.Module, nn.Module]]] = {
    "dcgan": _dcgan, "infogan": _infogan, "mlp": _mlp, "resnet": _resnet}
# The head is initialised like its architecture's own layers.
HEAD_INITS = {"dcgan": DCGAN_WEIGHT_INIT, "infogan": INFOGAN_WEIGHT_INIT,
              "resnet": glorot_uniform(1.0),
              "mlp": nn.initializers.lecun_normal()}


def check_model_config(c: ModelConfig) -> None:
    """Refuses unknown or contradictory model choices with the keys involved."""
    check_section_bounds("model", c)  # its bounds and choices (a ModelConfig built in Python)
    if c.conditioning != "none" and c.num_classes < 2:
        raise UserError(f"model.conditioning='{c.conditioning}' needs model.num_classes >= 2, "
                        f"got {c.num_classes}")


def build_networks(config: ModelConfig) -> Networks:
    check_model_config(config)
    generator, body = ARCHITECTURES[config.arch](config, COMPUTE_DTYPES[config.compute_dtype])
    discriminator = Discriminator(
        body, config.conditioning, config.num_classes if config.conditioning != "none" else 0,
        spectral_norm=config.spectral_norm != "none",
        minibatch_discrimination=config.minibatch_discrimination,
        kernel_init=HEAD_INITS[config.arch])
    return Networks(generator, discriminator)


__all__ = ["ARCHITECTURES", "COMPUTE_DTYPES", "Discriminator",
           "DiscriminatorOutput", "Networks", "build_networks", "check_model_config",
           "DCGANGenerator", "DCGANDiscriminatorBody", "InfoGANGenerator",
           "InfoGANDiscriminatorBody", "MLPGenerator", "MLPDiscriminatorBody",
           "ResNetGenerator", "ResNetDiscriminatorBody", "effective_d_norm", "upsampling_plan"]

"""The discriminator's shared head: one logit per image, projection or ACGAN conditioning.

Every architecture's discriminator is its *body* (images -> features (N, F)) under this one
head, so every conditioning and minibatch trick composes with every architecture.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import (EqualizedDense, MinibatchDiscrimination, he_scale,
                                   maybe_spectral)


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
    # ProGAN's equalised learning rate: weights N(0, 1) (kernel_init) scaled by 1 / sqrt(F)
    equalized_lr: bool = False

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, *,
                 train: bool) -> DiscriminatorOutput:
        h = self.body(images, train=train).astype(jnp.float32)
        if self.minibatch_discrimination:
            h = MinibatchDiscrimination(self.minibatch_discrimination)(h)
        linear = lambda layer, x: maybe_spectral(layer, x, spectral_norm=self.spectral_norm,
                                                 train=train)
        dense = (functools.partial(EqualizedDense, gain=1.0) if self.equalized_lr else
                 functools.partial(nn.Dense, kernel_init=self.kernel_init))
        logits = linear(dense(1, name="logit"), h)[:, 0]
        class_logits = None
        if self.conditioning == "projection":
            embedded = linear(nn.Embed(self.num_classes, h.shape[-1],
                                       embedding_init=self.kernel_init, name="projection"),
                              labels)
            if self.equalized_lr:
                embedded = embedded * he_scale(h.shape[-1], 1.0)
            logits = logits + jnp.sum(embedded * h, axis=-1)
        elif self.conditioning == "acgan":
            class_logits = linear(dense(self.num_classes, name="classifier"), h)
        return DiscriminatorOutput(logits, h, class_logits)

"""The discriminator's shared head: one logit per image, projection or ACGAN conditioning.

Every architecture's discriminator is its *body* (images -> features (N, F)) under this one
head, so every conditioning and minibatch trick composes with every architecture.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import MinibatchDiscrimination, maybe_spectral


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

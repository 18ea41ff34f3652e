"""Adversarial losses as pure functions of discriminator logits.

Each loss is a pair of functions returning (scalar loss, aux dict of scalars):
  d(real_logits, fake_logits) -> the discriminator's loss, minimised over D's parameters;
  g(fake_logits)              -> the generator's loss, minimised over G's parameters;
  g(fake_logits, real_logits) for a relativistic loss (`g_sees_real`), whose generator side
                                 compares each fake with a real sample.
With D(x) = sigmoid(logit), log D(x) = -softplus(-logit) and log(1 - D(x)) = -softplus(logit);
writing them with softplus keeps them finite for any logit.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Aux = dict[str, jax.Array]


class AdversarialLoss(NamedTuple):
    d: Callable[[jax.Array, jax.Array], tuple[jax.Array, Aux]]
    g: Callable[..., tuple[jax.Array, Aux]]
    g_sees_real: bool = False  # g(fake_logits, real_logits): D's real logits in G's update


def bce_discriminator(real_logits: jax.Array, fake_logits: jax.Array,
                      label_smoothing: float = 0.0) -> tuple[jax.Array, Aux]:
    """-[log D(x) + log(1 - D(G(z)))]: the discriminator side of the original GAN game.

    One-sided label smoothing (Salimans et al. 2016) makes the real target 1 - s, i.e. the real
    term -[(1 - s) log D(x) + s log(1 - D(x))]; fake targets stay 0.
    """
    real_term = jnp.mean((1.0 - label_smoothing) * jax.nn.softplus(-real_logits)
                         + label_smoothing * jax.nn.softplus(real_logits))
    fake_term = jnp.mean(jax.nn.softplus(fake_logits))
    return real_term + fake_term, {"d_loss_real": real_term, "d_loss_fake": fake_term}


def minimax_generator(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """log(1 - D(G(z))): the saturating generator loss of the minimax game (Goodfellow 2014)."""
    return -jnp.mean(jax.nn.softplus(fake_logits)), {}


def non_saturating_generator(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """-log D(G(z)): the same fixed point, but strong gradients when D rejects the fakes."""
    return jnp.mean(jax.nn.softplus(-fake_logits)), {}


def least_squares_discriminator(real_logits: jax.Array,
                                fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """LSGAN (Mao et al. 2017, a=0, b=c=1): 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2 on raw outputs."""
    real_term = 0.5 * jnp.mean(jnp.square(real_logits - 1.0))
    fake_term = 0.5 * jnp.mean(jnp.square(fake_logits))
    return real_term + fake_term, {"d_loss_real": real_term, "d_loss_fake": fake_term}


def least_squares_generator(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """LSGAN generator: 1/2 (D(G(z)) - 1)^2, pulling fakes to the real target."""
    return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0)), {}


def hinge_discriminator(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Hinge loss (Lim & Ye 2017; SNGAN, BigGAN): max(0, 1 - D(x)) + max(0, 1 + D(G(z)))."""
    real_term = jnp.mean(jax.nn.relu(1.0 - real_logits))
    fake_term = jnp.mean(jax.nn.relu(1.0 + fake_logits))
    return real_term + fake_term, {"d_loss_real": real_term, "d_loss_fake": fake_term}


def hinge_generator(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """-D(G(z)): the generator side of the hinge game (and of WGAN)."""
    return -jnp.mean(fake_logits), {}


def wasserstein_discriminator(real_logits: jax.Array,
                              fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """WGAN critic (Arjovsky et al. 2017): E D(G(z)) - E D(x), the negated Wasserstein estimate.

    Meaningful only for a (roughly) 1-Lipschitz critic: weight clipping, a gradient penalty or
    spectral norm; the config refuses it otherwise.
    """
    real_term, fake_term = jnp.mean(real_logits), jnp.mean(fake_logits)
    return fake_term - real_term, {"wasserstein_estimate": real_term - fake_term}


def relativistic_pairing_discriminator(real_logits: jax.Array,
                                       fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """RpGAN (Jolicoeur-Martineau 2019; the R3GAN loss of Huang et al. 2024):
    E softplus(D(G(z_i)) - D(x_i)), each fake paired with the real sample of its index."""
    gap = real_logits - fake_logits
    return jnp.mean(jax.nn.softplus(-gap)), {"relativistic_gap": jnp.mean(gap)}


def relativistic_pairing_generator(fake_logits: jax.Array,
                                   real_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """RpGAN's generator side: E softplus(D(x_i) - D(G(z_i)))."""
    return jnp.mean(jax.nn.softplus(real_logits - fake_logits)), {}


# Losses whose discriminator side is binary cross-entropy, where label smoothing is defined.
BCE_LOSSES = ("minimax", "non_saturating")

LOSSES: dict[str, AdversarialLoss] = {
    "minimax": AdversarialLoss(bce_discriminator, minimax_generator),
    "non_saturating": AdversarialLoss(bce_discriminator, non_saturating_generator),
    "least_squares": AdversarialLoss(least_squares_discriminator, least_squares_generator),
    "hinge": AdversarialLoss(hinge_discriminator, hinge_generator),
    # The WGAN generator loss, -E D(G(z)), is the hinge generator loss.
    "wasserstein": AdversarialLoss(wasserstein_discriminator, hinge_generator),
    "relativistic_pairing": AdversarialLoss(relativistic_pairing_discriminator,
                                            relativistic_pairing_generator, g_sees_real=True),
}


def make_loss(name: str, label_smoothing: float = 0.0) -> AdversarialLoss:
    """The loss `name` of LOSSES, with one-sided label smoothing for the BCE losses."""
    loss = LOSSES[name]
    if label_smoothing:
        if name not in BCE_LOSSES:
            raise ValueError(f"label smoothing is defined for {BCE_LOSSES}, not {name!r}")
        loss = loss._replace(d=functools.partial(bce_discriminator,
                                                 label_smoothing=label_smoothing))
    return loss

"""Gradient penalties on the discriminator (critic), as pure functions returning (loss, aux).

`critic` is any function images -> logits of shape (N,), e.g. a closure over D's parameters.
Per-sample input gradients are taken as the gradient of sum(critic(x)), which is exact when
samples do not interact inside D: the penalised critics of WGAN-GP, DRAGAN and R1 use no
BatchNorm (layer/instance norm or none), as their papers prescribe, and the config refuses a
BatchNorm critic. Minibatch features (ProGAN's stddev, minibatch discrimination) add a small
cross-sample term, accepted as StyleGAN2 and ProGAN accept it for R1 and WGAN-GP.

  gradient_penalty  WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - 1)^2] at random
                    points x_hat on lines between real and fake samples.
  dragan_penalty    DRAGAN (Kodali et al. 2017): the same, around perturbed real samples.
  r1_penalty        R1 (Mescheder et al. 2018): E[||grad D(x)||^2] on real samples; R2 on fakes
                    is the same function applied to fake samples. Callers scale it by gamma / 2.
  "r1_r2"           both, gamma / 2 each (R3GAN, Huang et al. 2024): a conditional D's caller
                    passes the fakes' critic (their labels) as `fake_critic`.

`penalty(name, ...)` picks one by its config name (reg.penalty); the train step multiplies it by
reg.penalty_weight and, with lazy regularisation, applies it every reg.penalty_every D updates.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Critic = Callable[[jax.Array], jax.Array]
Aux = dict[str, jax.Array]


def input_gradients(critic: Critic, x: jax.Array) -> jax.Array:
    """d critic(x)_i / d x_i for every sample i, shape of x."""
    return jax.grad(lambda inputs: jnp.sum(critic(inputs)))(x)


def _per_sample_norm(gradients: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(gradients.reshape(len(gradients), -1)), axis=1))


def interpolate(real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
    """x_hat = eps * real + (1 - eps) * fake, one eps ~ U[0, 1) per sample."""
    eps = jax.random.uniform(key, (len(real),) + (1,) * (real.ndim - 1), real.dtype)
    return eps * real + (1.0 - eps) * fake


def _unit_norm_penalty(critic: Critic, points: jax.Array) -> tuple[jax.Array, Aux]:
    norms = _per_sample_norm(input_gradients(critic, points))
    return jnp.mean(jnp.square(norms - 1.0)), {"grad_norm": jnp.mean(norms)}


def gradient_penalty(critic: Critic, real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> tuple[jax.Array, Aux]:
    """WGAN-GP's two-sided penalty at random interpolates of real and (detached) fake."""
    return _unit_norm_penalty(critic, interpolate(real, jax.lax.stop_gradient(fake), key))


def perturb(real: jax.Array, key: jax.Array, scale: float = 0.5) -> jax.Array:
    """DRAGAN's neighbourhood: x + scale * std(x) * u, u ~ U[0, 1) elementwise."""
    noise = jax.random.uniform(key, real.shape, real.dtype)
    return real + scale * jnp.std(real) * noise


def dragan_penalty(critic: Critic, real: jax.Array, key: jax.Array,
                   scale: float = 0.5) -> tuple[jax.Array, Aux]:
    """DRAGAN: the unit-gradient penalty at interpolates of real and perturbed-real samples."""
    perturb_key, mix_key = jax.random.split(key)
    return _unit_norm_penalty(critic, interpolate(real, perturb(real, perturb_key, scale),
                                                  mix_key))


def r1_penalty(critic: Critic, samples: jax.Array) -> tuple[jax.Array, Aux]:
    """E ||grad D(x)||^2 at `samples` (reals: R1; fakes: R2). Scale by gamma / 2."""
    squared = jnp.sum(jnp.square(input_gradients(critic, samples).reshape(len(samples), -1)),
                      axis=1)
    return jnp.mean(squared), {"grad_norm": jnp.mean(jnp.sqrt(squared))}


PENALTIES = ("wgan_gp", "dragan", "r1", "r2", "r1_r2")


def r1_r2_penalty(real_critic: Critic, fake_critic: Critic, real: jax.Array,
                  fake: jax.Array) -> tuple[jax.Array, Aux]:
    """1/2 (E||grad D(x)||^2 + E||grad D(G(z))||^2): R1 and R2 with one gamma, to be multiplied
    by it, as R3GAN regularises its RpGAN critic."""
    r1, r1_aux = r1_penalty(real_critic, real)
    r2, r2_aux = r1_penalty(fake_critic, jax.lax.stop_gradient(fake))
    return 0.5 * (r1 + r2), {"grad_norm": r1_aux["grad_norm"],
                              "fake_grad_norm": r2_aux["grad_norm"]}


def penalty(name: str, critic: Critic, real: jax.Array, fake: jax.Array, key: jax.Array,
            fake_critic: Critic | None = None) -> tuple[jax.Array, Aux]:
    """The penalty `name`, to be multiplied by its weight; R1/R2 include their 1/2 factor, so
    weight gamma gives gamma/2 E||grad D||^2 as in Mescheder et al. and StyleGAN2.
    `fake_critic` is D on the fakes' labels, for R1 + R2's fake side on a conditional D
    (default: `critic`, right for an unconditional one)."""
    if name == "wgan_gp":
        return gradient_penalty(critic, real, fake, key)
    if name == "dragan":
        return dragan_penalty(critic, real, key)
    if name == "r1_r2":
        return r1_r2_penalty(critic, critic if fake_critic is None else fake_critic, real, fake)
    if name in ("r1", "r2"):
        value, aux = r1_penalty(critic, real if name == "r1" else jax.lax.stop_gradient(fake))
        return 0.5 * value, aux
    raise ValueError(f"unknown penalty {name!r}; expected one of {PENALTIES}")

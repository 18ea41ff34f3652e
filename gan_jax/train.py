"""The train state and the pure, jit-able GAN train step.

    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    train_step = make_train_step(config)          # pure: (state, batch, key) -> (state, metrics)
    state, metrics = jax.jit(train_step, donate_argnums=0)(state, batch, key)

One step is one discriminator update on a real and a fake batch followed by one generator update,
the DCGAN recipe. The generator runs forward once per step: its output is detached for the D
update, and the G update pulls the gradient back through the same forward pass with `jax.vjp`,
as PyTorch's `fake.detach()` idiom does, so no work is repeated.

All randomness comes from `key`: the step folds in `state.step`, so passing the same base key
every step gives fresh, reproducible randomness, and a resumed run draws exactly what an
uninterrupted one would.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from gan_jax.config import Config, OptimConfig
from gan_jax.errors import UserError
from gan_jax.losses import LOSSES, AdversarialLoss
from gan_jax.models import build_networks

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
Variables = dict[str, Any]


@struct.dataclass
class TrainState:
    """Everything that changes during training; a plain pytree that orbax saves as is."""

    step: jax.Array  # completed train steps (one D and one G update each)
    g_params: Any
    d_params: Any
    g_model_state: Variables  # non-parameter collections, e.g. {"batch_stats": ...}
    d_model_state: Variables
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState


class Gan(NamedTuple):
    """The static parts of a GAN: modules, optimizers and loss (never in the pytree)."""

    generator: nn.Module
    discriminator: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    loss: AdversarialLoss
    latent_dim: int
    image_shape: tuple[int, int, int]  # (H, W, C)


def build_gan(config: Config) -> Gan:
    if config.train.loss not in LOSSES:
        raise UserError(f"train.loss='{config.train.loss}' is unknown; choose one of "
                        f"{', '.join(LOSSES)}")
    networks = build_networks(config.model)
    m = config.model
    return Gan(networks.generator, networks.discriminator,
               _adam(config.optim, config.optim.g_lr), _adam(config.optim, config.optim.d_lr),
               LOSSES[config.train.loss], m.latent_dim, (m.resolution, m.resolution, m.channels))


def _adam(optim: OptimConfig, lr: float) -> optax.GradientTransformation:
    return optax.adam(lr, b1=optim.b1, b2=optim.b2)


def sample_latents(key: jax.Array, n: int, latent_dim: int) -> jax.Array:
    return jax.random.normal(key, (n, latent_dim))


def images_to_float(images: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1]; float input is taken as already scaled."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images.astype(jnp.float32)


def init_state(gan: Gan, key: jax.Array) -> TrainState:
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((1, gan.latent_dim))
    g_vars = dict(gan.generator.init(g_key, z, train=False))
    d_vars = dict(gan.discriminator.init(d_key, jnp.zeros((1, *gan.image_shape)), train=False))
    g_params, d_params = g_vars.pop("params"), d_vars.pop("params")
    return TrainState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                      g_model_state=g_vars, d_model_state=d_vars,
                      g_opt_state=gan.g_tx.init(g_params), d_opt_state=gan.d_tx.init(d_params))


def make_train_step(config: Config) -> Callable[[TrainState, Batch, jax.Array],
                                                tuple[TrainState, Metrics]]:
    return train_step_for(build_gan(config))


def train_step_for(gan: Gan) -> Callable[[TrainState, Batch, jax.Array],
                                         tuple[TrainState, Metrics]]:
    """The pure train step of `gan`; see the module docstring."""

    def apply_d(params, model_state, images, dropout_key):
        logits, new_state = gan.discriminator.apply(
            {"params": params, **model_state}, images, train=True,
            mutable=list(model_state), rngs={"dropout": dropout_key})
        return logits, new_state

    def train_step(state: TrainState, batch: Batch, key: jax.Array):
        keys = dict(zip(("z", "d_real", "d_fake", "g"),
                        jax.random.split(jax.random.fold_in(key, state.step), 4)))
        real = images_to_float(batch["image"])
        z = sample_latents(keys["z"], real.shape[0], gan.latent_dim)

        def generate(g_params):
            return gan.generator.apply({"params": g_params, **state.g_model_state}, z,
                                       train=True, mutable=list(state.g_model_state))

        fake, pull_back_to_g, g_model_state = jax.vjp(generate, state.g_params, has_aux=True)

        # Discriminator update on the real batch and the detached fake batch, each with its
        # own batch statistics (two forward passes, as in the DCGAN reference).
        def d_objective(d_params):
            real_logits, d_state = apply_d(d_params, state.d_model_state, real, keys["d_real"])
            fake_logits, d_state = apply_d(d_params, d_state, jax.lax.stop_gradient(fake),
                                           keys["d_fake"])
            loss, aux = gan.loss.d(real_logits, fake_logits)
            aux |= {"d_real_logit": real_logits.mean(), "d_fake_logit": fake_logits.mean()}
            return loss, (aux, d_state)

        (d_loss, (d_aux, d_model_state)), d_grads = jax.value_and_grad(
            d_objective, has_aux=True)(state.d_params)
        d_updates, d_opt_state = gan.d_tx.update(d_grads, state.d_opt_state, state.d_params)
        d_params = optax.apply_updates(state.d_params, d_updates)

        # Generator update against the updated discriminator, through the same fakes.
        def g_objective(fake_images):
            fake_logits, d_state = apply_d(d_params, d_model_state, fake_images, keys["g"])
            loss, aux = gan.loss.g(fake_logits)
            return loss, (aux, d_state)

        (g_loss, (g_aux, d_model_state)), d_fake = jax.value_and_grad(
            g_objective, has_aux=True)(fake)
        (g_grads,) = pull_back_to_g(d_fake)
        g_updates, g_opt_state = gan.g_tx.update(g_grads, state.g_opt_state, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)

        new_state = TrainState(step=state.step + 1, g_params=g_params, d_params=d_params,
                               g_model_state=g_model_state, d_model_state=d_model_state,
                               g_opt_state=g_opt_state, d_opt_state=d_opt_state)
        metrics = {"d_loss": d_loss, "g_loss": g_loss, **d_aux, **g_aux,
                   "g_grad_norm": optax.global_norm(g_grads),
                   "d_grad_norm": optax.global_norm(d_grads),
                   "g_param_norm": optax.global_norm(g_params),
                   "d_param_norm": optax.global_norm(d_params)}
        metrics["finite"] = jnp.all(jnp.isfinite(jnp.stack(list(metrics.values()))))
        return new_state, metrics

    return train_step


def generate_images(gan: Gan, state: TrainState, z: jax.Array) -> jax.Array:
    """Images in [-1, 1] from latents, in inference mode (BatchNorm running statistics)."""
    return gan.generator.apply({"params": state.g_params, **state.g_model_state}, z, train=False)

"""The optimizers of G and D: Adam or RMSprop from the optim section, their learning rate set
by the step every update (linear decay, divergence rollbacks, StyleGAN2's lazy compensation).

    tx = make_optimizer(config.optim, config.optim.g_lr, lazy_every=1)
    opt_state = with_learning_rate(opt_state, lr)   # inside the jitted step
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from gan_jax.config import OptimConfig, refuse_without
from gan_jax.errors import UserError


def check_optim_config(o: OptimConfig) -> None:
    """The optimizer section's own rules."""
    refuse_without("optim.ema_rampup", o.ema_rampup is not None and o.ema_kimg is None,
                   "optim.ema_kimg (the EMA it ramps up)")
    refuse_without("optim.ema_start_kimg", o.ema_start_kimg > 0 and o.ema_kimg is None,
                   "optim.ema_kimg (the EMA it starts)")
    refuse_without("optim.decay_kimg", o.decay_kimg is not None and o.lr_decay == "constant",
                   "optim.lr_decay=linear")


def lazy_compensation(lazy_every: int) -> float:
    """k / (k + 1) for lazy regularisation every k > 1 updates (StyleGAN2), else 1: the
    optimizer takes k + 1 steps per k updates, for G and D alike."""
    return lazy_every / (lazy_every + 1) if lazy_every > 1 else 1.0


def make_optimizer(optim: OptimConfig, lr: float, lazy_every: int = 1
                   ) -> optax.GradientTransformation:
    """Adam or RMSprop whose learning rate the step sets (`with_learning_rate`).

    With lazy regularisation every k updates the optimizer takes k + 1 steps per k updates, so
    StyleGAN2 scales the rate by k / (k + 1) and raises the betas to that power.
    """
    ratio = lazy_compensation(lazy_every)
    if optim.optimizer == "adam":
        return optax.inject_hyperparams(optax.adam)(
            learning_rate=lr * ratio, b1=optim.b1 ** ratio, b2=optim.b2 ** ratio,
            eps=optim.eps)
    if optim.optimizer == "rmsprop":
        # eps outside the square root, as PyTorch's RMSprop (WGAN's reference) has it.
        return optax.inject_hyperparams(optax.rmsprop, static_args=("eps_in_sqrt",))(
            learning_rate=lr * ratio, decay=optim.b2 ** ratio, eps=optim.eps,
            eps_in_sqrt=False)
    raise UserError(f"optim.optimizer='{optim.optimizer}' is unknown; choose adam or rmsprop")


def optimizer_updates(opt_state: optax.OptState) -> jax.Array:
    """How many updates an optimizer of `make_optimizer` has applied (a lazy regularisation
    phase counts as an update of its own)."""
    return opt_state.count


def learning_rate_scale(optim: OptimConfig, total_kimg: float, kimg: jax.Array) -> jax.Array:
    """1 for a constant rate; linear decay 1 -> 0 at optim.decay_kimg (or the run's end)."""
    if optim.lr_decay == "constant":
        return jnp.ones(())
    end = optim.decay_kimg if optim.decay_kimg is not None else total_kimg
    return jnp.clip(1.0 - kimg / end, 0.0, 1.0)


def with_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
    """`opt_state` of an optimizer of `make_optimizer` with its learning rate set to `lr`
    (the step sets it every update: decay, rollbacks, lazy compensation)."""
    hyperparams = dict(opt_state.hyperparams, learning_rate=lr)
    return opt_state._replace(hyperparams=hyperparams)

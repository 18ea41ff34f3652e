"""What the configured stateful parts of the step keep between steps: `TrainState.slots`.

A `Slot` names its entry, makes its value before the first update, and, for a part that
follows a network's update (the G EMA, the historical averages, ADA's probability), says which
network's and how its value moves. A part that is not configured has no slot, so the state
holds nothing for it. Loss terms that keep state (LeCam's anchors) write it from inside their
phase (`gan_jax.terms.View.keep`) and declare only their initial value here. Adding a stateful
part is one `Slot` in `slots_for`, its config field and its test.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from gan_jax import augment
from gan_jax.config import Config


class AfterUpdate(NamedTuple):
    """What a slot's update sees once its network has been updated in a step."""
    config: Config
    step: jax.Array  # completed steps before this one
    g_params: Any
    d_params: Any
    real_logits: jax.Array | None = None  # after D's update: its logits of the real batch
    images_seen: jax.Array | None = None  # after G's: real images shown to D before this step
    images_per_step: int | None = None  # after G's: real images per step


class Slot(NamedTuple):
    name: str  # its key in TrainState.slots
    initial: Callable[[Config, Any, Any], Any]  # (config, g_params, d_params) -> value
    after: str | None = None  # "d" or "g": updated after that network's update; None: by a term
    update: Callable[[Any, AfterUpdate], Any] | None = None  # (value, what it sees) -> value


def ema_beta(images_seen: jax.Array, batch_size: int, half_life_kimg: float,
             rampup: float | None, start_kimg: float = 0.0) -> jax.Array:
    """Per-step EMA decay for a half-life in images (StyleGAN2-ADA): 0.5 ** (B / half_life),
    for a step of B real images after `images_seen` (an integer array).

    With ramp-up the half-life is at most `rampup` times the images seen so far, so early,
    fast-changing weights are not averaged over a long past. Before `start_kimg` the decay is
    0: the EMA is G itself (BigGAN-PyTorch's ema_start).
    """
    seen = images_seen.astype(jnp.float32)
    half_life = jnp.asarray(half_life_kimg * 1000.0, jnp.float32)
    if rampup is not None:
        half_life = jnp.minimum(half_life, seen * rampup)
    beta = 0.5 ** (batch_size / jnp.maximum(half_life, 1e-8))
    if start_kimg:
        beta = jnp.where(seen < start_kimg * 1000.0, 0.0, beta)
    return beta


def ema_update(ema: Any, params: Any, beta: jax.Array) -> Any:
    """ema <- beta * ema + (1 - beta) * params, leaf by leaf."""
    return jax.tree.map(lambda e, p: p + beta * (e - p), ema, params)


# Copies: a slot never shares a buffer with the parameters, which the step donates.
_copy = functools.partial(jax.tree.map, jnp.copy)


def _generator_ema(ema: Any, seen: AfterUpdate) -> Any:
    """G's EMA (optim.ema_kimg), its half-life counting real images shown to D, like every
    schedule (n_critic batches per step)."""
    o = seen.config.optim
    beta = ema_beta(seen.images_seen, seen.images_per_step, o.ema_kimg, o.ema_rampup,
                    o.ema_start_kimg)
    return ema_update(ema, seen.g_params, beta)


def _historical_averages(averages: Any, seen: AfterUpdate) -> Any:
    """Running means over the parameters after every step so far, and the initial ones
    (Salimans et al. 2016's historical averaging)."""
    count = seen.step.astype(jnp.float32) + 2.0
    return jax.tree.map(lambda a, p: a + (p - a) / count, averages,
                        {"g": seen.g_params, "d": seen.d_params})


def _ada_probability(p: jax.Array, seen: AfterUpdate) -> jax.Array:
    """ADA's augmentation probability, moved by how sure D is about the reals."""
    a = seen.config.augment
    return augment.adjust_probability(p, seen.real_logits, a.ada_target,
                                      seen.real_logits.shape[0], a.ada_kimg)


def _lecam_anchors(config: Config, g_params: Any, d_params: Any) -> dict[str, jax.Array]:
    zero = jnp.zeros((), jnp.float32)
    return {"real": zero, "fake": zero, "updates": jnp.zeros((), jnp.int32)}


def slots_for(config: Config) -> tuple[Slot, ...]:
    """The configured stateful parts, in the order their updates run."""
    slots = []
    if config.optim.ema_kimg is not None:
        slots.append(Slot("ema", lambda c, g, d: _copy(g), "g", _generator_ema))
    if config.reg.historical_averaging:
        slots.append(Slot("averages", lambda c, g, d: {"g": _copy(g), "d": _copy(d)}, "g",
                          _historical_averages))
    if config.augment.ada_target is not None:
        slots.append(Slot("augment_p", lambda c, g, d: jnp.asarray(c.augment.p, jnp.float32),
                          "d", _ada_probability))
    if config.reg.lecam_weight:
        slots.append(Slot("lecam", _lecam_anchors))  # gan_jax.terms.d_lecam keeps it
    return tuple(slots)


def initial_slots(config: Config, g_params: Any, d_params: Any) -> dict[str, Any]:
    """TrainState.slots before the first update: one entry per configured stateful part, and
    none for the others."""
    return {slot.name: slot.initial(config, g_params, d_params) for slot in slots_for(config)}


def updated_slots(slots: dict[str, Any], network: str, seen: AfterUpdate) -> dict[str, Any]:
    """`slots` with every entry that follows `network`'s update ("d" or "g") moved on."""
    return {**slots, **{slot.name: slot.update(slots[slot.name], seen)
                        for slot in slots_for(seen.config) if slot.after == network}}

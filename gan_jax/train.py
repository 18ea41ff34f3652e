"""The train state and the pure, jit-able GAN train step.

    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    train_step = make_train_step(config)          # pure: (state, batch, key) -> (state, metrics)
    state, metrics = jax.jit(train_step, donate_argnums=0)(state, batch, key)

One step is `train.n_critic` discriminator updates, each on its own real batch and fresh fakes,
followed by one generator update. What each network minimises is a list of loss terms
(gan_jax.terms), grouped by `build_gan` into phases in the manner of StyleGAN2-ADA's Dmain,
Dreg, Gmain and Greg: a network's main phase is part of every update, and a lazy phase of
interval k > 1 is an update of its own every k updates, its weight multiplied by k and the
network's optimizer compensated by k / (k + 1). With n_critic = 1 that is the DCGAN recipe;
with 5 it is WGAN's. The batch holds n_critic * train.batch_size real images; the first
n_critic - 1 D updates run inside `lax.scan`. The generator runs forward once for the last D
update, and the G update pulls the gradient back through that same forward pass with `jax.vjp`
(PyTorch's `fake.detach()` idiom), so no work is repeated; with `train.g_latents="fresh"` the G
update draws latents and classes of its own instead (one more G forward pass), as BigGAN-PyTorch,
StudioGAN, StyleGAN2-ADA and the official ProGAN do.

Everything in the zoo is a choice on this one step (gan_jax.config): the loss (relativistic
ones see D's real logits in G's update too), a gradient penalty (lazily every k D updates),
WGAN weight clipping, ProGAN's drift term, class conditioning (projection or ACGAN), feature
matching, one-sided label smoothing, historical averaging, LeCam and bCR regularisation of D,
top-k generator training, BigGAN's orthogonal regularisation of G, DiffAugment with an
ADA-adapted probability, and a generator EMA. A G term of G's parameters alone may be lazy
too (`build_gan(config, terms=...)` with its interval): StyleGAN2's Greg.

All randomness comes from `key`: the step folds in `state.step`, so passing the same base key
every step gives fresh, reproducible randomness, and a resumed run draws exactly what an
uninterrupted one would.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from gan_jax import augment
from gan_jax.batching import Batching, images_before
from gan_jax.compatibility import check_config
from gan_jax.config import Config
from gan_jax.errors import UserError
from gan_jax.losses import AdversarialLoss, make_loss
from gan_jax.models import (Networks, build_networks, networks_at_levels, resets_optimizers,
                            run_batching, schedule_values, shown_reals)
from gan_jax.optim import (lazy_compensation, learning_rate_scale, make_optimizer,
                           with_learning_rate)
from gan_jax.sampling import sample_labels, sample_latents
from gan_jax.slots import AfterUpdate, initial_slots, updated_slots
from gan_jax.terms import (StepInputs, StepKeys, Term, View, ViewKeys, augment_probability,
                           generate, terms_for)

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
Variables = dict[str, Any]


@struct.dataclass
class TrainState:
    """Everything that changes during training; a plain pytree that orbax saves as is."""

    step: jax.Array  # completed train steps (n_critic D updates and one G update each)
    g_params: Any
    d_params: Any
    g_model_state: Variables  # non-parameter collections, e.g. {"batch_stats": ...}
    d_model_state: Variables
    g_opt_state: optax.OptState
    d_opt_state: optax.OptState
    lr_multiplier: jax.Array  # float32 factor on both learning rates: 1, lowered by each
    #                           divergence rollback (train.rollback_tries) and saved with it
    # What the configured stateful parts keep, by name, and nothing for those not configured
    # (gan_jax.slots): "ema" (G's EMA parameters, optim.ema_kimg), "averages" ({"g", "d"}: the
    # means of all past parameters, reg.historical_averaging), "augment_p" (ADA's
    # probability), "lecam" (LeCam's anchors, kept by its term through View.keep).
    slots: dict[str, Any]


class Gan(NamedTuple):
    """The static parts of a GAN: modules, optimizers, loss and settings (never in the pytree)."""

    generator: nn.Module
    discriminator: nn.Module
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    loss: AdversarialLoss
    latent_dim: int
    image_shape: tuple[int, int, int]  # (H, W, C)
    num_classes: int  # labels the networks take; 0 when unconditional
    config: Config
    phases: tuple[Phase, ...]  # the loss terms of D and G, grouped into updates


class Phase(NamedTuple):
    """Terms of one network minimised together: its main update (every 1) or a lazy one."""
    network: str  # "d" or "g"
    every: int
    terms: tuple[Term, ...]


def build_gan(config: Config, terms: tuple[Term, ...] | None = None) -> Gan:
    """The networks, optimizers and phases of `config`. `terms` replaces the config's loss
    terms (`gan_jax.terms.terms_for(config)`): research code adds its own term that way."""
    check_config(config)
    networks = build_networks(config.model)
    m = config.model
    phases = phases_for(terms_for(config) if terms is None else terms)
    return Gan(networks.generator, networks.discriminator,
               make_optimizer(config.optim, config.optim.g_lr, lazy_every(phases, "g")),
               make_optimizer(config.optim, config.optim.d_lr, lazy_every(phases, "d")),
               make_loss(config.train.loss, config.reg.label_smoothing), m.latent_dim,
               (m.resolution, m.resolution, m.channels),
               m.num_classes if m.conditioning != "none" else 0, config, phases)


def phases_for(terms: tuple[Term, ...]) -> tuple[Phase, ...]:
    """Each network's terms grouped by interval: its main phase, then at most one lazy phase
    (StyleGAN2-ADA's Dreg and Greg), whose interval sets the optimizer's compensation."""
    phases = []
    for network in ("d", "g"):
        intervals = sorted({t.every for t in terms if t.network == network} | {1})
        if len(intervals) > 2:
            raise UserError(f"the {network.upper()} terms have intervals {intervals}; one lazy "
                            "interval per network is supported")
        phases += [Phase(network, every, tuple(t for t in terms
                                               if t.network == network and t.every == every))
                   for every in intervals]
    for phase in phases:
        if phase.network == "g" and phase.every > 1 and not all(t.of_params
                                                              for t in phase.terms):
            raise UserError("a lazy G term must be a function of G's parameters only")
    return tuple(phases)


def lazy_every(phases: tuple[Phase, ...], network: str) -> int:
    """Updates of `network` ("d" or "g") per lazy update; 1 when it has no lazy phase."""
    return max(phase.every for phase in phases if phase.network == network)


def fake_labels_for(gan: Gan, key: jax.Array, real_labels: jax.Array | None,
                    n: int) -> jax.Array | None:
    """The classes D's fakes are drawn for: uniform, except under WGAN-GP, whose interpolates
    between a real and a fake sample need both ends in one class (Gulrajani et al.'s
    conditional code generates D's fakes for the real batch's labels)."""
    if gan.num_classes and gan.config.reg.penalty == "wgan_gp":
        return real_labels
    return sample_labels(key, n, gan.num_classes)


def images_to_float(images: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1]; float input is taken as already scaled."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 127.5 - 1.0
    return images.astype(jnp.float32)


def init_state(gan: Gan, key: jax.Array) -> TrainState:
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((1, gan.latent_dim))
    labels = jnp.zeros((1,), jnp.int32) if gan.num_classes else None
    g_vars = dict(gan.generator.init(g_key, z, labels, train=False))
    d_vars = dict(gan.discriminator.init(d_key, jnp.zeros((1, *gan.image_shape)), labels,
                                         train=False))
    g_params, d_params = g_vars.pop("params"), d_vars.pop("params")
    state = TrainState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                       g_model_state=g_vars, d_model_state=d_vars,
                       g_opt_state=gan.g_tx.init(g_params), d_opt_state=gan.d_tx.init(d_params),
                       lr_multiplier=jnp.ones((), jnp.float32),
                       slots=initial_slots(gan.config, g_params, d_params))
    return with_schedule(state, schedule_values(gan.config.model, jnp.zeros((), jnp.int32)))


# --- a schedule of the networks (ProGAN's growing) -------------------------------------------


def _set_schedule(model_state: Variables, values: dict[str, jax.Array]) -> Variables:
    """model_state with every leaf of its "schedule" collection set to the value of its
    name (the collection may be nested under submodules, as D's body is)."""
    if "schedule" not in model_state:
        return model_state
    # jnp.array copies: G's and D's values are never one buffer (the step donates both)
    scheduled = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.array(values[path[-1].key], leaf.dtype),
        model_state["schedule"])
    return {**model_state, "schedule": scheduled}


def scheduled(model_state: Variables, name: str) -> jax.Array | None:
    """The value `name` of a network's "schedule" collection; None when it has none."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(model_state.get("schedule", {})):
        if path[-1].key == name:
            return leaf
    return None


def with_schedule(state: TrainState, values: dict[str, jax.Array]) -> TrainState:
    """`state` with both networks' "schedule" collections set to `values`
    (gan_jax.models.schedule_values); the state itself when there are none."""
    if not values:
        return state
    return state.replace(g_model_state=_set_schedule(state.g_model_state, values),
                         d_model_state=_set_schedule(state.d_model_state, values))


def enter_stage(gan: Gan, state: TrainState, values: dict[str, jax.Array]) -> TrainState:
    """The state for a step under the schedule `values`: the schedule set, and, where the
    architecture says so, fresh optimizer states when a new stage begins (the official
    ProGAN's reset_opt_for_new_lod: moments and bias correction start again)."""
    if not values:
        return state
    if resets_optimizers(gan.config.model):
        new_stage = values["stage"] != scheduled(state.g_model_state, "stage")

        def fresh(opt_state, tx, params):
            return jax.tree.map(lambda new, old: jnp.where(new_stage, new, old),
                                tx.init(params), opt_state)
        state = state.replace(g_opt_state=fresh(state.g_opt_state, gan.g_tx, state.g_params),
                              d_opt_state=fresh(state.d_opt_state, gan.d_tx, state.d_params))
    return with_schedule(state, values)


def make_train_step(config: Config) -> Callable[[TrainState, Batch, jax.Array],
                                                tuple[TrainState, Metrics]]:
    return train_step_for(build_gan(config))


# --- phases ---------------------------------------------------------------------------------


def _weighted_sum(terms: tuple[Term, ...], view: View) -> tuple[jax.Array, Metrics]:
    """sum_i weight_i * term_i(view), in the terms' order, and every term's metrics."""
    loss, aux = None, {}
    for term in terms:
        value, term_aux = term.loss(view)
        weighted = term.weight * value
        loss = weighted if loss is None else loss + weighted
        aux |= term_aux
    return loss, aux


def _main_phase(gan: Gan, network: str) -> Phase:
    return next(p for p in gan.phases if p.network == network and p.every == 1)


def _lazy_phase(gan: Gan, network: str) -> Phase | None:
    return next((p for p in gan.phases if p.network == network and p.every > 1), None)


def _lazy_update(phase: Phase, update: Callable[[TrainState], tuple[TrainState, Metrics]],
                 state: TrainState, index: jax.Array) -> tuple[TrainState, Metrics]:
    """`update` at the end of each block of `phase.every` updates of its network (`index`
    counts them over the run), else the state as it is and the phase's metrics as zeros: a
    log every multiple of k steps (with n_critic = 1) shows them."""
    shapes = jax.eval_shape(update, state)[1]

    def skip(state):
        return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return jax.lax.cond((index + 1) % phase.every == 0, update, skip, state)


def _d_update(gan: Gan, state: TrainState, inputs: StepInputs, keys: StepKeys,
              d_index: jax.Array) -> tuple[TrainState, Metrics]:
    """One D update on a real batch and a (detached) fake batch (D's main phase), then its
    lazy phase when one is due, and the slots that follow D's update (gan_jax.slots: ADA's
    probability)."""
    c = gan.config
    inputs = inputs._replace(fake=jax.lax.stop_gradient(inputs.fake))
    view_keys = ViewKeys(keys.real, keys.fake, keys.penalty)

    def objective(d_params, phase, state):
        view = View(gan, state, d_params, d_params, inputs, view_keys)
        loss, aux = _weighted_sum(phase.terms, view)
        if phase.every > 1:  # StyleGAN2's separate update, weighted by its interval
            loss = phase.every * loss
        real = view.made("real")
        return loss, (aux, view.d_model_state, None if real is None else real.logits,
                      view.kept)

    (loss, (aux, d_model_state, real_logits, kept)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.d_params, _main_phase(gan, "d"), state)
    d_params, d_opt_state = _apply_gradients(gan.d_tx, grads, state.d_opt_state,
                                             state.d_params, c.reg.clip)
    state = _with_slots(state.replace(d_params=d_params, d_opt_state=d_opt_state,
                                      d_model_state=d_model_state), **kept)
    metrics = {"d_loss": loss, **aux, "d_grad_norm": optax.global_norm(grads)}

    lazy = _lazy_phase(gan, "d")
    if lazy is not None:
        def regularize(state):
            def lazy_objective(d_params):
                loss, (aux, _, _, kept) = objective(d_params, lazy, state)
                return loss, (aux, kept)
            return _lazy_step(gan.d_tx, lazy_objective, state, "d", c.reg.clip)
        state, lazy_metrics = _lazy_update(lazy, regularize, state, d_index)
        metrics |= lazy_metrics

    return state.replace(slots=updated_slots(state.slots, "d", AfterUpdate(
        c, state.step, state.g_params, state.d_params, real_logits))), metrics


def _lazy_step(tx: optax.GradientTransformation, objective: Callable, state: TrainState,
               network: str, clip: float | None) -> tuple[TrainState, Metrics]:
    """One lazy phase's update of `network`: `objective(params) -> (loss, (metrics, kept
    slots))` minimised by one optimizer step; returns the state and the phase's metrics."""
    params, opt_state = getattr(state, f"{network}_params"), getattr(state, f"{network}_opt_state")
    (_, (aux, kept)), grads = jax.value_and_grad(objective, has_aux=True)(params)
    params, opt_state = _apply_gradients(tx, grads, opt_state, params, clip)
    return _with_slots(state.replace(**{f"{network}_params": params,
                                        f"{network}_opt_state": opt_state}), **kept), aux


def _with_slots(state: TrainState, **slots: Any) -> TrainState:
    return state.replace(slots={**state.slots, **slots})


def _clip(params: Any, bound: float | None) -> Any:
    """WGAN's weight clipping of every parameter to [-bound, bound]; None: unchanged."""
    if bound is None:
        return params
    return jax.tree.map(lambda p: jnp.clip(p, -bound, bound), params)


def _apply_gradients(tx: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any,
                     clip: float | None) -> tuple[Any, Any]:
    updates, opt_state = tx.update(grads, opt_state, params)
    return _clip(optax.apply_updates(params, updates), clip), opt_state


def discriminator_step(gan: Gan, state: TrainState, real: jax.Array, labels: jax.Array | None,
                       key: jax.Array, d_index: jax.Array) -> tuple[TrainState, Metrics]:
    """One complete D update: fresh fakes from `key`, then D's main phase and, when due, its
    lazy one. `d_index` counts D updates over the run (it decides when a lazy penalty is
    due)."""
    keys = StepKeys.of(key)
    z, fake_labels = _latents_and_classes(gan, keys, labels, real.shape[0])
    fake, g_model_state = generate(gan, state.g_params, state.g_model_state, z, fake_labels)
    state = state.replace(g_model_state=g_model_state)
    return _d_update(gan, state, StepInputs(real, labels, fake, fake_labels), keys, d_index)


def _latents_and_classes(gan: Gan, keys: StepKeys, labels: jax.Array | None,
                         n: int) -> tuple[jax.Array, jax.Array | None]:
    """The latents and classes of one update's n fakes, drawn from its keys."""
    z = sample_latents(keys.z, n, gan.latent_dim)
    return z, fake_labels_for(gan, keys.fake_labels, labels, n)


def _fakes_for_g(gan: Gan, state: TrainState, keys: StepKeys, real: jax.Array,
                 labels: jax.Array | None) -> tuple[TrainState, StepInputs, Callable]:
    """G's fakes drawn from `keys`, with the pull-back of their forward pass to G's parameters
    (G's update runs it), and the state holding G's updated model state."""
    z, fake_labels = _latents_and_classes(gan, keys, labels, real.shape[0])
    fake, pull_back_to_g, g_model_state = jax.vjp(
        lambda g_params: generate(gan, g_params, state.g_model_state, z, fake_labels),
        state.g_params, has_aux=True)
    inputs = StepInputs(real, labels, fake, fake_labels)
    return state.replace(g_model_state=g_model_state), inputs, pull_back_to_g


def critic_batches(batch: Batch, n_critic: int) -> Batch:
    """(n * B, ...) -> (n, B, ...): row j * n + i of the batch is sample j of D update i.

    Splitting this way keeps every D update's batch evenly spread over the devices that hold
    the data-sharded batch, so the scan over D updates needs no communication.
    """
    def split(x):
        return x.reshape(x.shape[0] // n_critic, n_critic, *x.shape[1:]).swapaxes(0, 1)
    return {name: split(value) for name, value in batch.items()}


MIRROR = 0x6d697272  # the stream of data.mirror's flips, apart from the step's other keys
G_LATENTS = 0x676c6174  # the stream of G's own latents and classes under train.g_latents="fresh"


def reals_for_d(c: Config, reals: jax.Array, schedule: dict[str, jax.Array],
                 key: jax.Array) -> jax.Array:
    """The real batches (n_critic, B, H, W, C) as D sees them: flipped at random with
    data.mirror, and as the architecture's schedule shows them (ProGAN's fade between
    levels)."""
    flat = reals.reshape(-1, *reals.shape[2:])
    if c.data.mirror:
        flat = augment.random_flip(flat, key)
    if schedule:
        flat = shown_reals(c.model, flat, schedule)
    return flat.reshape(reals.shape)


def train_step_for(gan: Gan) -> Callable[[TrainState, Batch, jax.Array],
                                         tuple[TrainState, Metrics]]:
    """The pure train step of `gan`; see the module docstring. For a growing architecture
    (ProGAN) it is the step of the schedule's current level (`level_train_steps`), chosen by
    `lax.switch`: one function for every stage. On XLA:CPU code inside a conditional runs
    3-4x slower than outside it (ProGAN's G at 32x32, batch 64: 3.0 s against 0.8 s for its
    forward and backward), so the training loop calls the level's own step instead."""
    levels = level_train_steps(gan)
    if levels is None:
        return _train_step_for(gan)
    if len(run_batching(gan.config)) > 1:
        raise UserError("model.progan.batch_sizes changes the batch with the level, which one "
                        "function cannot take; call each level's own step "
                        "(gan_jax.train.level_train_steps, as the training loop does)")
    first, steps = min(levels), [step for _, step in sorted(levels.items())]

    def train_step(state: TrainState, batch: Batch, key: jax.Array):
        shown = state.step * batch["image"].shape[0]
        level = schedule_values(gan.config.model, shown)["level"]
        return jax.lax.switch(level - first, steps, state, batch, key)
    return train_step


def level_train_steps(gan: Gan) -> dict[int, Callable[[TrainState, Batch, jax.Array],
                                                      tuple[TrainState, Metrics]]] | None:
    """{level: the pure train step with the networks fixed at that level} for a growing
    architecture (each valid for the steps whose schedule is at that level: `level_of_step`);
    None for the others. Each level compiles once, its fading and stable stages alike (alpha
    is a value of the state)."""
    levels = networks_at_levels(gan.config.model, Networks(gan.generator, gan.discriminator))
    if levels is None:
        return None
    return {level: _train_step_for(gan._replace(generator=networks.generator,
                                                discriminator=networks.discriminator))
            for level, networks in levels.items()}


def level_of_step(config: Config, step: int, clock: Batching) -> int:
    """The schedule's level during train step `step` (0-based: the state's step before it) of
    a run with the clock `clock` (`run_batching`), computed on the host with NumPy: no device
    work between the loop's steps."""
    return int(schedule_values(config.model, images_before(clock, step), np)["level"])


def images_before_step(clock: Batching, step: jax.Array, batch: Batch) -> jax.Array:
    """Real images shown before the step with the state's `step`, inside the step. A constant
    clock counts the batch the step is given, so research code may call it with any batch."""
    if len(clock) == 1:
        return step * batch["image"].shape[0]
    return images_before(clock, step, jnp)


def _train_step_for(gan: Gan) -> Callable[[TrainState, Batch, jax.Array],
                                          tuple[TrainState, Metrics]]:
    c = gan.config
    n_critic = c.train.n_critic
    g_lazy, d_lazy = lazy_every(gan.phases, "g"), lazy_every(gan.phases, "d")
    clock = run_batching(c)

    def train_step(state: TrainState, batch: Batch, key: jax.Array):
        step_keys = jax.random.split(jax.random.fold_in(key, state.step), n_critic + 1)
        batches = critic_batches(batch, n_critic)
        shown = images_before_step(clock, state.step, batch)
        schedule = schedule_values(c.model, shown)
        state = enter_stage(gan, state, schedule)
        reals = reals_for_d(c, images_to_float(batches["image"]), schedule,
                             jax.random.fold_in(jax.random.fold_in(key, state.step), MIRROR))
        all_labels = batches["label"] if gan.num_classes else None
        labels_at = lambda i: all_labels[i] if all_labels is not None else None
        kimg = shown.astype(jnp.float32) / 1000.0
        lr_scale = learning_rate_scale(c.optim, c.train.total_kimg, kimg) * state.lr_multiplier
        state = state.replace(
            g_opt_state=with_learning_rate(
                state.g_opt_state, c.optim.g_lr * lr_scale * lazy_compensation(g_lazy)),
            d_opt_state=with_learning_rate(
                state.d_opt_state, c.optim.d_lr * lr_scale * lazy_compensation(d_lazy)))
        first_d_index = state.step * n_critic

        if n_critic > 1:
            def critic_update(state, xs):
                real, labels, key, i = xs
                state, _ = discriminator_step(gan, state, real, labels, key, first_d_index + i)
                return state, None
            state, _ = jax.lax.scan(critic_update, state, (
                reals[:-1], all_labels[:-1] if all_labels is not None else None,
                step_keys[:n_critic - 1], jnp.arange(n_critic - 1)))

        # The last D update shares its fakes with the G update (train.g_latents="shared"), or
        # runs like the others and G's update draws its own ("fresh").
        real, labels = reals[-1], labels_at(-1)
        last_d_index = first_d_index + n_critic - 1
        if c.train.g_latents == "shared":
            keys = StepKeys.of(step_keys[n_critic - 1])
            state, inputs, pull_back_to_g = _fakes_for_g(gan, state, keys, real, labels)
            state, d_metrics = _d_update(gan, state, inputs, keys, last_d_index)
        else:
            state, d_metrics = discriminator_step(gan, state, real, labels,
                                                  step_keys[n_critic - 1], last_d_index)
            keys = StepKeys.of(jax.random.fold_in(step_keys[n_critic], G_LATENTS))
            state, inputs, pull_back_to_g = _fakes_for_g(gan, state, keys, real, labels)

        state, g_metrics = _g_update(gan, state, inputs, pull_back_to_g, step_keys[n_critic],
                                     images_seen=shown, images_per_step=batch["image"].shape[0])
        metrics = {**d_metrics, **g_metrics,
                   "g_param_norm": optax.global_norm(state.g_params),
                   "d_param_norm": optax.global_norm(state.d_params),
                   "augment_p": augment_probability(c, state.slots), "lr_scale": lr_scale}
        # the stage (ProGAN's resolution and alpha), in the logs and the progress bar
        metrics |= {name: value.astype(jnp.float32) for name, value in schedule.items()}
        metrics["finite"] = jnp.all(jnp.isfinite(jnp.stack(
            [jnp.asarray(v, jnp.float32) for v in metrics.values()])))
        return state.replace(step=state.step + 1), metrics

    return train_step


def _g_update(gan: Gan, state: TrainState, inputs: StepInputs, pull_back_to_g: Callable,
              key: jax.Array, images_seen: jax.Array,
              images_per_step: int) -> tuple[TrainState, Metrics]:
    """The generator update against the updated D (G's main phase): terms of the fakes pulled
    back through their forward pass, plus terms of G's parameters; then its lazy phase when
    one is due, and the slots that follow G's update (gan_jax.slots: the EMA, the historical
    averages)."""
    c = gan.config
    fake_key, real_key = jax.random.split(key)
    view_keys = ViewKeys(real_key, fake_key)
    phase = _main_phase(gan, "g")
    of_fakes = tuple(t for t in phase.terms if not t.of_params)
    of_params = tuple(t for t in phase.terms if t.of_params)

    def objective(fake_images):
        view = View(gan, state, state.g_params, state.d_params,
                    inputs._replace(fake=fake_images), view_keys)
        loss, aux = _weighted_sum(of_fakes, view)
        return loss, (aux, view.d_model_state, view.kept)

    def objective_of_params(g_params, phase_terms, state):
        view = View(gan, state, g_params, state.d_params, inputs, view_keys)
        loss, aux = _weighted_sum(phase_terms, view)
        return loss, (aux, view.kept)

    (loss, (aux, d_model_state, kept)), d_fake = jax.value_and_grad(
        objective, has_aux=True)(inputs.fake)
    (grads,) = pull_back_to_g(d_fake)
    if of_params:  # differentiated directly, outside the fakes' pull-back
        (params_loss, (params_aux, params_kept)), params_grads = jax.value_and_grad(
            objective_of_params, has_aux=True)(state.g_params, of_params, state)
        grads = jax.tree.map(jnp.add, grads, params_grads)
        loss, aux, kept = loss + params_loss, aux | params_aux, kept | params_kept
    g_params, g_opt_state = _apply_gradients(gan.g_tx, grads, state.g_opt_state,
                                             state.g_params, None)
    state = _with_slots(state.replace(g_params=g_params, g_opt_state=g_opt_state,
                                      d_model_state=d_model_state), **kept)
    metrics = {"g_loss": loss, **aux, "g_grad_norm": optax.global_norm(grads)}

    lazy = _lazy_phase(gan, "g")
    if lazy is not None:  # terms of G's parameters only (phases_for checks it)
        def regularize(state):
            def lazy_objective(g_params):
                loss, extras = objective_of_params(g_params, lazy.terms, state)
                return lazy.every * loss, extras
            return _lazy_step(gan.g_tx, lazy_objective, state, "g", None)
        state, lazy_metrics = _lazy_update(lazy, regularize, state, state.step)
        metrics |= lazy_metrics
    return state.replace(slots=updated_slots(state.slots, "g", AfterUpdate(
        c, state.step, state.g_params, state.d_params, images_seen=images_seen,
        images_per_step=images_per_step))), metrics

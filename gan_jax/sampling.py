"""Sampling from a generator: latents and classes, the weights to sample with, and images.

    state = for_sampling(gan, state)  # the eval section's weights (EMA or trained), statistics
    z = sample_latents(jax.random.key(0), 64, gan.latent_dim)
    images = generate_uint8(gan, state, z)  # uint8, balanced classes for a conditional G

The train step draws its fakes' latents and classes here too, so that a sample grid, an
evaluation and training draw from the same distributions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp

from gan_jax.config import EvalConfig
from gan_jax.errors import UserError

if TYPE_CHECKING:  # the train module imports this one
    from gan_jax.train import Gan, TrainState


def sample_latents(key: jax.Array, n: int, latent_dim: int,
                   truncation: float | None = None) -> jax.Array:
    """z ~ N(0, I); with `truncation` t, the normal truncated to [-t, t], every coordinate
    outside it resampled (BigGAN's truncation trick: fidelity for variety at small t)."""
    if truncation is None:
        return jax.random.normal(key, (n, latent_dim))
    if truncation <= 0:
        raise UserError(f"truncation={truncation} must be positive (or None for none)")
    return jax.random.truncated_normal(key, -truncation, truncation, (n, latent_dim))


def sample_labels(key: jax.Array, n: int, num_classes: int) -> jax.Array | None:
    """Uniform class labels for fakes; None for an unconditional GAN."""
    return jax.random.randint(key, (n,), 0, num_classes) if num_classes else None


def balanced_labels(n: int, num_classes: int) -> jax.Array | None:
    """0, 1, ..., K-1, 0, 1, ...: equal classes for sample grids and metrics."""
    return jnp.arange(n) % num_classes if num_classes else None


def sampling_params(state: TrainState) -> Any:
    """The generator weights to sample and evaluate with: the EMA when there is one."""
    return state.slots.get("ema", state.g_params)


def without_ema(state: TrainState) -> TrainState:
    """`state` without its EMA of G, so that `sampling_params` gives the trained weights."""
    return state.replace(slots={k: v for k, v in state.slots.items() if k != "ema"})


def standing_statistics(gan: Gan, state: TrainState, key: jax.Array, batches: int,
                        truncation: float | None = None) -> TrainState:
    """`state` with G's BatchNorm statistics recomputed for the weights it samples with
    (BigGAN's standing statistics; BigGAN-PyTorch's accumulate_standing_stats): each layer's
    mean and variance averaged over `batches` training-mode batches of train.batch_size fresh
    latents (truncated at `truncation`, as the sampled ones) and uniform classes. The running
    averages of training lag the weights, and the EMA's weights never produced them at all.

    Every BatchNorm of G runs with model.bn_momentum m, so one training call from zero
    statistics stores (1 - m) times the batch's own; dividing by 1 - m gives them back.
    Spectral norm's vectors (in the same collection) and everything else are left as they
    were, so the training state itself is unchanged; this returns a new one. The training-mode
    calls normalise G's weights after one more power iteration, as BigGAN-PyTorch's do; once
    training has converged the iteration, that is the normalisation inference uses.
    """
    momentum, model_state = gan.config.model.bn_momentum, state.g_model_state
    is_moment = lambda path: jax.tree_util.keystr(path[-1:]) in ("['mean']", "['var']")  # noqa
    if not any(is_moment(path) for path, _ in jax.tree_util.tree_leaves_with_path(model_state)):
        return state  # a generator without BatchNorm
    if momentum >= 1.0:
        raise UserError("eval.standing_stats needs model.bn_momentum < 1: with 1 the "
                        "statistics never take a batch's values")
    zeros = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if is_moment(path) else x, model_state)
    n, params = gan.config.train.batch_size, sampling_params(state)

    def batch_moments(index):
        z_key, label_key = jax.random.split(jax.random.fold_in(key, index))
        z = sample_latents(z_key, n, gan.latent_dim, truncation)
        labels = sample_labels(label_key, n, gan.num_classes)
        _, updated = gan.generator.apply({"params": params, **zeros}, z, labels, train=True,
                                         mutable=list(zeros))
        return jax.tree.map(lambda x: x / (1.0 - momentum), updated)

    total = jax.lax.fori_loop(0, batches, lambda i, acc: jax.tree.map(
        jnp.add, acc, batch_moments(i)), jax.tree.map(jnp.zeros_like, zeros))
    standing = jax.tree_util.tree_map_with_path(
        lambda path, mean, kept: mean / batches if is_moment(path) else kept, total,
        model_state)
    return state.replace(g_model_state=standing)


def sampling_state_for(gan: Gan, config: EvalConfig | None = None
                       ) -> Callable[[TrainState], TrainState]:
    """What evaluation and sample grids turn a train state into before generating (pure,
    jit-able), for `config` (default: the run's eval section): without its EMA with
    eval.generator=trained; then, with eval.standing_stats batches, `standing_statistics`
    from a fixed key of eval.seed (the same statistics for the same weights, at every call)."""
    config = gan.config.eval if config is None else config
    weights = without_ema if config.generator == "trained" else lambda state: state
    if not config.standing_stats:
        return weights
    key = lambda: jax.random.fold_in(jax.random.key(config.seed), 1)  # noqa: E731
    return lambda state: standing_statistics(gan, weights(state), key(), config.standing_stats,
                                             config.truncation)


def for_sampling(gan: Gan, state: TrainState, config: EvalConfig | None = None) -> TrainState:
    """`sampling_state_for(gan, config)` applied once, compiled when it computes standing
    statistics (else it only picks the weights)."""
    config = gan.config.eval if config is None else config
    prepare = sampling_state_for(gan, config)
    return jax.jit(prepare)(state) if config.standing_stats else prepare(state)


def generate_images(gan: Gan, state: TrainState, z: jax.Array,
                    labels: jax.Array | None = None) -> jax.Array:
    """Images in [-1, 1] from latents, in inference mode, with the EMA generator when there is
    one; a conditional GAN gets balanced classes by default.

    The EMA weights run with the training generator's BatchNorm running statistics, as
    StyleGAN2-ADA and StudioGAN copy the buffers, unless the state's statistics were replaced
    by `standing_statistics` first (eval.standing_stats: evaluation and sample grids do).
    """
    if labels is None:
        labels = balanced_labels(len(z), gan.num_classes)
    images = gan.generator.apply({"params": sampling_params(state), **state.g_model_state}, z,
                                 labels, train=False)
    return images.astype(jnp.float32)


def generate_uint8(gan: Gan, state: TrainState, z: jax.Array,
                   labels: jax.Array | None = None) -> jax.Array:
    """`generate_images` rounded to uint8 exactly as `gan_jax.sample.to_uint8` (and so saved
    PNGs) does: metrics and GAN-made datasets see what a viewer of the samples sees."""
    images = generate_images(gan, state, z, labels)
    return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)

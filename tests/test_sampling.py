"""Sampling-time tricks: BigGAN's truncation trick and standing statistics."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gan_jax.errors import UserError
from gan_jax.evaluate import generated_features
from gan_jax.sampling import (generate_uint8, sample_labels, sample_latents, sampling_params,
                              sampling_state_for, standing_statistics)
from gan_jax.train import build_gan, init_state
from tests.helpers import ProjectedPixels, leaves, tiny_config


def test_truncated_latents_are_the_normal_cut_at_t_and_resampled():
    z = np.asarray(sample_latents(jax.random.key(0), 4000, 16, truncation=0.5)).ravel()
    assert np.abs(z).max() <= 0.5 and np.abs(z).max() > 0.49
    # Resampled, not clipped: no mass piles up at the bounds; the law is scipy's truncnorm.
    assert np.mean(np.abs(z) > 0.499) < 0.01
    assert stats.kstest(z, stats.truncnorm(-0.5, 0.5).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(sample_latents(jax.random.key(1), 8, 4),
                                  jax.random.normal(jax.random.key(1), (8, 4)))


# Every architecture with BatchNorm in G (BigGAN's conditional ones included); the InfoGAN and
# ResNet cases compile slowly and add no kind of layer, so they are in the slow suite.
ARCHS = {"dcgan": {}, "spectral_dcgan": {"model.spectral_norm": "g_and_d"},
         "biggan": {"model.arch": "biggan", "model.resolution": 32, "model.channels": 3,
                    "model.g_width": 4, "model.d_width": 4, "model.conditioning": "projection"},
         "infogan": {"model.arch": "infogan", "model.g_width": 4, "model.d_width": 4},
         "resnet": {"model.arch": "resnet", "model.resolution": 32, "model.channels": 3}}
SLOW_ARCHS = ("infogan", "resnet")


def _converged(gan, state, calls: int = 100):
    """G's model state after `calls` training-mode calls: spectral norm's power iteration has
    converged, as after training, so a training-mode call normalises as inference does."""
    z = jnp.zeros((2, gan.latent_dim))
    labels = sample_labels(jax.random.key(0), 2, gan.num_classes)

    def call(_, model_state):
        _, updated = gan.generator.apply({"params": state.g_params, **model_state}, z, labels,
                                         train=True, mutable=["batch_stats"])
        return updated

    return jax.jit(lambda m: jax.lax.fori_loop(0, calls, call, m))(state.g_model_state)


@pytest.mark.parametrize("arch", [pytest.param(a, marks=[pytest.mark.slow] if a in SLOW_ARCHS
                                               else []) for a in ARCHS])
def test_standing_statistics_of_one_batch_are_that_batchs_own(arch):
    """Inference with the standing statistics of one batch normalises that batch exactly as a
    training-mode call does: every BatchNorm of G got the batch's mean and variance back."""
    overrides = {"model.latent_dim": 16, "optim.ema_kimg": 10.0, **ARCHS[arch]}
    gan = build_gan(tiny_config(**{k.replace(".", "__"): v for k, v in overrides.items()}))
    state = init_state(gan, jax.random.key(0))
    if gan.config.model.spectral_norm != "none":
        state = state.replace(g_model_state=_converged(gan, state))
    # Training-like statistics and an EMA that differs from G, so neither can stand in.
    moved = lambda path, x: x if jax.tree_util.keystr(path).endswith("/u']") else x + 0.3  # noqa
    state = state.replace(
        g_model_state=jax.tree_util.tree_map_with_path(moved, state.g_model_state),
        slots={"ema": jax.tree.map(lambda x: x * 1.1, state.g_params)})
    key = jax.random.key(5)
    standing = jax.jit(lambda s: standing_statistics(gan, s, key, 1))(state)

    z_key, label_key = jax.random.split(jax.random.fold_in(key, 0))
    n = gan.config.train.batch_size
    z, labels = sample_latents(z_key, n, gan.latent_dim), sample_labels(label_key, n,
                                                                        gan.num_classes)
    apply = jax.jit(lambda model_state, train: gan.generator.apply(
        {"params": sampling_params(state), **model_state}, z, labels, train=train,
        mutable=["batch_stats"])[0], static_argnums=1)
    trained = apply(state.g_model_state, True)
    inferred = apply(standing.g_model_state, False)
    np.testing.assert_allclose(inferred, trained, atol=2e-5)
    stale = apply(state.g_model_state, False)
    assert np.max(np.abs(stale - trained)) > 1e-2  # the old statistics do not do this
    # Nothing else moved: parameters, EMA, spectral norm's vectors in the same collection.
    for old, new in zip(leaves(state.replace(g_model_state={})),
                        leaves(standing.replace(g_model_state={}))):
        np.testing.assert_array_equal(old, new)
    paths = lambda s: {jax.tree_util.keystr(p): np.asarray(x) for p, x in  # noqa: E731
                       jax.tree_util.tree_leaves_with_path(s.g_model_state)}
    for path, value in paths(state).items():
        if path.endswith("/u']"):
            np.testing.assert_array_equal(paths(standing)[path], value)


def _batch_moments(gan, params, model_state, z, labels) -> dict[str, tuple]:
    """Each BatchNorm's input mean and (biased) variance over batch and space, in float64,
    read off the inputs themselves (flax's method interception), by module path."""
    moments = {}

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
            x = np.asarray(args[0], np.float64).reshape(-1, args[0].shape[-1])
            moments["/".join(context.module.path)] = (x.mean(0), x.var(0))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        gan.generator.apply({"params": params, **model_state}, z, labels, train=True,
                            mutable=["batch_stats"])
    return moments


def test_standing_statistics_are_the_mean_of_each_batchs_moments_and_off_by_default():
    gan = build_gan(tiny_config())
    state = init_state(gan, jax.random.key(0))
    assert sampling_state_for(gan)(state) is state  # eval.standing_stats = 0
    key, n = jax.random.key(3), gan.config.train.batch_size
    standing = jax.jit(lambda s: standing_statistics(gan, s, key, 2))(state).g_model_state
    per_batch = []
    for index in range(2):  # batch i draws from fold_in(key, i)
        z_key, label_key = jax.random.split(jax.random.fold_in(key, index))
        per_batch.append(_batch_moments(gan, state.g_params, state.g_model_state,
                                        sample_latents(z_key, n, gan.latent_dim),
                                        sample_labels(label_key, n, gan.num_classes)))
    means = [p for p, _ in jax.tree_util.tree_leaves_with_path(standing)
             if jax.tree_util.keystr(p).endswith("['mean']")]
    assert len(per_batch[0]) == len(means) >= 2  # every BatchNorm of the generator
    for path, ((mean0, var0), (mean1, var1)) in ((p, (per_batch[0][p], per_batch[1][p]))
                                                 for p in per_batch[0]):
        stats_of = standing
        for part in path.split("/"):
            stats_of = stats_of[part] if part in stats_of else stats_of["batch_stats"][part]
        np.testing.assert_allclose(stats_of["mean"], (mean0 + mean1) / 2, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(stats_of["var"], (var0 + var1) / 2, rtol=1e-4, atol=1e-6)


def test_standing_statistics_need_a_momentum_below_one():
    gan = build_gan(tiny_config(model__bn_momentum=1.0))
    with pytest.raises(UserError, match="needs model.bn_momentum < 1"):
        standing_statistics(gan, init_state(gan, jax.random.key(0)), jax.random.key(1), 2)


def test_evaluation_samples_truncated_latents_with_standing_statistics():
    gan = build_gan(tiny_config(eval__truncation=0.7, eval__standing_stats=2,
                                eval__batch_size=6, eval__seed=4))
    state = init_state(gan, jax.random.key(0))
    state = state.replace(g_model_state=jax.tree.map(lambda x: x + 0.5, state.g_model_state))
    extractor = ProjectedPixels()
    features = generated_features(gan, state, 10, extractor, gan.config.eval)
    standing = jax.jit(sampling_state_for(gan))(state)
    z = sample_latents(jax.random.key(4), 12, gan.latent_dim, truncation=0.7)
    expected = np.asarray(jax.jit(lambda s, z: generate_uint8(gan, s, z))(standing, z))
    np.testing.assert_allclose(features, extractor.features_of(expected[:10]), rtol=1e-6,
                               atol=1e-3)  # one pixel 1 off changes a feature by ~1
    plain = generated_features(gan, state, 10, extractor,
                               dataclasses.replace(gan.config.eval, standing_stats=0))
    assert np.mean(plain != features) > 0.1


def test_evaluation_with_the_trained_generator_ignores_the_ema():
    """eval.generator=trained samples G's trained weights (with standing statistics, computed
    for them); the default, the EMA."""
    gan = build_gan(tiny_config(optim__ema_kimg=10.0, eval__batch_size=5))
    state = init_state(gan, jax.random.key(0))
    state = state.replace(slots={**state.slots,
                                 "ema": jax.tree.map(lambda x: x * 1.3, state.g_params)})
    z = sample_latents(jax.random.key(gan.config.eval.seed), 5, gan.latent_dim)

    def images_of(params, model_state):
        return np.asarray(jax.jit(lambda p, m: generate_uint8(
            gan, state.replace(g_params=p, g_model_state=m, slots={}), z))(params,
                                                                         model_state))
    extractor = ProjectedPixels()
    trained = dataclasses.replace(gan.config.eval, generator="trained")
    for config, params in ((trained, state.g_params), (gan.config.eval, state.slots["ema"])):
        features = generated_features(gan, state, 5, extractor, config)
        expected = extractor.features_of(images_of(params, state.g_model_state))
        np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-3)
    # With standing statistics: those of the trained weights, not of the EMA's.
    standing = dataclasses.replace(trained, standing_stats=2)
    features = generated_features(gan, state, 5, extractor, standing)
    key = jax.random.fold_in(jax.random.key(gan.config.eval.seed), 1)
    trained_stats = jax.jit(lambda s: standing_statistics(gan, s, key, 2))(
        state.replace(slots={})).g_model_state
    expected = extractor.features_of(images_of(state.g_params, trained_stats))
    np.testing.assert_allclose(features, expected, rtol=1e-6, atol=1e-3)


"""Loss terms against float64 NumPy versions of their papers' formulas, and their wiring."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import terms
from gan_jax.slots import initial_slots
from gan_jax.train import build_gan, init_state, train_step_for
from tests.helpers import random_batch, tiny_config


def _init(gan):
    return jax.jit(lambda key: init_state(gan, key))(jax.random.key(0))  # one compilation


def _small(**overrides):
    """A DCGAN at 8x8 without BatchNorm in D, batch 8: compiles in a few seconds."""
    return tiny_config(**{"model__resolution": 8, "model__d_norm": "none",
                          "train__batch_size": 8, **overrides})


def _view(real_logits, fake_logits, slots, **reg):
    """A stand-in for terms.View with fixed D outputs: what a term reads, nothing else."""
    output = lambda logits: types.SimpleNamespace(logits=jnp.asarray(logits, jnp.float32))
    view = types.SimpleNamespace(
        real=lambda: output(real_logits), fake=lambda: output(fake_logits),
        state=types.SimpleNamespace(slots=slots), kept={},
        config=types.SimpleNamespace(reg=types.SimpleNamespace(**reg)))
    view.keep = view.kept.__setitem__
    return view


def _lecam_reference(real, fake, anchor_real, anchor_fake):
    relu = lambda x: np.maximum(x, 0.0)
    return (np.mean(relu(real - anchor_fake) ** 2) + np.mean(relu(anchor_real - fake) ** 2))


def test_lecam_matches_its_formula_with_moving_anchors():
    rng = np.random.default_rng(0)
    slots = initial_slots(tiny_config(reg__lecam_weight=0.3), None, None)
    anchors = None
    for _ in range(3):
        real, fake = rng.normal(0.5, 1.0, 16), rng.normal(-0.5, 1.0, 16)
        view = _view(real, fake, slots, lecam_decay=0.9)
        value, aux = terms.d_lecam(view)
        # Moving averages of the batch means, this batch included, from the first batch's.
        means = np.array([real.mean(), fake.mean()])
        anchors = means if anchors is None else 0.9 * anchors + 0.1 * means
        np.testing.assert_allclose(float(value), _lecam_reference(real, fake, *anchors),
                                   rtol=1e-5)
        np.testing.assert_allclose([float(aux["lecam_anchor_real"]),
                                    float(aux["lecam_anchor_fake"])], anchors, rtol=1e-5)
        slots = {"lecam": view.kept["lecam"]}
    assert int(slots["lecam"]["updates"]) == 3


def test_lecam_in_the_step_keeps_its_anchors_and_adds_its_weighted_value_to_d_loss():
    config = _small(reg__lecam_weight=0.3, reg__lecam_decay=0.99)
    gan = build_gan(config)
    state = _init(gan)
    assert sorted(state.slots) == ["lecam"]
    plain = build_gan(_small())
    assert "lecam" not in jax.eval_shape(lambda key: init_state(plain, key),
                                         jax.random.key(0)).slots
    step = jax.jit(train_step_for(gan))
    means = []
    for i in range(2):
        state, metrics = step(state, random_batch(config, seed=i), jax.random.key(1))
        metrics = jax.device_get(metrics)
        means.append(metrics["d_real_logit"])
        assert metrics["d_loss"] == pytest.approx(
            metrics["d_loss_real"] + metrics["d_loss_fake"] + 0.3 * metrics["lecam"],
            rel=1e-5)
    lecam = jax.device_get(state.slots["lecam"])
    assert int(lecam["updates"]) == 2
    assert float(lecam["real"]) == pytest.approx(0.99 * means[0] + 0.01 * means[1], rel=1e-5)


def _g_view(fake_logits, step, loss="non_saturating", **reg):
    config = tiny_config(train__loss=loss, train__batch_size=len(fake_logits),
                         **{f"reg__{k}": v for k, v in reg.items()})
    view = _view(fake_logits, fake_logits, {})
    view.config, view.gan = config, build_gan(config)
    view.state.step = jnp.int32(step)
    return view


@pytest.mark.parametrize("loss, per_sample", [
    ("non_saturating", lambda x: np.log1p(np.exp(-x))),
    ("least_squares", lambda x: 0.5 * (x - 1) ** 2),
    ("hinge", lambda x: -x)])
def test_top_k_takes_the_generator_loss_of_the_fakes_d_scores_highest(loss, per_sample):
    logits = np.random.default_rng(1).normal(size=16)
    # 16 images per step, 0.16 kimg epochs: after 25 steps, 2 complete epochs, k = 16 * 0.5 ** 2.
    view = _g_view(logits, 25, loss, top_k_min=0.1, top_k_decay=0.5, top_k_epoch_kimg=0.16)
    value, aux = terms.g_adversarial_top_k(view)
    k = int(np.floor(16 * 0.5 ** 2))
    assert int(aux["top_k"]) == k == 4
    best = np.sort(logits)[::-1][:k]
    np.testing.assert_allclose(float(value), np.mean(per_sample(best)), rtol=1e-5)
    # The gradient reaches the chosen fakes only.
    grad = jax.grad(lambda x: terms.g_adversarial_top_k(
        _g_view(x, 25, loss, top_k_min=0.1, top_k_decay=0.5, top_k_epoch_kimg=0.16))[0])(
        jnp.asarray(logits, jnp.float32))
    assert set(np.flatnonzero(np.asarray(grad))) <= set(np.argsort(logits)[::-1][:k])


def test_top_k_starts_at_the_batch_decays_once_per_epoch_and_stops_at_its_minimum():
    config = tiny_config(reg__top_k_min=0.5, train__batch_size=16)
    assert int(terms.top_k_count(config, jnp.int32(0), 16)) == 16
    # The whole first epoch (60 kimg by default) at the batch, then 0.99 of it.
    assert int(terms.top_k_count(config, jnp.int32(59_999), 16)) == 16
    assert int(terms.top_k_count(config, jnp.int32(60_000), 16)) == int(16 * 0.99) == 15
    assert int(terms.top_k_count(config, jnp.int32(64 * 10 ** 6), 16)) == 8


def test_a_relativistic_generator_loss_sees_d_on_the_real_batch():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=8), rng.normal(size=8)
    view = _g_view(fake, 0, "relativistic_pairing")
    view.real = _view(real, fake, {}).real  # D's real logits in G's update
    value, _ = terms.g_adversarial(view)
    np.testing.assert_allclose(float(value), np.mean(np.logaddexp(0.0, real - fake)), rtol=1e-5)


def test_rpgan_with_r1_r2_steps_and_adds_both_penalties_to_d_loss():
    config = _small(train__loss="relativistic_pairing", reg__penalty="r1_r2",
                    reg__penalty_weight=0.5, model__conditioning="projection")
    gan = build_gan(config)
    state, metrics = jax.jit(train_step_for(gan))(
        _init(gan), random_batch(config), jax.random.key(1))
    metrics = jax.device_get(metrics)
    assert metrics["finite"] and metrics["penalty"] > 0
    assert metrics["penalty_grad_norm"] > 0 and metrics["penalty_fake_grad_norm"] > 0
    adversarial = metrics["d_loss"] - 0.5 * metrics["penalty"]
    # softplus(-gap) >= log 2 - gap / 2 ... and equals log 2 at a zero gap: bounded below.
    assert adversarial > 0 and np.isfinite(metrics["relativistic_gap"])


def test_consistency_transform_is_a_coin_flip_mirror_then_a_translation():
    from gan_jax import augment
    images = jnp.asarray(np.random.default_rng(3).normal(size=(8, 16, 16, 1)), jnp.float32)
    key = jax.random.key(4)
    flip_key, shift_key = jax.random.split(key)
    mirrored = np.asarray(jax.random.uniform(flip_key, (8,)) < 0.5)
    assert 0 < mirrored.sum() < 8  # both cases occur with this key
    expected_flip = np.where(mirrored[:, None, None, None], np.asarray(images)[:, :, ::-1],
                             np.asarray(images))
    shifts = augment.translation_shifts(shift_key, 8, 16, 16)
    assert int(jnp.max(jnp.abs(shifts))) <= 2  # 1/8 of 16
    np.testing.assert_array_equal(
        np.asarray(augment.consistency_transform(images, key)),
        np.asarray(augment.translate(jnp.asarray(expected_flip), shifts)))


def test_bcr_is_the_mean_squared_logit_change_under_the_transform():
    from gan_jax import augment
    rng = np.random.default_rng(5)
    real, fake = (jnp.asarray(rng.normal(size=(8, 8, 8, 1)), jnp.float32) for _ in range(2))
    weights = rng.normal(size=(8, 8, 1))
    critic = lambda x: np.sum(np.asarray(x, np.float64) * weights, axis=(1, 2, 3))
    output = lambda images: types.SimpleNamespace(logits=jnp.asarray(critic(images)))
    keys = terms.ViewKeys(jax.random.key(6), jax.random.key(7))
    view = types.SimpleNamespace(
        inputs=terms.StepInputs(real, None, fake, None), keys=keys,
        real=lambda: output(real), fake=lambda: output(fake),
        discriminate=lambda which, images, labels, key: output(images))
    for side, images, key, term in (("real", real, keys.real, terms.d_consistency_real),
                                    ("fake", fake, keys.fake, terms.d_consistency_fake)):
        value, aux = term(view)
        transform_key = jax.random.split(jax.random.fold_in(key, 1))[0]
        moved = critic(augment.consistency_transform(images, transform_key))
        expected = np.mean((critic(images) - moved) ** 2)
        assert expected > 0
        np.testing.assert_allclose(float(value), expected, rtol=1e-5)
        assert float(aux[f"consistency_{side}"]) == float(value)


def test_bcr_in_the_step_adds_both_weighted_sides_to_d_loss():
    config = _small(reg__consistency_real=10.0, reg__consistency_fake=5.0)
    gan = build_gan(config)
    _, metrics = jax.jit(train_step_for(gan))(_init(gan),
                                              random_batch(config), jax.random.key(1))
    m = jax.device_get(metrics)
    assert m["consistency_real"] > 0 and m["consistency_fake"] > 0
    assert m["d_loss"] == pytest.approx(m["d_loss_real"] + m["d_loss_fake"]
                                        + 10 * m["consistency_real"]
                                        + 5 * m["consistency_fake"], rel=1e-5)


def test_orthogonal_regularisation_has_biggan_pytorchs_gradient():
    """BigGAN-PyTorch's utils.ortho adds 2 (W W^T * (1 - I)) W to each weight's gradient, W the
    weight as (out, in*kh*kw); the term's autodiff gradient must be that, in float64 NumPy."""
    rng = np.random.default_rng(8)
    params = {"Dense_0": {"kernel": rng.normal(size=(6, 5)), "bias": rng.normal(size=5)},
              "Conv_0": {"kernel": rng.normal(size=(3, 3, 4, 7))},
              "GeneratorNorm_0": {"embedding": rng.normal(size=(10, 7))}}
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    grads = jax.grad(terms.orthogonality)(params)

    def ortho_grad(kernel):
        w = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1]).T  # (out, in*k)
        off_diagonal = (w @ w.T) * (1 - np.eye(len(w)))
        return (2 * off_diagonal @ w).T.reshape(kernel.shape)
    for name in ("Dense_0", "Conv_0"):
        np.testing.assert_allclose(np.asarray(grads[name]["kernel"]),
                                   ortho_grad(params[name]["kernel"]), rtol=1e-4, atol=1e-4)
    assert not np.any(np.asarray(grads["Dense_0"]["bias"]))
    assert not np.any(np.asarray(grads["GeneratorNorm_0"]["embedding"]))
    # Orthonormal rows cost nothing, whatever their number.
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert float(terms.orthogonality({"k": jnp.asarray(q[:, :5] * 3.0)})) == pytest.approx(
        0.0, abs=1e-4)


def test_orthogonal_regularisation_is_a_weighted_term_of_gs_parameters_in_the_step():
    config = _small(reg__g_orthogonal=1e-4)
    gan = build_gan(config)
    [main] = [p for p in gan.phases if p.network == "g"]
    [term] = [t for t in main.terms if t.name == "orthogonal"]
    assert term.weight == 1e-4 and term.of_params and term.every == 1
    state = _init(gan)
    after, metrics = jax.jit(train_step_for(gan))(state, random_batch(config),
                                                  jax.random.key(1))
    assert float(metrics["g_orthogonality"]) == pytest.approx(
        float(terms.orthogonality(state.g_params)), rel=1e-5)

"""Adversarial losses against a float64 NumPy transcription of the formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.losses import LOSSES


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)  # float64 log(sigmoid(x)), stable


REAL = np.array([-3.0, -0.5, 0.0, 1.5, 4.0])
FAKE = np.array([-2.0, 0.3, 2.5, -0.1, 0.7])


def test_discriminator_loss_is_binary_cross_entropy():
    expected = -np.mean(_log_sigmoid(REAL)) - np.mean(_log_sigmoid(-FAKE))
    for name in ("minimax", "non_saturating"):
        loss, aux = LOSSES[name].d(jnp.asarray(REAL), jnp.asarray(FAKE))
        np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
        np.testing.assert_allclose(float(aux["d_loss_real"] + aux["d_loss_fake"]), expected,
                                   rtol=1e-6)


def test_minimax_generator_minimises_log_one_minus_d():
    expected = np.mean(np.log1p(-1.0 / (1.0 + np.exp(-FAKE))))  # mean log(1 - D(G(z)))
    loss, _ = LOSSES["minimax"].g(jnp.asarray(FAKE))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_non_saturating_generator_minimises_minus_log_d():
    expected = -np.mean(_log_sigmoid(FAKE))
    loss, _ = LOSSES["non_saturating"].g(jnp.asarray(FAKE))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def test_minimax_saturates_where_non_saturating_does_not():
    # When D confidently rejects fakes (very negative logit), the minimax generator gradient
    # vanishes while the non-saturating one stays near -1: the reason the latter exists.
    confident_reject = jnp.array([-10.0])
    mm = jax.grad(lambda x: LOSSES["minimax"].g(x)[0])(confident_reject)
    ns = jax.grad(lambda x: LOSSES["non_saturating"].g(x)[0])(confident_reject)
    assert abs(float(mm[0])) < 1e-4
    assert float(ns[0]) == pytest.approx(-1.0, abs=1e-4)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_stay_finite_at_extreme_logits(name):
    extreme = jnp.array([-1e4, 1e4, 0.0])
    loss = LOSSES[name]
    g = (lambda fake: loss.g(fake, fake[::-1])) if loss.g_sees_real else loss.g
    d_loss, _ = loss.d(extreme, extreme[::-1])
    g_loss, _ = g(extreme)
    grads = jax.grad(lambda x: loss.d(x, x[::-1])[0] + g(x)[0])(extreme)
    assert np.isfinite(float(d_loss)) and np.isfinite(float(g_loss))
    assert np.all(np.isfinite(np.asarray(grads)))


def test_least_squares_losses_are_mao_et_al_with_targets_0_and_1():
    d_loss, aux = LOSSES["least_squares"].d(jnp.asarray(REAL), jnp.asarray(FAKE))
    expected_d = 0.5 * np.mean((REAL - 1.0) ** 2) + 0.5 * np.mean(FAKE ** 2)
    np.testing.assert_allclose(float(d_loss), expected_d, rtol=1e-6)
    np.testing.assert_allclose(float(aux["d_loss_fake"]), 0.5 * np.mean(FAKE ** 2), rtol=1e-6)
    g_loss, _ = LOSSES["least_squares"].g(jnp.asarray(FAKE))
    np.testing.assert_allclose(float(g_loss), 0.5 * np.mean((FAKE - 1.0) ** 2), rtol=1e-6)


def test_hinge_losses_penalise_only_inside_the_margin():
    d_loss, aux = LOSSES["hinge"].d(jnp.asarray(REAL), jnp.asarray(FAKE))
    expected_real = np.mean(np.maximum(0.0, 1.0 - REAL))
    expected_fake = np.mean(np.maximum(0.0, 1.0 + FAKE))
    np.testing.assert_allclose(float(d_loss), expected_real + expected_fake, rtol=1e-6)
    np.testing.assert_allclose(float(aux["d_loss_real"]), expected_real, rtol=1e-6)
    g_loss, _ = LOSSES["hinge"].g(jnp.asarray(FAKE))
    np.testing.assert_allclose(float(g_loss), -np.mean(FAKE), rtol=1e-6)
    # Reals beyond the margin (logit > 1) give D no gradient.
    grad = jax.grad(lambda r: LOSSES["hinge"].d(r, jnp.asarray(FAKE))[0])(jnp.asarray(REAL))
    np.testing.assert_array_equal(np.asarray(grad) == 0, REAL > 1)


def test_wasserstein_critic_and_generator():
    d_loss, aux = LOSSES["wasserstein"].d(jnp.asarray(REAL), jnp.asarray(FAKE))
    np.testing.assert_allclose(float(d_loss), FAKE.mean() - REAL.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(aux["wasserstein_estimate"]), REAL.mean() - FAKE.mean(),
                               rtol=1e-6)
    g_loss, _ = LOSSES["wasserstein"].g(jnp.asarray(FAKE))
    np.testing.assert_allclose(float(g_loss), -FAKE.mean(), rtol=1e-6)


@pytest.mark.parametrize("name", ["minimax", "non_saturating"])
def test_one_sided_label_smoothing_moves_only_the_real_target(name):
    from gan_jax.losses import make_loss
    s = 0.1
    loss, aux = make_loss(name, label_smoothing=s).d(jnp.asarray(REAL), jnp.asarray(FAKE))
    real_term = -np.mean((1 - s) * _log_sigmoid(REAL) + s * _log_sigmoid(-REAL))
    fake_term = -np.mean(_log_sigmoid(-FAKE))  # fake targets stay 0: "one-sided"
    np.testing.assert_allclose(float(aux["d_loss_real"]), real_term, rtol=1e-6)
    np.testing.assert_allclose(float(aux["d_loss_fake"]), fake_term, rtol=1e-6)
    np.testing.assert_allclose(float(loss), real_term + fake_term, rtol=1e-6)


def test_label_smoothing_is_refused_for_non_cross_entropy_losses():
    from gan_jax.losses import make_loss
    with pytest.raises(ValueError, match="hinge"):
        make_loss("hinge", label_smoothing=0.1)


def test_relativistic_pairing_compares_each_fake_with_its_real_sample():
    """RpGAN (Huang et al. 2024, eq. 2): D minimises E f(D(fake_i) - D(real_i)), G minimises
    E f(D(real_i) - D(fake_i)), f = softplus."""
    loss = LOSSES["relativistic_pairing"]
    d_value, aux = loss.d(jnp.asarray(REAL), jnp.asarray(FAKE))
    np.testing.assert_allclose(float(d_value), np.mean(np.logaddexp(0.0, FAKE - REAL)),
                               rtol=1e-6)
    np.testing.assert_allclose(float(aux["relativistic_gap"]), np.mean(REAL - FAKE), rtol=1e-6)
    g_value, _ = loss.g(jnp.asarray(FAKE), jnp.asarray(REAL))
    np.testing.assert_allclose(float(g_value), np.mean(np.logaddexp(0.0, REAL - FAKE)),
                               rtol=1e-6)
    assert loss.g_sees_real and not LOSSES["hinge"].g_sees_real
    # Pairing, not averaging: permuting the fakes changes the loss.
    shuffled, _ = loss.d(jnp.asarray(REAL), jnp.asarray(FAKE[::-1]))
    assert float(shuffled) != pytest.approx(float(d_value))

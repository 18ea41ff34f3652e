"""Gradient penalties against hand-computed values on critics whose gradients are known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.penalties import (dragan_penalty, gradient_penalty, interpolate, perturb,
                               r1_penalty)

RNG = np.random.default_rng(0)
REAL = jnp.asarray(RNG.normal(size=(6, 4, 4, 1)), jnp.float32)
FAKE = jnp.asarray(RNG.normal(size=(6, 4, 4, 1)), jnp.float32)
W = jnp.asarray(RNG.normal(size=(4, 4, 1)), jnp.float32)


def linear_critic(x):
    # D(x) = <w, x> + 3: the input gradient is w everywhere.
    return jnp.sum(x * W, axis=(1, 2, 3)) + 3.0


def quadratic_critic(x):
    # D(x) = ||x||^2 / 2: the input gradient at x is x itself.
    return 0.5 * jnp.sum(jnp.square(x), axis=(1, 2, 3))


def test_gradient_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared():
    norm = float(np.linalg.norm(np.asarray(W)))
    penalty, aux = gradient_penalty(linear_critic, REAL, FAKE, jax.random.key(1))
    assert float(penalty) == pytest.approx((norm - 1.0) ** 2, rel=1e-5)
    assert float(aux["grad_norm"]) == pytest.approx(norm, rel=1e-5)
    unit = lambda x: jnp.sum(x * W / norm, axis=(1, 2, 3))  # noqa: E731
    assert float(gradient_penalty(unit, REAL, FAKE, jax.random.key(1))[0]) < 1e-10


def test_gradient_penalty_is_evaluated_at_interpolates():
    key = jax.random.key(2)
    points = np.asarray(interpolate(REAL, FAKE, key), np.float64)
    # eps in [0, 1) per sample: every interpolate lies on its segment, with one eps per image.
    eps = (points - np.asarray(FAKE)) / (np.asarray(REAL) - np.asarray(FAKE))
    assert np.allclose(eps, eps[:, :1, :1, :1], atol=1e-4) and np.all((eps >= 0) & (eps < 1))
    norms = np.linalg.norm(points.reshape(6, -1), axis=1)
    expected = np.mean((norms - 1.0) ** 2)
    assert float(gradient_penalty(quadratic_critic, REAL, FAKE, key)[0]) == pytest.approx(
        expected, rel=1e-5)


def test_r1_is_the_mean_squared_gradient_norm_at_the_samples():
    penalty, _ = r1_penalty(quadratic_critic, REAL)
    expected = np.mean(np.sum(np.asarray(REAL, np.float64).reshape(6, -1) ** 2, axis=1))
    assert float(penalty) == pytest.approx(expected, rel=1e-5)
    linear, _ = r1_penalty(linear_critic, FAKE)  # R2 is R1 on fakes
    assert float(linear) == pytest.approx(float(jnp.sum(W ** 2)), rel=1e-5)


def test_r1_r2_is_half_the_sum_of_r1_on_reals_and_r2_on_fakes():
    from gan_jax.penalties import penalty, r1_r2_penalty
    value, aux = r1_r2_penalty(quadratic_critic, linear_critic, REAL, FAKE)
    r1 = np.mean(np.sum(np.asarray(REAL, np.float64).reshape(6, -1) ** 2, axis=1))
    r2 = float(np.sum(np.asarray(W, np.float64) ** 2))  # a linear critic's gradient is W
    assert float(value) == pytest.approx(0.5 * (r1 + r2), rel=1e-5)
    assert float(aux["fake_grad_norm"]) == pytest.approx(np.sqrt(r2), rel=1e-5)
    same, _ = penalty("r1_r2", quadratic_critic, REAL, FAKE, jax.random.key(0))
    expected_same = 0.5 * (r1 + np.mean(np.sum(np.asarray(FAKE, np.float64).reshape(6, -1) ** 2,
                                                axis=1)))
    assert float(same) == pytest.approx(expected_same, rel=1e-5)
    # A conditional D's fake side is its own critic (the fakes' labels), through `penalty` too.
    paired, _ = penalty("r1_r2", quadratic_critic, REAL, FAKE, jax.random.key(0),
                        fake_critic=linear_critic)
    assert float(paired) == pytest.approx(0.5 * (r1 + r2), rel=1e-5)


def test_dragan_perturbs_within_half_a_standard_deviation_and_penalises_there():
    key = jax.random.key(3)
    moved = np.asarray(perturb(REAL, key)) - np.asarray(REAL)
    assert np.all(moved >= 0) and np.all(moved < 0.5 * float(jnp.std(REAL)) + 1e-6)
    norm = float(np.linalg.norm(np.asarray(W)))
    penalty, _ = dragan_penalty(linear_critic, REAL, key)
    assert float(penalty) == pytest.approx((norm - 1.0) ** 2, rel=1e-5)


def test_penalties_are_differentiable_in_the_critic_parameters():
    def penalty_of(w):
        critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
        return gradient_penalty(critic, REAL, FAKE, jax.random.key(4))[0]
    grad = jax.grad(penalty_of)(W)
    norm = jnp.linalg.norm(W)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    np.testing.assert_allclose(np.asarray(grad), np.asarray(2 * (norm - 1) * W / norm),
                               rtol=1e-4, atol=1e-6)

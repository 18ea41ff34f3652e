"""Kernel Inception Distance against hand-worked values and a float64 NumPy transcription."""

import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.errors import UserError
from gan_jax.metrics.kid import KID, kernel_inception_distance


def _reference_kid(real, fake, num_subsets, subset_size, seed):
    """Plain float64 transcription of stylegan2-ada's KID loop, with the module's documented
    draws: per subset, m fake rows then m real rows from one default_rng(seed)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d = real.shape[1]
    m = min(subset_size, len(real), len(fake))
    rng = np.random.default_rng(seed)
    kids = []
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        kids.append(((a.sum() - np.trace(a)) / (m - 1) - 2 * b.sum() / m) / m)
    return np.mean(kids), np.std(kids)


def test_hand_worked_one_dimensional_sets():
    # d = 1, so k(u, v) = (u v + 1)^3. real = {0, 1}, fake = {1, 2}; m = 2 = both sizes, so
    # every subset is a whole set (in some order) and std is 0.
    #   K(real, real) off-diagonal: k(0, 1) = 1, twice           -> 2
    #   K(fake, fake) off-diagonal: k(1, 2) = 3^3 = 27, twice    -> 54
    #   K(fake, real): k(1,0)=1, k(1,1)=8, k(2,0)=1, k(2,1)=27    -> 37
    #   t = (2 + 54) / (m - 1) - 2 * 37 / m = 56 - 37 = 19; KID = t / m = 9.5
    # (= unbiased MMD^2: 2/2 + 54/2 - 2 * 37/4 = 1 + 27 - 18.5 = 9.5).
    result = kernel_inception_distance([[0.0], [1.0]], [[1.0], [2.0]], num_subsets=5)
    assert result == KID(mean=9.5, std=0.0, subset_size=2, num_subsets=5)


def test_hand_worked_two_dimensional_sets_can_be_negative():
    # d = 2, so k(u, v) = (u.v / 2 + 1)^3. real = {(0,0), (2,2)}, fake = {(2,0), (0,2)}.
    #   K(real, real) off-diagonal: (0 + 1)^3 = 1, twice         -> 2
    #   K(fake, fake) off-diagonal: (2,0).(0,2) = 0 -> 1, twice  -> 2
    #   K(fake, real): with (0,0) -> 1 (twice); with (2,2): u.v = 4 -> (2 + 1)^3 = 27 (twice)
    #                                                             -> 56
    #   t = (2 + 2) / 1 - 2 * 56 / 2 = -52; KID = -52 / 2 = -26: the unbiased estimate is not
    #   clipped at 0, and dividing u.v by d matters (without it, 27 would be 125).
    result = kernel_inception_distance(np.array([[0, 0], [2, 2]], np.float32),
                                       np.array([[2, 0], [0, 2]], np.float32), num_subsets=1)
    assert result == KID(mean=-26.0, std=0.0, subset_size=2, num_subsets=1)


@pytest.mark.parametrize("num_subsets, subset_size", [(30, 100), (4, 1000), (7, 149)])
def test_matches_float64_reference_on_shifted_gaussians(num_subsets, subset_size):
    rng = np.random.default_rng(42)
    real = rng.normal(0.0, 1.0, (200, 64)).astype(np.float32)
    fake = rng.normal(0.2, 1.2, (150, 64)).astype(np.float32)
    ref_mean, ref_std = _reference_kid(real, fake, num_subsets, subset_size, seed=3)
    got = kernel_inception_distance(real, fake, num_subsets=num_subsets,
                                    subset_size=subset_size, seed=3)
    assert got.subset_size == min(subset_size, 150) and got.num_subsets == num_subsets
    np.testing.assert_allclose(got.mean, ref_mean, rtol=1e-4)
    np.testing.assert_allclose(got.std, ref_std, rtol=1e-4)


def test_matches_float64_reference_when_distributions_match():
    # KID near 0 (here about -8e-5 against kernel values near 1.5) is where float32 sums would
    # cancel; the relative tolerance still holds (measured 7e-6).
    rng = np.random.default_rng(7)
    real = np.abs(rng.normal(0.5, 1.0, (300, 64))).astype(np.float32)  # non-negative, like
    fake = np.abs(rng.normal(0.5, 1.0, (250, 64))).astype(np.float32)  # Inception features
    ref_mean, ref_std = _reference_kid(real, fake, 20, 200, seed=0)
    got = kernel_inception_distance(real, fake, num_subsets=20, subset_size=200)
    assert abs(ref_mean) < 1e-3
    np.testing.assert_allclose(got.mean, ref_mean, rtol=1e-4)
    np.testing.assert_allclose(got.std, ref_std, rtol=1e-4)


def test_same_distribution_near_zero_shifted_distribution_positive():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 32))
    same = kernel_inception_distance(real, rng.normal(size=(400, 32)), num_subsets=50,
                                     subset_size=200)
    shifted = kernel_inception_distance(real, rng.normal(size=(400, 32)) + 0.3, num_subsets=50,
                                        subset_size=200)
    assert shifted.mean > 10 * shifted.std > 0
    assert abs(same.mean) < 0.01 * shifted.mean
    assert abs(same.mean) < same.std  # the subset estimates straddle 0


def test_deterministic_in_seed_and_accepts_jax_and_integer_arrays():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(60, 8)), rng.normal(size=(50, 8)) + 1
    a = kernel_inception_distance(real, fake, num_subsets=5, subset_size=20, seed=9)
    b = kernel_inception_distance(jnp.asarray(real), jnp.asarray(fake), num_subsets=5,
                                  subset_size=20, seed=9)
    c = kernel_inception_distance(real, fake, num_subsets=5, subset_size=20, seed=10)
    assert a == b and a.mean != c.mean
    ints = kernel_inception_distance(np.array([[0], [1]]), np.array([[1], [2]]), num_subsets=1)
    assert ints.mean == 9.5


def _good(n=10, d=4):
    return np.random.default_rng(0).normal(size=(n, d))


@pytest.mark.parametrize("real, fake, kwargs, needle", [
    (_good(1), _good(), {}, "at least 2"),
    (_good(), _good(1), {}, "at least 2"),
    (_good(d=4), _good(d=5), {}, "dimension"),
    (_good().reshape(10, 2, 2), _good(), {}, "2-D"),
    (_good()[:, 0], _good(), {}, "2-D"),
    (np.where(np.eye(10, 4) > 0, np.nan, _good()), _good(), {}, "NaN"),
    (_good(), np.where(np.eye(10, 4) > 0, np.inf, _good()), {}, "NaN"),
    (_good() * 1e39, _good(), {}, "float32"),  # finite in float64, inf in float32
    (np.array([["a", "b"], ["c", "d"]]), _good(d=2), {}, "dtype"),
    (_good(), _good(), {"num_subsets": 0}, "num_subsets"),
    (_good(), _good(), {"subset_size": 1}, "subset_size"),
])
def test_user_errors(real, fake, kwargs, needle):
    with pytest.raises(UserError, match=needle) as info:
        kernel_inception_distance(real, fake, **kwargs)
    assert "\n" not in str(info.value)

"""Precision/recall/density/coverage against hand-worked cases and float64 brute force."""

import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.errors import UserError
from gan_jax.metrics.prdc import PRDC, prdc


def _column(values):
    return np.asarray(values, np.float32)[:, None]


def _reference_prdc(real, fake, k):
    """The four definitions transcribed in float64 with full distance matrices."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)

    def kth_other(x):
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)  # a sample is not its own neighbour
        return np.sort(d, axis=1)[:, k - 1]

    radius_r, radius_f = kth_other(real), kth_other(fake)
    d = np.sqrt(((fake[:, None, :] - real[None, :, :]) ** 2).sum(-1))  # d[j, i] = |f_j - r_i|
    in_real_ball = d <= radius_r[None, :]
    return (np.mean(in_real_ball.any(axis=1)),
            np.mean((d <= radius_f[:, None]).any(axis=0)),
            in_real_ball.sum() / (k * len(fake)),
            np.mean(d.min(axis=0) <= radius_r))


# Reals at -6, 0, 1, 3 (mean -0.5: the module's centring shift is exact, so every distance below
# is exact in float32); fakes at 0.5, 2.5, 5.5, 12. No fake lies on a real ball's edge and no
# real on a fake ball's edge, so < and <= agree here.
REAL_1D = _column([-6, 0, 1, 3])
FAKE_1D = _column([0.5, 2.5, 5.5, 12])


@pytest.mark.parametrize("batch_size", [1, 3, 1024])
def test_hand_worked_line_k1(batch_size):
    # k = 1. Real radii: -6 -> 6 (to 0), 0 -> 1, 1 -> 1, 3 -> 2 (to 1);
    #   real balls [-12, 0], [-1, 1], [0, 2], [1, 5].
    # Fake radii: 0.5 -> 2, 2.5 -> 2, 5.5 -> 3 (to 2.5), 12 -> 6.5;
    #   fake balls [-1.5, 2.5], [0.5, 4.5], [2.5, 8.5], [5.5, 18.5].
    # Real balls holding each fake: 0.5 -> 2 ([-1,1], [0,2]); 2.5 -> 1 ([1,5]); 5.5 -> 0; 12 -> 0
    #   precision = 2/4, density = (2 + 1) / (1 * 4) = 0.75.
    # Reals in some fake ball: 0, 1, 3 yes, -6 no -> recall = 3/4.
    # Real balls holding some fake: [-12,0] no, the other three yes -> coverage = 3/4.
    assert prdc(REAL_1D, FAKE_1D, nearest_k=1, batch_size=batch_size) == PRDC(
        precision=0.5, recall=0.75, density=0.75, coverage=0.75, nearest_k=1)


@pytest.mark.parametrize("batch_size", [3, 1024])
def test_hand_worked_line_k2(batch_size):
    # k = 2. Real distances to the others, sorted; the 2nd is the radius:
    #   -6: 6, 7, 9 -> 7;  0: 1, 3, 6 -> 3;  1: 1, 2, 7 -> 2;  3: 2, 3, 9 -> 3
    #   real balls [-13, 1], [-3, 3], [-1, 3], [0, 6].
    # Fakes: 0.5: 2, 5, 11.5 -> 5;  2.5: 2, 3, 9.5 -> 3;  5.5: 3, 5, 6.5 -> 5;  12: 6.5, .. -> 9.5
    #   fake balls [-4.5, 5.5], [-0.5, 5.5], [0.5, 10.5], [2.5, 21.5].
    # Real balls holding each fake: 0.5 -> 4, 2.5 -> 3 (not [-13,1]), 5.5 -> 1 ([0,6]), 12 -> 0
    #   precision = 3/4, density = (4 + 3 + 1) / (2 * 4) = 1.
    # Reals in some fake ball: all but -6 -> recall = 3/4. Every real ball holds 0.5 or 2.5
    #   -> coverage = 1.
    assert prdc(REAL_1D, FAKE_1D, nearest_k=2, batch_size=batch_size) == PRDC(
        precision=0.75, recall=0.75, density=1.0, coverage=1.0, nearest_k=2)


def test_closed_balls_count_points_on_the_boundary():
    # Reals 0, 1, 2, 5 (mean 2: exact shift), k = 1: real 5 has radius 3 (to 2). Fake 8 lies at
    # distance exactly 3 from real 5, on the edge of its ball; fake 20 is far from everything.
    # Closed balls (<=): precision = 1/2, density = 1 / (1 * 2) = 0.5, coverage = 1/4 (only 5's
    # ball). With strict < (clovaai's prdc package) all three would be 0.
    # Fake radii are 12 (8 <-> 20), so the ball [-4, 20] around 8 holds every real: recall = 1.
    result = prdc(_column([0, 1, 2, 5]), _column([8, 20]), nearest_k=1)
    assert result == PRDC(precision=0.5, recall=1.0, density=0.5, coverage=0.25, nearest_k=1)


def test_duplicate_samples_are_neighbours_at_distance_zero():
    # Reals -1, -1, 2, 4 (mean 1), k = 1: each copy of -1 has the other at distance 0 as its
    # nearest neighbour, so radius 0; 2 and 4 have radius 2. A fake exactly at -1 lies in both
    # zero-radius balls (closed) and in no other ([0, 4], [2, 6]); the fake at 10 in none.
    # precision = 1/2, density = 2 / (1 * 2) = 1, coverage = 2/4. Fake radii: 11 each, so
    # [-12, 10] around -1 holds every real: recall = 1.
    result = prdc(_column([-1, -1, 2, 4]), _column([-1, 10]), nearest_k=1)
    assert result == PRDC(precision=0.5, recall=1.0, density=1.0, coverage=0.5, nearest_k=1)


@pytest.mark.parametrize("k, batch_size", [(3, 37), (5, 64), (1, 150)])
def test_matches_float64_brute_force(k, batch_size):
    # 200 and 150 rows: 37 and 64 divide neither, so the last block is partial; 150 is one
    # whole block of fakes and a partial one of reals (200 = 150 + 50 zero-padded rows).
    rng = np.random.default_rng(0)
    real = rng.normal(0.0, 1.0, (200, 64)).astype(np.float32)
    fake = rng.normal(0.15, 1.1, (150, 64)).astype(np.float32)
    expected = _reference_prdc(real, fake, k)
    assert all(0 < value < 1 for value in expected)  # a case where every count matters
    got = prdc(real, fake, nearest_k=k, batch_size=batch_size)
    assert (got.precision, got.recall, got.density, got.coverage) == expected
    assert got.nearest_k == k


def test_matches_brute_force_with_a_large_common_offset():
    # Non-negative features with a large shared component, like Inception activations: the
    # regime where |a|^2 + |b|^2 - 2ab cancels most. Without the centring shift density and
    # coverage come out 1.196 and 0.900 here instead of 1.189 and 0.892.
    rng = np.random.default_rng(1)
    offset = 50.0 * np.abs(rng.normal(size=(1, 48)))
    real = (offset + np.abs(rng.normal(size=(120, 48)))).astype(np.float32)
    fake = (offset + np.abs(rng.normal(0.1, 1.0, size=(90, 48)))).astype(np.float32)
    got = prdc(real, fake, nearest_k=3, batch_size=50)
    assert (got.precision, got.recall, got.density, got.coverage) == _reference_prdc(real, fake, 3)


def test_identical_sets_are_fully_precise_recalled_and_covered():
    x = np.random.default_rng(2).normal(size=(60, 16))
    result = prdc(x, jnp.asarray(x), nearest_k=3, batch_size=32)
    assert (result.precision, result.recall, result.coverage) == (1.0, 1.0, 1.0)


def test_disjoint_sets_score_zero():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(20, 8)), rng.normal(size=(12, 8)) + 100.0
    assert prdc(real, fake) == PRDC(0.0, 0.0, 0.0, 0.0, nearest_k=3)


def _good(n=10, d=4):
    return np.random.default_rng(0).normal(size=(n, d))


@pytest.mark.parametrize("real, fake, kwargs, needle", [
    (_good(3), _good(), {}, "at least 4"),  # nearest_k = 3 needs 3 others per sample
    (_good(), _good(3), {}, "at least 4"),
    (_good(), _good(5), {"nearest_k": 5}, "at least 6"),
    (_good(d=4), _good(d=5), {}, "dimension"),
    (_good().reshape(10, 2, 2), _good(), {}, "2-D"),
    (_good(), _good()[:, 0], {}, "2-D"),
    (np.where(np.eye(10, 4) > 0, np.nan, _good()), _good(), {}, "NaN"),
    (_good(), np.where(np.eye(10, 4) > 0, -np.inf, _good()), {}, "NaN"),
    (np.array([["a", "b"], ["c", "d"]]), _good(d=2), {}, "dtype"),
    (_good(), _good(), {"nearest_k": 0}, "nearest_k"),
    (_good(), _good(), {"nearest_k": 2.0}, "nearest_k"),
    (_good(), _good(), {"batch_size": 0}, "batch_size"),
])
def test_user_errors(real, fake, kwargs, needle):
    with pytest.raises(UserError, match=needle) as info:
        prdc(real, fake, **kwargs)
    assert "\n" not in str(info.value)

"""FID against a float64 SciPy transcription of the original TTUR code, and on singular cases."""

import numpy as np
import pytest
import scipy.linalg

from gan_jax.errors import UserError
from gan_jax.metrics.fid import feature_stats, fid_from_features, frechet_distance


def scipy_reference_fid(mu1, sigma1, mu2, sigma2) -> float:
    """TTUR's `calculate_frechet_distance`: sqrtm of the product, real part of the result."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def random_stats(rng, n, d, shift=0.0, scale=1.0):
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    features = rng.normal(size=(n, d)) @ mixing * scale + shift
    return feature_stats(features)


@pytest.mark.parametrize("d, shift, scale", [(16, 0.0, 1.0), (64, 0.3, 1.5), (128, -1.0, 0.7)])
def test_matches_scipy_on_full_rank_covariances(d, shift, scale):
    rng = np.random.default_rng(d)
    a, b = random_stats(rng, 4 * d, d), random_stats(rng, 4 * d, d, shift, scale)
    ours = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    reference = scipy_reference_fid(a.mu, a.sigma, b.mu, b.sigma)
    assert ours == pytest.approx(reference, rel=1e-6)
    assert frechet_distance(b.mu, b.sigma, a.mu, a.sigma) == pytest.approx(ours, rel=1e-9)


def test_stable_and_exact_when_covariances_are_singular():
    rng = np.random.default_rng(0)
    d = 64
    # Fewer samples than dimensions: rank-deficient covariances, as with FID on < 2048 images.
    a, b = random_stats(rng, 20, d), random_stats(rng, 30, d, shift=0.5)
    assert np.linalg.matrix_rank(a.sigma) < d
    value = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(scipy_reference_fid(a.mu, a.sigma, b.mu, b.sigma), rel=1e-6)
    # Identical singular statistics: exactly the mean term, 0.
    assert frechet_distance(a.mu, a.sigma, a.mu, a.sigma) == pytest.approx(0, abs=1e-9)


def test_closed_form_for_commuting_singular_covariances():
    # Diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    s1, s2 = np.array([4.0, 0.0, 1.0, 0.0]), np.array([1.0, 9.0, 0.0, 0.0])
    mu1, mu2 = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 3.0, 5.0])
    expected = 5.0 + (2 - 1) ** 2 + (0 - 3) ** 2 + (1 - 0) ** 2
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, 1e-12)


def test_feature_stats_are_float64_mean_and_unbiased_covariance():
    features = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    stats = feature_stats(features)
    assert stats.mu.dtype == stats.sigma.dtype == np.float64 and stats.n == 50
    np.testing.assert_allclose(stats.sigma, np.cov(features.astype(np.float64).T), rtol=1e-12)
    assert fid_from_features(features, features) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("features, message", [
    (np.zeros((1, 4)), "need at least 2"),
    (np.full((3, 4), np.nan), "NaN or Inf"),
    (np.zeros(4), "2-D float array"),
    (np.zeros((3, 4), np.uint8), "2-D float array"),
])
def test_bad_features_are_refused(features, message):
    with pytest.raises(UserError, match=message):
        feature_stats(features)


def test_mismatched_statistics_are_refused():
    with pytest.raises(UserError, match="one d"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(UserError, match="NaN or Inf"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.inf))

"""Fréchet Inception Distance between two Gaussians fitted to Inception features.

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))   (Heusel et al. 2017).

The reference code takes `scipy.linalg.sqrtm(S1 @ S2)`, which is slow, returns complex noise and
can fail when the covariances are singular (fewer samples than 2048 features). Here the trace
term uses tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(A S2 A)) with A = S1^(1/2): A S2 A is
symmetric positive semi-definite, so two symmetric eigendecompositions in float64 give it without
complex arithmetic, and tiny negative eigenvalues from rounding are clipped to zero. This runs on
the host in float64: on a GPU, float32 eigensolvers are not accurate enough for FID's small
differences of large traces.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gan_jax.errors import UserError


class FeatureStats(NamedTuple):
    """Mean and (unbiased, ddof=1) covariance of n feature vectors, in float64."""
    mu: np.ndarray
    sigma: np.ndarray
    n: int


def check_features(features, what: str = "features", minimum: int = 2) -> np.ndarray:
    """A finite (n, d) float array with at least `minimum` rows, or a UserError."""
    features = np.asarray(features)
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise UserError(f"{what} must be a 2-D float array (n, d), got {features.dtype} "
                        f"{features.shape}")
    if len(features) < minimum:
        raise UserError(f"{what}: {len(features)} samples, need at least {minimum}; "
                        "evaluate more images")
    if not np.all(np.isfinite(features)):
        raise UserError(f"{what} contain NaN or Inf; the images or the network input are broken")
    return features


def feature_stats(features) -> FeatureStats:
    features = check_features(features).astype(np.float64)
    return FeatureStats(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix (negative rounding noise clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) for symmetric PSD matrices, without complex arithmetic."""
    root = _psd_sqrt(sigma1)
    product = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FID between N(mu1, sigma1) and N(mu2, sigma2); float64 throughout."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if d < 1 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise UserError(f"FID needs means (d,) and covariances (d, d) of one d; got "
                        f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    if not all(np.all(np.isfinite(a)) for a in (mu1, mu2, sigma1, sigma2)):
        raise UserError("FID statistics contain NaN or Inf; recompute them")
    diff = mu1 - mu2
    value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
             - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return float(max(value, 0.0))  # FID >= 0; a tiny negative is rounding


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def fid_from_features(features1, features2) -> float:
    return fid_from_stats(feature_stats(features1), feature_stats(features2))

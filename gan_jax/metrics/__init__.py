"""Evaluation metrics, exact to the reference FID network.

    from gan_jax import metrics
    real = metrics.inception_features(real_uint8_images)          # (N, 2048) float32
    fake = metrics.inception_features(fake_uint8_images)
    fid = metrics.fid_from_features(real, fake)                    # float64 FID
    a, b = metrics.feature_stats(real), metrics.feature_stats(fake)
    same = metrics.frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    kid = metrics.kernel_inception_distance(real, fake)            # KID(mean, std, ...)
    scores = metrics.prdc(real, fake, nearest_k=3)   # precision, recall, density, coverage

Modules: `inception` (the Flax network), `weights` (fetch/convert/verify), `resize` (the three
299x299 resize modes), `features` (batched, sharded extraction), `fid`, `kid`, `prdc`,
`reference` (cached dataset statistics), `evaluators` (metrics by name, e.g. "fid10k").
"""

from gan_jax.metrics.features import FeatureExtractor, inception_features
from gan_jax.metrics.fid import FeatureStats, feature_stats, fid_from_features, frechet_distance
from gan_jax.metrics.kid import KID, kernel_inception_distance
from gan_jax.metrics.prdc import PRDC, prdc
from gan_jax.metrics.reference import reference_stats
from gan_jax.metrics.resize import RESIZE_MODES

__all__ = ["FeatureExtractor", "inception_features", "FeatureStats", "feature_stats",
           "fid_from_features", "frechet_distance", "KID", "kernel_inception_distance", "PRDC",
           "prdc", "reference_stats", "RESIZE_MODES"]

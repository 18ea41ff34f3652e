"""Metric names, the metric table, and the reference-statistics cache with its protocol.

The cache tests use a stand-in feature extractor (pixel statistics instead of Inception): they
test what is cached and when, which does not depend on the network.
"""

import json
import subprocess
import threading
import time

import numpy as np
import pytest

from tests.conftest import requires_fashion_mnist
from gan_jax.errors import UserError
from gan_jax.metrics.evaluators import (MetricSpec, compute_metrics, parse_metric, parse_metrics,
                                        real_set_from_dataset, real_set_from_features)
from gan_jax.metrics.fid import fid_from_features
from gan_jax.metrics.kid import kernel_inception_distance
from gan_jax.metrics.prdc import prdc
from gan_jax.metrics.reference import images_digest, reference_stats, select_subset


@pytest.mark.parametrize("name, spec", [
    ("fid10k", MetricSpec("fid10k", "fid", 10000)),
    ("kid50k", MetricSpec("kid50k", "kid", 50000)),
    ("prdc10k", MetricSpec("prdc10k", "prdc", 10000)),
    (" fid500 ", MetricSpec("fid500", "fid", 500)),
])
def test_metric_names_carry_the_image_count(name, spec):
    assert parse_metric(name) == spec


@pytest.mark.parametrize("text", ["is50k", "fid", "fid10m", "fid0", "FID10k", "kid-5k"])
def test_unknown_metric_names_are_refused(text):
    with pytest.raises(UserError, match="unknown metric"):
        parse_metric(text)


def test_metric_lists():
    assert [s.name for s in parse_metrics("fid10k, kid10k,")] == ["fid10k", "kid10k"]
    assert parse_metrics("") == []
    with pytest.raises(UserError, match="twice"):
        parse_metrics("fid10k,fid10k")


def test_compute_metrics_equals_the_metric_functions():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 16)).astype(np.float32)
    fake = (rng.normal(size=(50, 16)) + 0.3).astype(np.float32)
    specs = parse_metrics("fid40,kid50,prdc30")
    results = compute_metrics(specs, fake, real_set_from_features(real, "real"), seed=3)
    assert results["fid40"] == pytest.approx(fid_from_features(fake[:40], real), rel=1e-12)
    kid = kernel_inception_distance(real, fake, seed=3)
    assert (results["kid50"], results["kid50_std"]) == pytest.approx((kid.mean, kid.std))
    # PRDC compares equal numbers of real and fake: a seeded subset of the 60 reals.
    expected = prdc(select_subset(real, 30, 3), fake[:30], nearest_k=3)
    assert results["prdc30_precision"] == expected.precision
    assert results["prdc30_coverage"] == expected.coverage
    assert set(results) == {"fid40", "kid50", "kid50_std", "prdc30_precision", "prdc30_recall",
                            "prdc30_density", "prdc30_coverage"}


def test_too_few_images_for_a_metric_is_refused():
    features = np.zeros((10, 4), np.float32)
    with pytest.raises(UserError, match="fid10k needs 10000 images but only 10"):
        compute_metrics(parse_metrics("fid10k"), features, real_set_from_features(features, "r"))


def test_subsets_are_seeded_sorted_and_bounded():
    items = np.arange(100)
    a, b = select_subset(items, 10, seed=1), select_subset(items, 10, seed=1)
    np.testing.assert_array_equal(a, b)
    assert len(set(a)) == 10 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, select_subset(items, 10, seed=2))
    assert select_subset(items, None, 0) is items
    with pytest.raises(UserError, match="subset of 101"):
        select_subset(items, 101, 0)


# --- the reference cache ----------------------------------------------------------------------

class PixelStatsExtractor:
    """Stands in for the Inception extractor: 4 features per image, counts the image sets it
    is given."""
    storage, compute = "float32", "float32"

    def __init__(self):
        self.calls = 0

    def padded_batch_size(self, batch_size, images):
        return min(batch_size or images, images)

    def iter_features(self, batches, total, resize):
        self.calls += 1
        for images, valid in batches:
            x = images[:valid].reshape(valid, -1).astype(np.float32)
            yield np.stack([x.mean(1), x.std(1), x[:, :10].mean(1), x[:, -10:].mean(1)], axis=1)


@pytest.fixture
def test_split():
    from gan_jax.metrics.images import load_images
    return load_images("fashion_mnist:test")


@requires_fashion_mnist
def test_reference_stats_are_computed_once_then_read_from_the_cache(tmp_path, monkeypatch,
                                                                     test_split):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    extractor = PixelStatsExtractor()
    images = select_subset(test_split, 500, seed=1)
    first = reference_stats("fashion_mnist:test", images, extractor, "clean")
    again = reference_stats("fashion_mnist:test", images, extractor, "clean")
    assert extractor.calls == 1 and first.n == 500
    np.testing.assert_array_equal(first.sigma, again.sigma)
    # Another resize, or other pixels under the same name (another subset, folder or
    # resolution fitting), is another cache entry, computed afresh: never a silent reuse.
    reference_stats("fashion_mnist:test", images, extractor, "tf_legacy")
    other = reference_stats("fashion_mnist:test", select_subset(test_split, 500, seed=2),
                            extractor, "clean")
    assert extractor.calls == 3 and not np.array_equal(other.mu, first.mu)
    stored = [json.loads(str(np.load(p)["protocol"]))
              for p in (tmp_path / "fid_stats").glob("*-clean-*-stats.npz")]
    assert len(stored) == 2
    assert {p["images_sha256"] for p in stored} == {images_digest(images), images_digest(
        select_subset(test_split, 500, seed=2))}
    assert all(p["source"] == "fashion_mnist:test" and p["images_shape"] == [500, 28, 28, 1]
               for p in stored)


class SlowExtractor(PixelStatsExtractor):
    """Signals when it starts computing, then takes its time: a second caller arrives while
    the first is still at work."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()

    def iter_features(self, batches, total, resize):
        self.started.set()
        time.sleep(1.0)
        yield from super().iter_features(batches, total, resize)


@requires_fashion_mnist
def test_two_callers_of_one_reference_at_once_compute_it_once(tmp_path, monkeypatch, test_split,
                                                               capfd):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    extractor, images = SlowExtractor(), test_split[:200]
    results = {}

    def call(name):
        results[name] = reference_stats("fashion_mnist:test", images, extractor, "clean")
    first = threading.Thread(target=call, args=("first",))
    first.start()
    assert extractor.started.wait(timeout=60)
    call("second")  # waits for the first's file, then reads it
    first.join()
    assert extractor.calls == 1
    np.testing.assert_array_equal(results["first"].sigma, results["second"].sigma)
    assert "waiting for another caller computing the reference fashion_mnist:test" in (
        capfd.readouterr().err)


@requires_fashion_mnist
def test_a_read_only_cache_is_refused_before_any_feature_is_computed(small_filesystem,
                                                                     monkeypatch, test_split):
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    monkeypatch.setenv("GAN_JAX_CACHE", str(small_filesystem / "cache"))
    extractor = PixelStatsExtractor()
    with pytest.raises(UserError, match=f"cannot write the metrics cache {small_filesystem}"
                                        r"/cache/fid_stats \(Read-only file system\); set "
                                        "GAN_JAX_CACHE"):
        reference_stats("fashion_mnist:test", test_split[:20], extractor, "clean")
    assert extractor.calls == 0


@requires_fashion_mnist
def test_a_stale_or_broken_cache_is_refused_not_reused(tmp_path, monkeypatch, test_split):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    extractor = PixelStatsExtractor()
    images = test_split[:100]
    reference_stats("fashion_mnist:test", images, extractor, "clean")
    [path] = (tmp_path / "fid_stats").glob("*-stats.npz")
    with np.load(path) as archive:
        arrays = dict(archive)
    protocol = json.loads(str(arrays["protocol"]))
    protocol["weights"] = "some other inception"
    arrays["protocol"] = np.array(json.dumps(protocol))
    np.savez(path, **arrays)
    with pytest.raises(UserError, match="stale reference cache .* its weights='some other"):
        reference_stats("fashion_mnist:test", images, extractor, "clean")
    path.write_bytes(path.read_bytes()[:200])  # truncated
    with pytest.raises(UserError, match="cannot read reference cache"):
        reference_stats("fashion_mnist:test", images, extractor, "clean")


@requires_fashion_mnist
def test_kid_and_prdc_features_are_cached_and_reused_for_the_stats(tmp_path, monkeypatch,
                                                                    test_split):
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    extractor = PixelStatsExtractor()
    specs = parse_metrics("fid20,kid20")
    real = real_set_from_dataset("fashion_mnist:test", test_split, extractor, "clean", specs)
    fake = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32) * 50 + 70
    compute_metrics(specs, fake, real)
    assert extractor.calls == 1  # features once, stats from them
    assert len(list((tmp_path / "fid_stats").glob("*-features.npz"))) == 1
    again = real_set_from_dataset("fashion_mnist:test", test_split, extractor, "clean", specs)
    compute_metrics(specs, fake, again)
    assert extractor.calls == 1  # both read back from the cache

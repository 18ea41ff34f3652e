"""Small builders shared by the tests."""

from pathlib import Path

import jax
import numpy as np

from gan_jax.config import Config, with_overrides
from gan_jax.metrics.inception import FEATURE_DIM


def tiny_config(**overrides) -> Config:
    """A DCGAN small enough to compile and step in seconds on a CPU."""
    values = {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16,
              "train.batch_size": 16}
    values |= {k.replace("__", "."): v for k, v in overrides.items()}
    return with_overrides(Config(), values)


def random_batch(config: Config, seed: int = 0) -> dict[str, np.ndarray]:
    m = config.model
    rng = np.random.default_rng(seed)
    # One step reads n_critic batches of real images.
    rows = config.train.batch_size * config.train.n_critic
    shape = (rows, m.resolution, m.resolution, m.channels)
    return {"image": rng.integers(0, 256, shape, dtype=np.uint8),
            "label": rng.integers(0, 10, shape[:1], dtype=np.int32)}


class Stopped(Exception):
    """Raised by `ProjectedPixels` where a killed evaluation would have stopped."""


class ProjectedPixels:
    """Stands in for the Inception network, in `generated_features` and for the image sets given
    to `features`: each image's features are a fixed linear projection of its pixels
    (`features_of`), so a test can compute the expected features from the images it expects.
    Counts the batches it is given, and can stop (like a killed job) after `stop_after` of
    them."""
    storage = compute = "float32"  # the settings a resumable evaluation's key includes

    def __init__(self, stop_after: int | None = None):
        self.batches, self.stop_after = 0, stop_after
        # The shapes of the image sets given to `features` and of the batches streamed.
        self.shapes: list[tuple[int, ...]] = []
        self._projection: dict[int, np.ndarray] = {}

    def padded_batch_size(self, batch_size: int | None, images: int) -> int:
        return min(batch_size or images, images)

    def features_of(self, images) -> np.ndarray:
        pixels = np.asarray(images, np.float64).reshape(len(images), -1)
        size = pixels.shape[1]
        if size not in self._projection:
            self._projection[size] = np.random.default_rng(0).normal(size=(size, FEATURE_DIM))
        # In float64, so that the features of an image do not depend on its batch's size.
        return (pixels @ self._projection[size]).astype(np.float32)

    def features(self, images, resize: str, batch_size: int | None = None) -> np.ndarray:
        self.shapes.append(tuple(images.shape))
        return self.features_of(images)

    def iter_features(self, stream, total: int, resize: str):
        for images, valid in stream:
            if self.batches == self.stop_after:
                raise Stopped
            self.batches += 1
            self.shapes.append(tuple(images.shape))
            yield self.features_of(images[:valid])


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory`, by relative path: to check a failed run touched nothing."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def final_state(workdir: Path):
    """The newest checkpoint of a run directory, restored with the run's own config.json."""
    from gan_jax.checkpoint import Checkpointer
    from gan_jax.config import read_config
    from gan_jax.train import build_gan, init_state
    like = init_state(build_gan(read_config(workdir / "config.json")), jax.random.key(0))
    checkpointer = Checkpointer(workdir / "checkpoints")
    try:
        return checkpointer.restore_latest(like=like)
    finally:
        checkpointer.close()

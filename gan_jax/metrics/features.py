"""Inception pool3 features of uint8 images: resize, normalise and run the network in one jit.

`FeatureExtractor` loads the weights once, replicates them over the local devices and compiles
one function per (resize mode, input shape); batches are sharded over the devices and the last
partial batch is padded, so any number of images costs one compilation. `inception_features` is
the one-call convenience around a cached extractor.

Compute modes (the network's arithmetic; the resize is always float32):
  "float32"   float32 with HIGHEST matmul precision: matches the reference network to ~1e-6.
  "tf32"      float32 storage, the backend's default matmul precision (TF32 on Ampere+ GPUs,
              what PyTorch's cuDNN convolutions use by default); identical to float32 on CPU.
  "bfloat16"  bfloat16 activations and kernels, float32 parameters; the fastest, least exact.
"""

from __future__ import annotations

import collections
import functools
import os
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gan_jax.errors import UserError
from gan_jax.metrics.checks import check_choice
from gan_jax.metrics.inception import (CONV_FORMS, FEATURE_DIM, INPUT_SIZE, InceptionV3,
                                       params_from_weights)
from gan_jax.metrics.resize import RESIZE_MODES, to_inception_input
from gan_jax.metrics.weights import load_inception_weights
from gan_jax.sharding import batch_sharded, make_mesh, replicate, replicated

COMPUTE_MODES = {
    "float32": (jnp.float32, jax.lax.Precision.HIGHEST),
    "tf32": (jnp.float32, jax.lax.Precision.DEFAULT),
    "bfloat16": (jnp.bfloat16, jax.lax.Precision.DEFAULT),
}
DEFAULT_RESIZE = "clean"
# Images per Inception batch. On a 2-core CPU (AMD EPYC, 2026-12-02) the network ran at 16.8,
# 16.9, 16.3, 14.7 and 15.0 img/s at batches of 16, 32, 64, 128 and 200, and on a 2-core Intel
# Xeon (2026-12-07) at 13.7 img/s at 16 and 11.2 at 64: past 32 the activations leave the
# caches. Accelerators want large batches.
CPU_BATCH_SIZE, ACCELERATOR_BATCH_SIZE = 32, 200
# Images per independent chain of the network within a CPU batch (`apply_in_chains`).
CPU_CHAIN_SIZE = 8
_IN_FLIGHT = 2  # batches queued on the device ahead of the one being copied back


def default_batch_size(backend: str | None = None) -> int:
    on_cpu = (backend or jax.default_backend()) == "cpu"
    return CPU_BATCH_SIZE if on_cpu else ACCELERATOR_BATCH_SIZE


def default_chain_size(backend: str | None = None) -> int | None:
    """CPU_CHAIN_SIZE on the CPU; None (the whole batch as one chain) elsewhere."""
    return CPU_CHAIN_SIZE if (backend or jax.default_backend()) == "cpu" else None


def apply_in_chains(apply: Callable[[jax.Array], jax.Array], x: jax.Array,
                    chain_size: int | None) -> jax.Array:
    """apply(x) for a network that treats images independently, traced as independent chains
    of at most `chain_size` images (None: one chain) whose outputs are concatenated.

    XLA:CPU runs independent operations of one program side by side on its threads, but some
    of its convolutions use one thread (the FID Inception's 147x147 stem convolution and its
    5x5 and 1x7 layers ran no faster on two cores than on one). Several chains give the other
    core work meanwhile: on a 2-core Intel Xeon, batches of 32 in chains of 8 ran at 13.9 img/s
    against 11.5 as one chain and the reference TorchScript network's 13.0, timed in turns
    (experiments/results/cpu_speed.md). Each image's features are those of the one-chain
    network up to float rounding."""
    count = x.shape[0]
    if chain_size is None or chain_size >= count:
        return apply(x)
    chains = jnp.array_split(x, -(-count // chain_size))
    return jnp.concatenate([apply(chain) for chain in chains])


def check_images(images) -> None:
    """Refuse anything but uint8 NHWC with 1 or 3 channels, with one line saying what to do."""
    shape, dtype = getattr(images, "shape", None), getattr(images, "dtype", None)
    if shape is None or dtype is None:
        raise UserError(f"images must be an array, got {type(images).__name__}")
    if dtype != np.uint8:
        raise UserError(f"images must be uint8 in [0, 255], got {dtype}; convert generator "
                        "output in [-1, 1] with gan_jax.sample.to_uint8")
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise UserError(f"images must be NHWC with 1 or 3 channels, got shape {tuple(shape)}")
    if shape[0] == 0 or shape[1] == 0 or shape[2] == 0:
        raise UserError(f"images must be non-empty, got shape {tuple(shape)}")


class FeatureExtractor:
    """The FID network with its weights on the local devices, ready for batches of images."""

    def __init__(self, weights: str | os.PathLike | None = None, storage: str = "float32",
                 compute: str = "float32", devices=None, progress: bool = False,
                 conv_forms: str = "auto", chain_size: int | None | str = "auto"):
        check_choice("compute mode", compute, COMPUTE_MODES)
        check_choice("convolution form", conv_forms, CONV_FORMS)
        dtype, precision = COMPUTE_MODES[compute]
        self.compute, self.storage, self.progress = compute, storage, progress
        self.network = InceptionV3(dtype=dtype, precision=precision, conv_forms=conv_forms)
        self.mesh = make_mesh(jax.local_devices() if devices is None else devices)
        # "auto": chains on a one-device CPU mesh only; a batch split over several devices
        # already gives each its own work, and slicing it would move images between them.
        if chain_size == "auto":
            platform = self.mesh.devices.flat[0].platform
            chain_size = default_chain_size(platform) if self.mesh.size == 1 else None
        if chain_size is not None and chain_size < 1:
            raise UserError(f"chain_size must be positive or None, got {chain_size}")
        self.chain_size = chain_size
        self.params = replicate(params_from_weights(load_inception_weights(weights, storage)),
                                self.mesh)
        self._functions = {}  # resize mode -> compiled features function

    def _compiled(self, resize: str):
        if resize not in self._functions:
            self._functions[resize] = self._compile(resize)
        return self._functions[resize]

    def _compile(self, resize: str):
        def features(params, images):
            x = to_inception_input(images.astype(jnp.float32), resize, INPUT_SIZE)
            x = jnp.broadcast_to(x, x.shape[:3] + (3,))  # grayscale -> RGB, after the resize
            return apply_in_chains(functools.partial(self.network.apply, params), x,
                                   self.chain_size)

        data = batch_sharded(self.mesh)
        return jax.jit(features, in_shardings=(replicated(self.mesh), data), out_shardings=data)

    def padded_batch_size(self, batch_size: int | None = None, images: int | None = None) -> int:
        """`batch_size` (None: `default_batch_size()`), at most `images`, rounded up to a
        multiple of the device count (the batch is split)."""
        if batch_size is None:
            batch_size = default_batch_size()
        if batch_size < 1:
            raise UserError(f"batch_size must be positive, got {batch_size}")
        batch_size = min(batch_size, images or batch_size)
        devices = self.mesh.size
        return -(-batch_size // devices) * devices

    def batch_features(self, images, resize: str = DEFAULT_RESIZE) -> jax.Array:
        """Features of one uint8 batch whose size the device count divides, left on device."""
        check_choice("resize mode", resize, RESIZE_MODES)
        images = jax.device_put(images, batch_sharded(self.mesh))
        return self._compiled(resize)(self.params, images)

    def features(self, images, resize: str = DEFAULT_RESIZE,
                 batch_size: int | None = None) -> np.ndarray:
        """(N, 2048) float32 features of uint8 NHWC images, computed `batch_size` at a time
        (None: `default_batch_size()`)."""
        check_images(images)
        images = np.asarray(images)
        size = self.padded_batch_size(batch_size, len(images))
        return self.features_of_batches(padded_batches(images, size), len(images), resize)

    def features_of_batches(self, batches: Iterable[tuple[jax.Array | np.ndarray, int]],
                            total: int, resize: str = DEFAULT_RESIZE) -> np.ndarray:
        """Features of a stream of (uint8 batch, how many of its images are real) pairs, e.g.
        generator output still on the device; each batch's size must be a multiple of the
        device count. One progress bar over `total` images."""
        result = np.concatenate(list(self.iter_features(batches, total, resize)))
        assert result.shape == (total, FEATURE_DIM), (result.shape, total)
        return result

    def iter_features(self, batches: Iterable[tuple[jax.Array | np.ndarray, int]],
                      total: int, resize: str = DEFAULT_RESIZE) -> Iterator[np.ndarray]:
        """`features_of_batches`, one (real images, FEATURE_DIM) array per batch, in order."""
        check_choice("resize mode", resize, RESIZE_MODES)
        in_flight = collections.deque()
        with tqdm(total=total, unit="img", disable=not self.progress, leave=False) as bar:
            for batch, count in batches:
                # Dispatch is asynchronous: queue the next batch before waiting for the oldest,
                # so the upload and the host copy overlap the device's work.
                in_flight.append((self.batch_features(batch, resize), count))
                if len(in_flight) > _IN_FLIGHT:
                    yield _fetch(*in_flight.popleft(), bar)
            while in_flight:
                yield _fetch(*in_flight.popleft(), bar)


def _fetch(features: jax.Array, count: int, bar: tqdm) -> np.ndarray:
    result = np.asarray(features)[:count]  # waits for the device
    bar.update(count)
    return result


def padded_batches(images: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Batches of exactly `size` images (the last one padded by repeating its first image)."""
    for start in range(0, len(images), size):
        batch = images[start:start + size]
        count = len(batch)
        if count < size:
            batch = np.concatenate([batch, np.repeat(batch[:1], size - count, axis=0)])
        yield batch, count


@functools.lru_cache(maxsize=2)
def feature_extractor(weights: str | None = None, storage: str = "float32",
                      compute: str = "float32") -> FeatureExtractor:
    """A process-wide extractor per configuration, so weights load and compile once."""
    return FeatureExtractor(weights, storage, compute)


def inception_features(images, resize: str = DEFAULT_RESIZE,
                       batch_size: int | None = None, *,
                       weights: str | os.PathLike | None = None, storage: str = "float32",
                       compute: str = "float32") -> np.ndarray:
    """FID Inception pool3 features (N, 2048) float32 of uint8 NHWC images (1 or 3 channels).

    Grayscale is replicated to 3 channels after resizing. `resize` is one of RESIZE_MODES
    ("clean", the default, is clean-fid's PIL bicubic); FIDs are only comparable at equal resize.
    """
    check_images(images)
    check_choice("compute mode", compute, COMPUTE_MODES)
    extractor = feature_extractor(None if weights is None else str(weights), storage, compute)
    return extractor.features(images, resize, batch_size)

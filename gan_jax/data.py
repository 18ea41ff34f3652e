"""Input pipeline: images in memory as uint8, batch order a pure function of the step.

    dataset = load_dataset(config.data)                    # local idx files or tensorflow-datasets
    images = fit_resolution(dataset.images, 32, "pad")     # once, on the host
    batches = device_batches(images, labels, batch_size=64, seed=0, start_step=0, mesh=mesh)
    batches = resident_batches(...)  # the same batches, gathered from a copy on the devices

Batches stay uint8 until the train step converts them (4x less host-to-device traffic). The
batch at step s is drawn from a permutation seeded by (seed, epoch), so a run resumed at step s
sees exactly the batches an uninterrupted run would, without saving iterator state.
Only local files and NumPy are needed for the default dataset; tensorflow-datasets (and
TensorFlow) are imported only when `source="tfds"`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import gzip
from collections import deque
from numbers import Integral
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import jax
import numpy as np

from gan_jax import batching, image_files, sharding
from gan_jax.batching import Batching
from gan_jax.config import DataConfig
from gan_jax.errors import UserError

LOCAL_DATASETS = ("fashion_mnist", "mnist")  # the idx format of LeCun's MNIST files
IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_IDX_DTYPES = {0x08: np.uint8}


class Dataset(NamedTuple):
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32
    num_classes: int


def load_dataset(config: DataConfig, resolution: int | None = None) -> Dataset:
    """The split `config` names, cut to data.crop. With `resolution`, a tensorflow-datasets
    split is also fitted to it (data.fit) chunk by chunk as it is read, so a large split of
    large images (CelebA's 163k at 218x178) never sits in memory at its full size."""
    if config.source == "local":
        dataset = load_idx_dataset(Path(config.dir), config.split, config.dataset)
    elif config.source == "tfds":
        def prepare(images: np.ndarray) -> np.ndarray:
            images = cropped(images, config.crop)
            return images if resolution is None else fit_resolution(images, resolution,
                                                                    config.fit)
        return load_tfds_dataset(config.dataset, config.split, config.tfds_data_dir, prepare)
    elif config.source == "folder":
        dataset = Dataset(*image_files.load_folder_dataset(Path(config.dir)))
    else:
        raise UserError(f"data.source='{config.source}' is unknown; use 'local', 'tfds' or "
                        "'folder'")
    return dataset._replace(images=cropped(dataset.images, config.crop))


def balanced_subset(dataset: Dataset, per_class: int, seed: int) -> Dataset:
    """`per_class` images of every class, drawn without replacement by a generator seeded with
    (seed, class), in dataset order: the same subset on every machine and for every run."""
    if dataset.num_classes < 2:
        raise UserError("data.per_class needs a labelled dataset; this one has no classes")
    if per_class < 1:
        raise UserError(f"data.per_class={per_class} must be at least 1 (or None for all)")
    rows = []
    for label in range(dataset.num_classes):
        of_class = np.flatnonzero(dataset.labels == label)
        if len(of_class) < per_class:
            raise UserError(f"data.per_class={per_class} but class {label} has only "
                            f"{len(of_class)} images; use data.per_class<={len(of_class)}")
        rng = np.random.default_rng([seed, label])
        rows.append(np.sort(rng.choice(of_class, per_class, replace=False)))
    rows = np.sort(np.concatenate(rows))
    return Dataset(dataset.images[rows], dataset.labels[rows], dataset.num_classes)


# --- local idx files -----------------------------------------------------------------------


def load_idx_dataset(directory: Path, split: str, name: str = "fashion_mnist") -> Dataset:
    """Reads MNIST-format `{train,t10k}-{images,labels}-*.gz` files from `directory`."""
    if name not in LOCAL_DATASETS:
        raise UserError(f"data.dataset='{name}' cannot be read from local files (only "
                        f"{', '.join(LOCAL_DATASETS)}); set data.source=tfds")
    if split not in IDX_FILES:
        raise UserError(f"data.split='{split}' is not a local split; use 'train' or 'test'")
    image_file, label_file = (directory / f for f in IDX_FILES[split])
    for path in (image_file, label_file):
        if not path.is_file():
            hint = ("install it with: apt-get install -y dataset-fashion-mnist"
                    if name == "fashion_mnist" else "put the four idx .gz files there")
            raise UserError(f"dataset file {path} not found; {hint}, or point data.dir at a "
                            "folder that holds the idx files")
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{image_file} and {label_file} do not hold matching images "
                        f"(N, H, W) and labels (N,): got {images.shape} and {labels.shape}")
    return Dataset(images[..., None], labels.astype(np.int32), num_classes=10)


def read_idx(path: Path) -> np.ndarray:
    """Parses one (gzipped) idx file: a big-endian header, then the raw array."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise UserError(f"{path} is not a readable gzip file ({error}); "
                        "reinstall or re-download it") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an idx file (bad magic number); reinstall it")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise UserError(f"{path} is truncated or corrupt: {len(data)} bytes, header says "
                        f"{expected}; reinstall or re-download it")
    return np.frombuffer(data, _IDX_DTYPES[data[2]], offset=header).reshape(shape)


# --- tensorflow-datasets -------------------------------------------------------------------


def load_tfds_dataset(name: str, split: str, data_dir: str | None = None,
                      fit: Callable[[np.ndarray], np.ndarray] | None = None) -> Dataset:
    """Loads a whole tensorflow-datasets image split into memory, each chunk passed through
    `fit` (uint8 images -> uint8 images) first when given."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("data.source=tfds needs tensorflow-datasets and tensorflow: "
                        "pip install 'gan_jax[tfds]', or use data.source=local") from None
    try:
        ds, info = tfds.load(name, split=split, data_dir=data_dir, with_info=True)
    except Exception as error:  # tfds raises many types; all mean "cannot load that"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"tensorflow-datasets could not load '{name}' split '{split}': "
                        f"{type(error).__name__}: {first_line}") from None
    if "image" not in info.features:
        raise UserError(f"tensorflow-datasets '{name}' has no 'image' feature")
    images, labels = [], []
    # Chunks, not batch_size=-1: the latter aborts inside TensorFlow 2.21 under mock_data.
    for chunk in tfds.as_numpy(ds.batch(8192)):
        images.append(chunk["image"] if fit is None else fit(chunk["image"]))
        labels.append(chunk["label"] if "label" in chunk else np.zeros(len(chunk["image"])))
    label_feature = info.features["label"] if "label" in info.features else None
    num_classes = getattr(label_feature, "num_classes", 0) or 0
    return Dataset(np.concatenate(images).astype(np.uint8),
                   np.concatenate(labels).astype(np.int32), num_classes)


# --- preprocessing -------------------------------------------------------------------------


def fit_resolution(images: np.ndarray, resolution: int, mode: str,
                   setting: str = "data.fit") -> np.ndarray:
    """Brings uint8 images (N, H, W, C) to (N, R, R, C): zero-pad or bilinear resize square
    images, or ("center_crop") cut the largest centred square and resize it. `setting` names
    the option that chose `mode`, for the error messages."""
    if mode == "center_crop":
        images = center_square(images)
    side = images.shape[1]
    if images.shape[1] != images.shape[2]:
        raise UserError(f"images are {images.shape[1]}x{images.shape[2]}; {setting}='{mode}' "
                        f"needs square images: use {setting}=center_crop")
    if side == resolution:
        return images
    if mode == "pad":
        if resolution < side:
            raise UserError(f"{setting}=pad cannot shrink {side}x{side} images to "
                            f"{resolution}x{resolution}; use {setting}=resize")
        before = (resolution - side) // 2
        after = resolution - side - before
        return np.pad(images, ((0, 0), (before, after), (before, after), (0, 0)))
    if mode in ("resize", "center_crop"):
        return _resize_bilinear(images, resolution)
    raise UserError(f"{setting}='{mode}' is unknown; use 'resize', 'pad' or 'center_crop'")


def cropped(images: np.ndarray, crop: str | None) -> np.ndarray:
    """images cut to data.crop, "top,left,side" (the images themselves for None)."""
    if crop is None:
        return images
    try:
        top, left, side = (int(part) for part in crop.split(","))
    except ValueError:
        raise UserError(f"data.crop={crop!r} is not 'top,left,side' (three integers, e.g. "
                        "'57,25,128')") from None
    h, w = images.shape[1:3]
    if min(top, left) < 0 or side < 1 or top + side > h or left + side > w:
        raise UserError(f"data.crop={crop!r} does not fit inside the {h}x{w} images; choose "
                        f"top + side <= {h} and left + side <= {w}")
    return images[:, top:top + side, left:left + side]


def center_square(images: np.ndarray) -> np.ndarray:
    """The largest centred square of each image (N, H, W, C): CelebA's 218x178 -> 178x178."""
    h, w = images.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images[:, top:top + side, left:left + side]


def _resize_bilinear(images: np.ndarray, resolution: int, chunk: int = 4096) -> np.ndarray:
    # Antialiased when shrinking; done once per run, in chunks to bound host memory.
    resize = jax.jit(lambda x: jax.image.resize(
        x.astype(np.float32), (x.shape[0], resolution, resolution, x.shape[3]), "bilinear"))
    out = [np.asarray(resize(images[i:i + chunk])) for i in range(0, len(images), chunk)]
    return np.clip(np.rint(np.concatenate(out)), 0, 255).astype(np.uint8)


def check_channels(images: np.ndarray, channels: int, dataset: str) -> None:
    if images.shape[-1] != channels:
        raise UserError(f"dataset '{dataset}' has {images.shape[-1]} channel(s) but "
                        f"model.channels={channels}; set model.channels={images.shape[-1]}")


# --- batching ------------------------------------------------------------------------------


def batch_indices(step: int, batch_size: int | Batching, num_examples: int,
                  seed: int) -> np.ndarray:
    """Dataset rows of the global batch at `step`: consecutive slices of per-epoch permutations.

    `batch_size` is the rows of every batch, or a run's clock (gan_jax.batching) whose batch
    changes from stage to stage. A batch may span two epochs; every example is seen once per
    epoch.
    """
    clock = _clock(batch_size)
    size = batching.stage_of_step(clock, step).per_step
    positions = int(batching.images_before(clock, step)) + np.arange(size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, num_examples)
    rows = np.empty(size, np.int64)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        rows[mask] = _epoch_permutation(seed, int(epoch), num_examples)[offsets[mask]]
    return rows


def _clock(batch_size: int | Batching) -> Batching:
    return batching.constant(int(batch_size)) if isinstance(batch_size, Integral) else batch_size


def _batch_sizes(batch_size: int | Batching) -> list[int]:
    return sorted({stage.per_step for stage in _clock(batch_size)})


def _check_batch_sizes(batch_size: int | Batching, mesh: jax.sharding.Mesh) -> None:
    """Every batch of the run splits over the mesh's devices (sharding.check_batch_size)."""
    for size in _batch_sizes(batch_size):
        sharding.check_batch_size(size, mesh)


_permutation_cache: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    key = (seed, epoch, num_examples)
    if key not in _permutation_cache:
        if len(_permutation_cache) > 4:  # only the current and next epoch are ever needed
            _permutation_cache.clear()
        _permutation_cache[key] = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return _permutation_cache[key]


def host_batches(images: np.ndarray, labels: np.ndarray, batch_size: int | Batching, seed: int,
                 start_step: int = 0, mesh: jax.sharding.Mesh | None = None
                 ) -> Iterator[dict[str, np.ndarray]]:
    """Endless iterator of the global batches from `start_step`; with a `mesh`, of this
    process's rows of each (all of them when there is one process)."""
    rows_of_process = {size: sharding.process_rows(size, mesh) for size in _batch_sizes(batch_size)}
    step = start_step
    while True:
        rows = batch_indices(step, batch_size, len(images), seed)
        rows = rows[rows_of_process[len(rows)]]
        yield {"image": images[rows], "label": labels[rows]}
        step += 1


PLACEMENTS = ("auto", "device", "host")
# `data.placement=auto` keeps a dataset on the devices up to this size (Fashion-MNIST: 47 MB,
# CIFAR-10: 150 MB); larger ones stream from host memory.
RESIDENT_LIMIT_BYTES = 1 << 30


def batches_for(placement: str, images: np.ndarray, labels: np.ndarray,
                batch_size: int | Batching,
                seed: int, mesh: jax.sharding.Mesh,
                start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
    """`resident_batches` or `device_batches` as `data.placement` says; the batches are equal."""
    from gan_jax.config import check_key_choice
    check_key_choice("data.placement", placement, PLACEMENTS)
    resident = placement == "device" or (
        placement == "auto" and images.nbytes + labels.nbytes <= RESIDENT_LIMIT_BYTES)
    make = resident_batches if resident else device_batches
    return make(images, labels, batch_size, seed, mesh, start_step)


def resident_batches(images: np.ndarray, labels: np.ndarray, batch_size: int | Batching,
                     seed: int,
                     mesh: jax.sharding.Mesh,
                     start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
    """Global batches gathered on the devices from a copy of the whole dataset kept on each.

    After the one upload the host only computes each step's row indices (B int64), so no image
    crosses the host-device link and the train step never waits on a host thread: at GPU step
    rates (~1 ms) the per-batch host work of `device_batches` is a measurable share of the step.
    Yields exactly the batches of `host_batches`.
    """
    _check_batch_sizes(batch_size, mesh)
    replicated = sharding.replicated(mesh)
    everything = {name: jax.make_array_from_process_local_data(replicated, value)
                  for name, value in (("image", images), ("label", labels))}
    gather = _gather_rows(mesh)
    step = start_step
    while True:
        # The same rows on every process; passed as NumPy, the cheapest way into a jit call
        # (a third of the host time of building a replicated jax.Array first).
        yield gather(everything, batch_indices(step, batch_size, len(images), seed))
        step += 1


@functools.cache
def _gather_rows(mesh: jax.sharding.Mesh):
    # One jitted function per mesh, so datasets of the same shape share its compilation.
    return jax.jit(lambda arrays, rows: {name: x[rows] for name, x in arrays.items()},
                   out_shardings=sharding.batch_sharded(mesh))


def device_batches(images: np.ndarray, labels: np.ndarray, batch_size: int | Batching,
                   seed: int,
                   mesh: jax.sharding.Mesh, start_step: int = 0,
                   prefetch: int = 2) -> Iterator[dict[str, jax.Array]]:
    """Global batches sharded on `mesh`, `prefetch` of them prepared ahead on a thread from
    host memory; each process loads its own rows of every global batch."""
    _check_batch_sizes(batch_size, mesh)
    batches = host_batches(images, labels, batch_size, seed, start_step, mesh)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gan_jax_data") as pool:
        place = lambda: sharding.put_process_batch(next(batches), mesh)
        ahead = deque(pool.submit(place) for _ in range(prefetch))
        while True:
            ahead.append(pool.submit(place))
            yield ahead.popleft().result()

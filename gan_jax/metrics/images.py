"""Image sets to evaluate: a dataset split, a folder of image files, or an `.npz` array.

A spec string names one:
  "fashion_mnist:test"      a dataset split: Fashion-MNIST from Debian's dataset-fashion-mnist
                            idx files, other names through tensorflow-datasets ("cifar10:test"),
                            or from wherever a given DataConfig of that dataset reads them;
  "path/to/folder"          every .png/.jpg/.jpeg/.bmp/.webp in it (sorted), all one size;
  "path/to/images.npz"      a uint8 (N, H, W, C) or (N, H, W) array, named `images` or alone.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from gan_jax.config import DataConfig
from gan_jax.data import load_dataset
from gan_jax.errors import UserError
from gan_jax.image_files import load_image_folder


def is_dataset_spec(spec: str) -> bool:
    return not Path(spec).exists() and ":" in spec and not spec.endswith(".npz")


def load_images(spec: str, data: DataConfig | None = None) -> np.ndarray:
    """uint8 NHWC images of `spec` (see module docstring). `data` says where a dataset of the
    same name is read from (folder, source, tfds data_dir), e.g. a training run's data config."""
    path = Path(spec)
    if path.is_dir():
        return load_image_folder(path)
    if path.suffix == ".npz":
        return load_image_npz(path)
    if is_dataset_spec(spec):
        return load_dataset_split(spec, data)
    raise UserError(f"'{spec}' is not a folder, an .npz file or a dataset:split name "
                    "(e.g. fashion_mnist:test)")


def load_dataset_split(spec: str, data: DataConfig | None = None) -> np.ndarray:
    """A split of `data`'s dataset (cut to its data.crop) when the names match; otherwise
    Fashion-MNIST from Debian's files and any other name from tensorflow-datasets (local MNIST
    files need `data`: their file names are Fashion-MNIST's, so a default folder could
    silently hold the wrong dataset)."""
    dataset, _, split = spec.partition(":")
    if data is not None and data.dataset == dataset:
        # with the training run's crop too (ProGAN's CelebA square): both sides see one view
        config = dataclasses.replace(data, split=split)
    else:
        config = DataConfig(dataset=dataset, split=split,
                            source="local" if dataset == "fashion_mnist" else "tfds")
    return load_dataset(config).images


def load_image_npz(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files
            name = "images" if "images" in names else (names[0] if len(names) == 1 else None)
            if name is None:
                raise UserError(f"{path} holds {names}; name the image array 'images'")
            images = archive[name]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"cannot read {path} ({error!r})") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise UserError(f"{path}: images must be an (N, H, W) or (N, H, W, C) array, got shape "
                        f"{images.shape}")
    if images.dtype != np.uint8:
        raise UserError(f"{path}: images must be uint8 in [0, 255], got {images.dtype}; "
                        "convert [-1, 1] floats with gan_jax.sample.to_uint8")
    return images

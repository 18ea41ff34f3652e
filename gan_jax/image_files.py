"""Folders of image files (PNG, JPEG, BMP, WebP) as uint8 arrays: to evaluate, or to train on.

    load_image_folder(Path("samples/"))           # (N, H, W, C): every image file in the folder
    load_folder_dataset(Path("flowers/"))          # a Dataset; classes from subfolders, if any

A training folder either holds the images themselves (an unlabelled dataset) or one subfolder
per class (torchvision's ImageFolder layout), whose sorted names are the classes 0, 1, ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from gan_jax.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder_dataset(folder: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(images, labels, num_classes) of a training folder; num_classes is 0 when unlabelled."""
    if not folder.is_dir():
        raise UserError(f"image folder {folder} not found; point data.dir at a folder of "
                        "images, or of one subfolder of images per class")
    if image_files(folder):
        images = load_image_folder(folder)
        return images, np.zeros(len(images), np.int32), 0
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and image_files(p))
    if not classes:
        raise UserError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}), "
                        "neither itself nor in class subfolders; point data.dir at the images")
    per_class = [load_image_folder(p) for p in classes]
    if len({images.shape[1:] for images in per_class}) > 1:
        raise UserError(f"the class folders of {folder} hold images of different sizes or "
                        "channels; resize them to one shape first")
    labels = np.concatenate([np.full(len(x), i, np.int32) for i, x in enumerate(per_class)])
    return np.concatenate(per_class), labels, len(classes)


def load_image_folder(folder: Path) -> np.ndarray:
    files = image_files(folder)
    if not files:
        raise UserError(f"folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = [_read_image(p) for p in files]
    if len({image.shape[-1] for image in images}) > 1:  # mixed L and RGB: all RGB (clean-fid)
        images = [np.broadcast_to(image, image.shape[:2] + (3,)) for image in images]
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise UserError(f"images in {folder} differ in size or channels ({sorted(shapes)[:3]}); "
                        "resize them to one shape first")
    return np.stack(images)


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode.startswith(("I", "F")):  # convert("L") would clip, not scale
                raise UserError(f"{path} is a {image.mode} (16/32-bit) image; gan_jax reads "
                                "8-bit images: save it as 8-bit PNG first")
            array = np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"))
    except (OSError, UnidentifiedImageError) as error:
        raise UserError(f"cannot read image {path} ({error})") from None
    return array[..., None] if array.ndim == 2 else array

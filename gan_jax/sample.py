"""Turning generator output into pictures: image grids and PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from gan_jax.files import write_atomically


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> [0, 255] uint8, the inverse of the input pipeline's scaling."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8)


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tiles uint8 images (N, H, W, C) into one (rows*(H+p)+p, cols*(W+p)+p, C) image."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                    np.uint8)
    for i, image in enumerate(images):
        top = padding + (i // columns) * (h + padding)
        left = padding + (i % columns) * (w + padding)
        grid[top:top + h, left:left + w] = image
    return grid


def save_png(image: np.ndarray, path: Path) -> None:
    """Saves an (H, W, 1|3) uint8 image; a reader never sees a partial file (gan_jax.files)."""
    array = image[..., 0] if image.shape[-1] == 1 else image
    write_atomically(path, lambda handle: Image.fromarray(array).save(handle, format="PNG"))

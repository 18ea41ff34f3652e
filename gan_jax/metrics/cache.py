"""Where metric files are cached (weights, reference statistics) and how they are written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from gan_jax.files import write_atomically


def cache_dir() -> Path:
    """`$GAN_JAX_CACHE`, else `$XDG_CACHE_HOME/gan_jax`, else `~/.cache/gan_jax`."""
    if os.environ.get("GAN_JAX_CACHE"):
        return Path(os.environ["GAN_JAX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan_jax"


def write_npz_atomically(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """An .npz that a later run never finds half-written (gan_jax.files)."""
    write_atomically(path, lambda handle: np.savez(handle, **arrays))

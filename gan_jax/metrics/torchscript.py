"""Read the tensors of a TorchScript archive with the standard library and NumPy, no torch.

A TorchScript `.pt` file is a zip archive: `<name>/data.pkl` pickles the module tree, whose
tensors point at raw little-endian storages in `<name>/data/<key>`. Unpickling it needs only
three torch names, which this module supplies: the storage classes (they give the dtype),
`torch._utils._rebuild_tensor_v2` (storage, offset, shape, strides) and
`torch.jit._pickle.build_intlist`. Script-module classes (`__torch__.*`) become plain
attribute holders. That is all the FID weights converter needs, and it keeps torch an optional
dependency of the parity tests only.
"""

from __future__ import annotations

import pickle
import zipfile
from typing import IO, Any

import numpy as np

# Storage class name -> NumPy dtype (little-endian, as torch writes them).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _ScriptObject:
    """Stand-in for a pickled `__torch__.*` module: keeps its attributes, runs no code."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage: np.ndarray, offset: int, shape: tuple, strides: tuple,
                    *_) -> np.ndarray:
    """The array torch's `_rebuild_tensor_v2` would view, copied out of the storage."""
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(shape), strides=tuple(s * item for s in strides))
    return np.array(view)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _ScriptObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch.jit._pickle", "build_intlist"):
            return list
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in TorchScript archive")

    def persistent_load(self, pid: tuple) -> np.ndarray:
        kind, storage_type, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        raw = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(raw, dtype=storage_type.dtype, count=numel)


def _named_arrays(obj: Any, path: str = "") -> dict[str, np.ndarray]:
    """Flatten a module tree into {"a.b.weight": array}, in attribute order."""
    found = {}
    for name, value in vars(obj).items():
        key = f"{path}{name}"
        if isinstance(value, np.ndarray):
            found[key] = value
        elif isinstance(value, _ScriptObject):
            found.update(_named_arrays(value, key + "."))
    return found


def _named_attributes(obj: Any, path: str = "") -> dict[str, Any]:
    """Like `_named_arrays`, for the plain int/list attributes (strides, paddings)."""
    found = {}
    for name, value in vars(obj).items():
        key = f"{path}{name}"
        if isinstance(value, _ScriptObject):
            found.update(_named_attributes(value, key + "."))
        elif isinstance(value, (int, list)) and not isinstance(value, bool):
            found[key] = value
    return found


def _load_root(file: str | IO[bytes]) -> Any:
    with zipfile.ZipFile(file) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("not a TorchScript archive (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as handle:
            return _Unpickler(handle, archive, prefix).load()


def read_torchscript_arrays(file: str | IO[bytes]) -> dict[str, np.ndarray]:
    """All tensors of a TorchScript archive as {dotted.path: np.ndarray}."""
    return _named_arrays(_load_root(file))


def read_torchscript_attributes(file: str | IO[bytes]) -> dict[str, Any]:
    """The integer and integer-list attributes (e.g. conv `stride`, `padding`) by dotted path."""
    return _named_attributes(_load_root(file))

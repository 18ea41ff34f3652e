"""Writing files so that a run killed at any moment never leaves a half-written one behind.

Every file a later run reads back (config.json, metrics.jsonl when it is trimmed, sample grids,
cached weights and statistics) is written under a temporary name in the same folder, flushed to
disk, then renamed over the real name: a rename within one filesystem is atomic, so a reader
sees the old file or the new one, never a mixture.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from gan_jax.errors import UserError

# Errors that mean "this folder cannot be written", as opposed to a bug: the user can fix them.
STORAGE_ERRNOS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
                  errno.EROFS: "make it writable", errno.EACCES: "make it writable",
                  errno.EPERM: "make it writable"}


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Calls `write(handle)` on a temporary file, then renames it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unbuffered, so a full disk fails in `write` and nothing is left to flush at close.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False, buffering=0) as handle:
        try:
            write(handle)
            os.fsync(handle.fileno())  # on disk before it gets the real name
        except BaseException:
            os.unlink(handle.name)
            raise
    os.chmod(handle.name, 0o644)  # NamedTemporaryFile creates 0600; caches may be shared
    os.replace(handle.name, path)


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode()))


def storage_errno(error: BaseException | None) -> int | None:
    """The errno of a failed write anywhere in `error`'s chain, or None when it is not one.

    Orbax reports TensorStore's failures as ValueError("... [os_error_code='28']"), so the
    code is also read from the message.
    """
    while error is not None:
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            return error.errno
        match = re.search(r"os_error_code='?(\d+)", str(error))
        if match and int(match[1]) in STORAGE_ERRNOS:
            return int(match[1])
        error = error.__cause__ or error.__context__
    return None


def storage_advice(code: int) -> str:
    """'No space left on device; free some space' for an errno of STORAGE_ERRNOS."""
    return f"{os.strerror(code)}; {STORAGE_ERRNOS[code]}"


def check_can_write(path: Path, what: str, *, folder: bool) -> None:
    """Refuses, before anything is computed or written, a `path` that can never be written as a
    folder (`folder=True`) or a file: one of the other kind is there, it lies under a file, or
    the folder that would hold it is read-only. `what` names it in the error ("--workdir")."""
    path = Path(path)
    kind = "folder" if folder else "file"
    if path.exists():
        if path.is_dir() != folder:
            other = "file" if folder else "folder"
            raise UserError(f"{what} {path} is a {other}, not a {kind}; pass a {kind} path "
                            f"that is new or already a {kind}")
        return
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir():
        raise UserError(f"{what} {path} lies under the file {parent}; pass a path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot create {what} {path}: {parent} is not writable; make it "
                        "writable or pass a path elsewhere")

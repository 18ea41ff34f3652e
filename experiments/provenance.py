"""What a measurement was made on and with: the CPU and the code's commit, for results files."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

# The vector extensions that decide a CPU's speed for this code, widest first.
_VECTOR_FLAGS = ("avx512_bf16", "avx512f", "avx2")


def cpu_model() -> str:
    """The CPU's model name, family/model and widest vector extensions, e.g. 'AMD EPYC (family
    23 model 1; avx2)': machines that report the same name can differ by 4x in speed."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", platform.machine())
    flags = set(fields.get("flags", "").split())
    vector = ", ".join(f for f in _VECTOR_FLAGS if f in flags) or "no avx2"
    if "cpu family" in fields:
        return f"{name} (family {fields['cpu family']} model {fields.get('model', '?')}; {vector})"
    return f"{name} ({vector})"


def usable_cores() -> int:
    """The cores this process may run on: fewer than the machine's under `taskset` or a
    container's CPU set, which is what a timing depends on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def git_commit() -> str | None:
    """The code's git commit (with "+changes" when the tree differs), or None outside git.

    Read once per process, at the first call: a result written hours later, after the tree has
    moved on, still names the code that made it (long commands call this when they start)."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if dirty.strip() else "")

"""Host memory that a compiled XLA:CPU program can reuse from one call to the next.

XLA:CPU allocates each call's temporary buffer (every intermediate of a train step: im2col
patches, activations kept for the backward pass) with malloc and frees it when the call ends.
glibc serves a block that large with a fresh mmap and returns it with munmap, so every call
page-faults the whole buffer in again and the kernel zeroes every page: the DCGAN 32x32 batch-64
step's 92 MB buffer took 22,600 page faults and 42 ms of system time per step, the 64x64
batch-128 step's 722 MB 197,000 faults and 0.35 s, and the FID Inception at batch 64 spent
1 min 20 s of system time in a 2 min 19 s benchmark (2-core Intel Xeon, jax 0.10.2; the
command and figures are in experiments/results/cpu_speed.md).

`reuse_freed_memory` asks glibc to keep freed memory in the process instead: one malloc arena
(the threads' own arenas cannot hold blocks over 64 MB, so they would map them anyway), no
mmap for large blocks and no trimming of the heap. The buffer is then mapped once and reused,
with no page faults. The price: the process's resident memory stays at its peak instead of
shrinking between calls, which is what a training or evaluation process does anyway.

It must run before JAX starts its CPU backend (the threads that allocate take their arena on
their first malloc), so `gan_jax/__init__.py` calls it at import. Set GAN_JAX_MALLOC=system
to keep glibc's defaults. Elsewhere than on glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
NEVER_TRIM = -1  # mallopt(3): "-1 disables trimming completely"
OPT_OUT = "GAN_JAX_MALLOC"


def on_glibc() -> bool:
    """Whether this process's C library is glibc, the one whose malloc the setting tunes."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def reuse_freed_memory() -> bool:
    """Sets glibc's malloc to keep and reuse freed memory (see the module docstring). True when
    it was set; False on another C library, or with GAN_JAX_MALLOC=system."""
    if os.environ.get(OPT_OUT, "").lower() == "system" or not on_glibc():
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM))
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)

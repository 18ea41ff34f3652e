"""Test setup: 8 fake CPU devices, so sharded code paths run in every test session.

XLA reads XLA_FLAGS when JAX initialises its backend, so this must run before anything imports
jax; pytest imports conftest.py before the test modules.
"""

import os

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

os.environ["JAX_PLATFORMS"] = "cpu"
# One compilation cache per test session, shared with the CLI subprocesses: the same train step
# or Inception network, compiled by several tests, compiles once. A fresh folder each session
# (removed at exit), so nothing compiled by other code is ever reused.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="gan_jax_test_compile_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# The suite's programs are tiny networks run for a step or two, so compiling them is most of its
# time, and LLVM's optimisation passes most of compiling: without them (level 0) the default
# suite takes about 30% less time on 2 cores, while every comparison in it is between programs
# compiled alike or against a reference with a tolerance. So the FID network's parity with the
# reference network is checked here as compiled at level 0; `python -m
# experiments.benchmarks.inception_parity` checks it as users compile it, and
# XLA_FLAGS=--xla_backend_optimization_level=3 runs the suite at XLA's default level.
_flags = os.environ.get("XLA_FLAGS", "")
if "--xla_backend_optimization_level" not in _flags:
    _flags += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gan_jax.config import FASHION_MNIST_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DCGAN_CONFIG = REPO / "experiments" / "configs" / "dcgan_fashion_mnist.py"
MLP_CONFIG = REPO / "experiments" / "configs" / "mlp_gan_fashion_mnist.py"

_HAS_FASHION_MNIST = (Path(FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz").is_file()
# `make test` (and so CI) installs Fashion-MNIST and sets this: there, a missing dataset fails
# the suite instead of skipping a third of it.
if os.environ.get("GAN_JAX_REQUIRE_FASHION_MNIST") == "1" and not _HAS_FASHION_MNIST:
    raise pytest.UsageError(f"Fashion-MNIST is required but not in {FASHION_MNIST_DIR}; install "
                            "it with: apt-get install -y dataset-fashion-mnist")

requires_fashion_mnist = pytest.mark.skipif(
    not _HAS_FASHION_MNIST,
    reason=f"Fashion-MNIST not in {FASHION_MNIST_DIR} (make test installs it)")


@pytest.fixture(autouse=True)
def _fresh_module_rng(request):
    """A test module's shared `RNG` restarts from seed 0 before each of its tests, so a test's
    inputs do not depend on which tests ran before it in its process (pytest-xdist shares the
    tests out differently on every run, and `-k` selects a subset)."""
    if isinstance(getattr(request.module, "RNG", None), np.random.Generator):
        request.module.RNG = np.random.default_rng(0)


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 8 MiB tmpfs (needs root, as `make test` in CI has; skipped elsewhere): tests
    remount it read-only or fill it."""
    mount = tmp_path / "fs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)



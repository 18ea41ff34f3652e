"""Test setup: 8 fake CPU devices, so sharded code paths run in every test session.

XLA reads XLA_FLAGS when JAX initialises its backend, so this must run before anything imports
jax; pytest imports conftest.py before the test modules.
"""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from gan_jax.config import FASHION_MNIST_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DCGAN_CONFIG = REPO / "experiments" / "configs" / "dcgan_fashion_mnist.py"
MLP_CONFIG = REPO / "experiments" / "configs" / "mlp_gan_fashion_mnist.py"

requires_fashion_mnist = pytest.mark.skipif(
    not (Path(FASHION_MNIST_DIR) / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not in {FASHION_MNIST_DIR} (make test installs it)")

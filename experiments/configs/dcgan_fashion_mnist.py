"""DCGAN on Fashion-MNIST at its native 28x28, non-saturating loss, Adam 2e-4 / beta1 0.5.

Full run (20 epochs = 1200 kimg, the "Are GANs Created Equal?" budget; for a GPU):
    python -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py \
        --workdir runs/dcgan_fashion_mnist
    Logs fid10k (10k samples vs the 10k test images, clean resize) every 300 kimg and at the end.
    Expected: not yet measured (no GPU was available when this config was written).

`:cpu`, the README quickstart (about 6 minutes on 2 CPU cores, 230.4 kimg = 3.8 epochs; no FID:
Inception features of 10k images take about an hour on 2 CPU cores):
    python -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py:cpu \
        --workdir runs/dcgan_fashion_mnist_cpu
    Expected: recognisable shirts, trousers, sneakers, dresses and bags in samples/latest.png;
    recorded run (5m46s, 2 CPU cores) in experiments/results/README.md.

`:test`, a few steps of a tiny model for the test suite.
"""

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

VARIANTS = {
    None: {"eval.metrics": "fid10k", "eval.every_kimg": 300.0},
    "cpu": {"model.g_width": 32, "model.d_width": 32, "train.total_kimg": 230.4,
            "train.log_every_kimg": 1.28, "train.sample_every_kimg": 38.4,
            "train.checkpoint_every_kimg": 38.4},
    "test": {"model.g_width": 8, "model.d_width": 8, **TEST_SCHEDULE},
}


def get_config(variant: str | None = None) -> Config:
    return variant_config("dcgan_fashion_mnist", VARIANTS, variant)

"""DCGAN on Fashion-MNIST at its native 28x28, non-saturating loss, Adam 2e-4 / beta1 0.5.

Full run (20 epochs = 1200 kimg, the "Are GANs Created Equal?" budget; for a GPU):
    python -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py \
        --workdir runs/dcgan_fashion_mnist
    Logs fid10k (10k samples vs the 10k test images, clean resize) every 300 kimg and at the end.
    Expected: not yet measured.

`:cpu`, the README quickstart (about 6 minutes on 2 CPU cores, 345.6 kimg = 5.8 epochs; the
matmul convolutions of gan_jax.models.convolution made the step 1.5x faster on the CPU, and the
quickstart spends that on 1.5x the images of its first version, 230.4 kimg):
    python -m experiments.train --config experiments/configs/dcgan_fashion_mnist.py:cpu \
        --workdir runs/dcgan_fashion_mnist_cpu
    python -m experiments.evaluate --run runs/dcgan_fashion_mnist_cpu --metrics fid10k
    Expected: recognisable shirts, trousers, sneakers, dresses and bags in samples/latest.png;
    the recorded run and its fid10k are in experiments/results/README.md.

`:test`, a few steps of a tiny model for the test suite.
"""

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

VARIANTS = {
    None: {"eval.metrics": "fid10k", "eval.every_kimg": 300.0},
    "cpu": {"model.g_width": 32, "model.d_width": 32, "train.total_kimg": 345.6,
            "train.log_every_kimg": 1.28, "train.sample_every_kimg": 57.6,
            "train.checkpoint_every_kimg": 57.6},
    "test": {"model.g_width": 8, "model.d_width": 8, **TEST_SCHEDULE},
}


def get_config(variant: str | None = None) -> Config:
    return variant_config("dcgan_fashion_mnist", VARIANTS, variant)

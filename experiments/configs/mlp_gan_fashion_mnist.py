"""The original GAN (Goodfellow et al. 2014) on Fashion-MNIST: ReLU MLP generator (2 x 1200),
maxout discriminator (2 x 240 units of 5 pieces, dropout 0.5), minimax loss as in the paper's
equation, with Adam 2e-4 / beta1 0.5 in place of the paper's momentum SGD.

Full run (20 epochs = 1200 kimg):
    python -m experiments.train --config experiments/configs/mlp_gan_fashion_mnist.py \
        --workdir runs/mlp_gan_fashion_mnist
    Expected: not measured yet (no GPU has been available; add eval.metrics=fid10k to have
    the run report its FID).

`:ns` swaps in the non-saturating generator loss the paper recommends in practice.
`:test`, a few steps of a tiny model for the test suite.
"""

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

BASE = {"model.arch": "mlp", "model.g_width": 1200, "model.d_width": 240,
        "train.loss": "minimax", "train.batch_size": 100}

VARIANTS = {
    None: {},
    "ns": {"train.loss": "non_saturating"},
    "test": {"model.g_width": 32, "model.d_width": 16, **TEST_SCHEDULE},
}


def get_config(variant: str | None = None) -> Config:
    return variant_config("mlp_gan_fashion_mnist", VARIANTS, variant, base=BASE)

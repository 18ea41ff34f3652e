"""The class-conditional GAN of the augmentation study, trained on a small labelled subset.

    python -m experiments.augmentation_study run --out runs/augmentation_study

(the study trains this config once per seed, with data.subset_seed and train.seed set to the
seed). On its own:
    python -m experiments.train --config experiments/configs/augmentation_study.py \
        --workdir runs/cgan_100_per_class

DCGAN networks at 28x28 with conditional BatchNorm in G and the projection discriminator
(Miyato & Koyama 2018), hinge loss, spectral norm in D, Adam (0, 0.9), a generator EMA and
DiffAugment translation + cutout: with 1,000 training images D overfits quickly, and
DiffAugment is what Zhao et al. 2020 found to matter most there. 600 kimg = 600 epochs of the
1,000 images. Expected: not yet measured.

`:test` is a tiny model and a few steps for the test suite.
"""

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

CGAN = {"data.per_class": 100, "model.conditioning": "projection", "train.loss": "hinge",
        "model.spectral_norm": "d", "model.d_norm": "none", "optim.b1": 0.0, "optim.b2": 0.9,
        "optim.ema_kimg": 10.0, "optim.ema_rampup": 0.05,
        "augment.policy": "translation,cutout", "train.total_kimg": 600.0,
        "train.sample_every_kimg": 60.0, "train.checkpoint_every_kimg": 60.0,
        "eval.metrics": "", "eval.every_kimg": None}

VARIANTS = {
    None: CGAN,
    "test": {**CGAN, "data.per_class": 8, "model.g_width": 8, "model.d_width": 8,
             "model.latent_dim": 16, **TEST_SCHEDULE, "train.batch_size": 16},
}


def get_config(variant: str | None = None) -> Config:
    return variant_config("augmentation_study", VARIANTS, variant)

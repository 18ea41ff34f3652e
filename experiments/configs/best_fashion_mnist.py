"""Candidates for the best Fashion-MNIST recipe within the "Are GANs Created Equal?" budget
(1200 kimg of real images, batch 64, 28x28), and the rows of its ablation.

    python -m experiments.fid_study run --experiment experiments/configs/best_fashion_mnist.py \
        --rows dcgan_ns,dcgan_ns_ema,dcgan_ns_ema_decay,dcgan_hinge_sn_ema --seeds 0

Each row adds one ingredient to `dcgan_ns_ema` or to the row before it, so the table of their
FIDs is the ablation:

  dcgan_ns                    DCGAN at 28x28 (ngf = ndf = 64, BatchNorm in both, z 100), the
                              non-saturating loss, Adam 2e-4 (0.5, 0.999): Radford et al.'s.
  dcgan_ns_ema                + samples and FID from an EMA of G (10 kimg half-life with
                              StyleGAN2's ramp-up; Karras et al. 2018, Yazici et al. 2019),
                              with BigGAN's standing statistics (16 batches) for its BatchNorm:
                              the training's running averages (momentum 0.9, the last ~10
                              steps) come from the raw weights, not from the averaged ones.
  dcgan_ns_ema_decay          + both learning rates decayed linearly to zero over the 1200 kimg
                              (as WGAN-GP's and SNGAN's recipes do): the last steps anneal
                              instead of oscillating at full rate, and the EMA averages them.
  dcgan_hinge_sn_ema          + the hinge loss and spectral norm on every D layer instead of its
                              BatchNorm, Adam 2e-4 (0, 0.9) (Miyato et al. 2018).
  dcgan_hinge_sn_ema_diffaug  + DiffAugment translation + cutout on every image D sees (Zhao et
                              al. 2020), which keeps D from memorising the 60k images.
  infogan_ns_ema              the table's NS GAN row (Lucic et al.'s InfoGAN networks) with the
                              same EMA: what the EMA alone does to a row of the table.
  dcgan_ns_ema_cond           `dcgan_ns_ema` made class-conditional, as the labels of
                              Fashion-MNIST allow: class-conditional BatchNorm in G and the
                              projection discriminator (Miyato & Koyama 2018) on D's BatchNorm
                              body; evaluated on 10k images of balanced classes (1000 each, as
                              the test split). Conditional GANs score well below unconditional
                              ones on the same networks (e.g. SNGAN's CIFAR-10 FIDs), and the
                              labels cost nothing here; this row uses them, the others do not.

`.test` is a tiny model and a few steps, for the test suite.
"""

from __future__ import annotations

from experiments.configs.lucic_fashion_mnist import INFOGAN, RECIPES as LUCIC
from gan_jax.config import TEST_SCHEDULE, Config, variant_config

DCGAN_28 = {"model.arch": "dcgan", "model.resolution": 28, "model.channels": 1,
            "model.latent_dim": 100, "model.g_width": 64, "model.d_width": 64,
            "train.batch_size": 64, "train.total_kimg": 1200.0,
            "train.sample_every_kimg": 120.0, "train.checkpoint_every_kimg": 60.0}
_NS = {"train.loss": "non_saturating", "optim.g_lr": 2e-4, "optim.d_lr": 2e-4,
       "optim.b1": 0.5, "optim.b2": 0.999}
_EMA = {"optim.ema_kimg": 10.0, "optim.ema_rampup": 0.05, "eval.standing_stats": 16}
_HINGE_SN = {"train.loss": "hinge", "model.spectral_norm": "d", "model.d_norm": "none",
             "optim.b1": 0.0, "optim.b2": 0.9}
_DIFFAUG = {"augment.policy": "translation,cutout"}
_DECAY = {"optim.lr_decay": "linear"}  # to zero at train.total_kimg

RECIPES: dict[str, dict[str, object]] = {
    "dcgan_ns": {**DCGAN_28, **_NS},
    "dcgan_ns_ema": {**DCGAN_28, **_NS, **_EMA},
    "dcgan_ns_ema_decay": {**DCGAN_28, **_NS, **_EMA, **_DECAY},
    "dcgan_hinge_sn_ema": {**DCGAN_28, **_NS, **_EMA, **_HINGE_SN},
    "dcgan_hinge_sn_ema_diffaug": {**DCGAN_28, **_NS, **_EMA, **_HINGE_SN, **_DIFFAUG},
    "infogan_ns_ema": {**INFOGAN, **LUCIC["ns_gan"], **_EMA},
    "dcgan_ns_ema_cond": {**DCGAN_28, **_NS, **_EMA, "model.conditioning": "projection"},
}
TEST = {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16, **TEST_SCHEDULE}

VARIANTS = {**RECIPES, **{f"{name}.test": {**recipe, **TEST} for name, recipe in RECIPES.items()}}


def get_config(variant: str | None = None) -> Config:
    return variant_config("best_fashion_mnist", VARIANTS, variant)

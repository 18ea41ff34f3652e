"""Progressive growing of GANs (Karras et al. 2018), on the one gan_jax train step.

    python -m experiments.train --config experiments/configs/progan.py --workdir runs/progan

Every variant has the paper's training: WGAN-GP (lambda 10) with the drift term 0.001 on D's
real outputs, one D update per G update, Adam lr 0.001, betas (0, 0.99), epsilon 1e-8, the
optimizer state reset at every stage boundary (the official code's reset_opt_for_new_lod),
minibatch stddev over groups of 4 (16 for CelebA), pixel norm, equalised learning rates, and
samples and FID from an EMA of G. A stage is (resolution, fading or stable): each resolution trains
`model.progan.stable_kimg`, then the next one fades in over `fade_kimg`.

Variants:
  fashion_mnist (default)  Fashion-MNIST zero-padded to 32x32, 4 -> 8 -> 16 -> 32, within the
                 "Are GANs Created Equal?" budget of 1200 kimg: nf = min(256 / 2^r, 64)
                 channels (64, 64, 32, 16 at 4, 8, 16, 32), z of 64 (the official latent
                 size is nf(0)), 100 kimg per stage, 600 stable at 32x32, batch 64, an EMA of G
                 with a 10 kimg half-life; fid10k at the end. About 3 hours of training on
                 a 2-core CPU, whether on one core or two: 74-77 real images/s at 32x32 on
                 one (the 360-kimg run's log), 84-87 on two (cpu_speed.md); not measured.
  fashion_mnist_360kimg  the same networks on a schedule one CPU core trains in 48 minutes:
                 40 kimg per stage (stable and fading), so 32x32 fades in from 200 to 240
                 kimg and trains stable to 360. Measured: clean fid10k 105.5 (the floor at
                 32x32: 2.90), far behind the DCGAN recipes (experiments/results/
                 fid_fashion_mnist.md).
  celeba         CelebA (tensorflow-datasets `celeb_a`) as the official dataset tool cuts it:
                 the 128x128 square centred on (121, 89), no resize; 4 -> ... -> 128 with the
                 paper's networks (fmap_base 8192, fmap_max 512, z 512) and its runs' settings
                 (the official v1 preset): 800 kimg per stage, batch 16, minibatch stddev
                 over groups of 16, horizontal flips, the EMA decay 0.999 per step (an 11 kimg
                 half-life at batch 16); for users with the data and a GPU.
  celeba_v2      the same data and networks with the official code's later preset (v2):
                 600 kimg per stage, minibatch stddev over groups of 4, and per-resolution
                 batches (model.progan.batch_sizes) of 128 at 4x4-16x16, 64 at 32x32, 32 at
                 64x64 and 16 at 128x128; the EMA keeps the v1 half-life in images.
  NAME.test      a tiny model and a few steps, from the last but one side to the final one,
                 for the test suite.
"""

from __future__ import annotations

import math

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

# The EMA decay beta per step at batch B is a half-life of B ln(0.5) / ln(beta) images.
_EMA_0999_AT_16 = 16 * math.log(0.5) / math.log(0.999) / 1000

PAPER = {"model.arch": "progan", "model.minibatch_std": 4,
         "train.loss": "wasserstein", "train.n_critic": 1,
         "reg.penalty": "wgan_gp", "reg.penalty_weight": 10.0, "reg.drift": 0.001,
         "optim.g_lr": 1e-3, "optim.d_lr": 1e-3, "optim.b1": 0.0, "optim.b2": 0.99,
         "optim.eps": 1e-8}

FASHION_MNIST = {"model.resolution": 32, "data.fit": "pad", "model.latent_dim": 64,
                 "model.progan.fmap_base": 256, "model.progan.fmap_max": 64,
                 "model.progan.stable_kimg": 100.0, "model.progan.fade_kimg": 100.0,
                 "train.batch_size": 64, "train.total_kimg": 1200.0,
                 "optim.ema_kimg": 10.0, "eval.metrics": "fid10k"}
FASHION_MNIST_360KIMG = {**FASHION_MNIST, "model.progan.stable_kimg": 40.0,
                         "model.progan.fade_kimg": 40.0, "train.total_kimg": 360.0}
CELEBA = {"data.source": "tfds", "data.dataset": "celeb_a", "data.crop": "57,25,128",
          "data.mirror": True, "model.channels": 3, "model.resolution": 128,
          "model.latent_dim": 512, "model.minibatch_std": 16, "model.progan.stable_kimg": 800.0,
          "model.progan.fade_kimg": 800.0, "train.batch_size": 16, "train.total_kimg": 12000.0,
          "optim.ema_kimg": round(_EMA_0999_AT_16, 2), "eval.metrics": "fid10k",
          "eval.every_kimg": 1200.0}
# 16 images per step, 16x16 -> 32x32 in 5 steps: two stable at 16x16, two fading in 32x32
# (alpha 1/3, 2/3; a step at exactly stable_kimg still counts as stable), one stable at 32x32.
CELEBA_V2 = {**CELEBA, "model.minibatch_std": 4, "model.progan.stable_kimg": 600.0,
             "model.progan.fade_kimg": 600.0,
             "model.progan.batch_sizes": "4:128,8:128,16:128,32:64,64:32,128:16"}
TEST = {"model.latent_dim": 16, "model.progan.fmap_base": 64, "model.progan.fmap_max": 16,
        "model.progan.stable_kimg": 0.016,
        "model.progan.fade_kimg": 0.048, **TEST_SCHEDULE, "train.total_kimg": 0.08,
        "eval.metrics": "", "eval.every_kimg": None}

VARIANTS = {None: FASHION_MNIST, "fashion_mnist": FASHION_MNIST, "celeba": CELEBA,
            "fashion_mnist_360kimg": FASHION_MNIST_360KIMG,
            "fashion_mnist.test": {**FASHION_MNIST, **TEST, "model.progan.start_resolution": 16},
            "celeba.test": {**CELEBA, **TEST, "model.progan.start_resolution": 64},
            "celeba_v2": CELEBA_V2}


def get_config(variant: str | None = None) -> Config:
    return variant_config("progan", VARIANTS, variant, base=PAPER)

"""The "Are GANs Created Equal?" Fashion-MNIST rows (Lucic et al. 2018, arXiv 1711.10337).

    python -m experiments.train --config experiments/configs/lucic_fashion_mnist.py:ns_gan \
        --workdir runs/lucic/ns_gan

Every row trains the paper's InfoGAN-style networks (`model.arch=infogan`, gan_jax/models/
infogan.py: G FC 1024 - FC 128x7x7 - deconv 64 - deconv 1, D conv 64 - conv 128 - FC 1024 -
FC 1) on 28x28 Fashion-MNIST with batch 64, a 64-dimensional latent and 20 epochs (1200 kimg) of
real images shown to D, the paper's budget. Lucic et al. report each loss's best of a
100-configuration search; here each row is one recipe, the settings of the loss's own paper,
which lie inside the ranges Lucic et al. searched (learning rate, Adam's betas, critic updates,
penalty weight):

  mm_gan   Goodfellow et al. 2014's minimax loss; Adam 2e-4, betas (0.5, 0.999) (DCGAN's).
  ns_gan   the non-saturating generator loss; the same Adam.
  lsgan    Mao et al. 2017's least squares (a=0, b=c=1); the same Adam.
  wgan     Arjovsky et al. 2017: weight clipping at 0.01, RMSprop 5e-5, 5 critic updates per
           generator update.
  wgan_gp  Gulrajani et al. 2017's gradient penalty 10 and Adam 1e-4 with betas (0.5, 0.9)
           (their MNIST code's), no BatchNorm in the critic, but one critic update per
           generator update, not their five: Lucic et al.'s narrow range, the one they kept
           after pruning the wide search (compare_gan's params.py: learning rate 1e-4 to 1e-3,
           beta1 0.5, one critic update, penalty 0.1 to 10). Five critic updates leave G 3750
           updates in 1200 kimg, the wgan row's recipe, which ends far above its published FID.
  dragan   Kodali et al. 2017: the non-saturating loss and the DRAGAN penalty 10 around real
           data, Adam 1e-4 with betas (0.5, 0.9), no BatchNorm in D.

One more row, beside the table rather than in it: `wgan_narrow`, weight clipping from Lucic et
al.'s narrow range instead of Arjovsky et al.'s settings (compare_gan's params.py: Adam with
beta1 0.5, learning rate 1e-4 to 1e-3, one critic update, clipping 0.01 to 1, BatchNorm in D
or not): Adam 1e-4 with betas (0.5, 0.999), clipping 0.01, one critic update, BatchNorm in the
critic, each the range's default. It is compared with WGAN's published figure.

Two things differ from compare_gan: the latent is N(0, I) (compare_gan draws U(-1, 1)), and
the images are in [-1, 1] with G's sigmoid rescaled to match (2 * sigmoid - 1). `.test` is a
tiny model and a few steps, for the test suite.
"""

from __future__ import annotations

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

INFOGAN = {"model.arch": "infogan", "model.resolution": 28, "model.channels": 1,
           "model.latent_dim": 64, "model.g_width": 64, "model.d_width": 64,
           "model.bn_momentum": 0.999, "train.batch_size": 64, "train.total_kimg": 1200.0,
           "train.sample_every_kimg": 120.0, "train.checkpoint_every_kimg": 60.0}
_ADAM = {"optim.g_lr": 2e-4, "optim.d_lr": 2e-4, "optim.b1": 0.5, "optim.b2": 0.999}
_PENALTY_ADAM = {"optim.g_lr": 1e-4, "optim.d_lr": 1e-4, "optim.b1": 0.5, "optim.b2": 0.9}

RECIPES: dict[str, dict[str, object]] = {
    "mm_gan": {**_ADAM, "train.loss": "minimax"},
    "ns_gan": {**_ADAM, "train.loss": "non_saturating"},
    "lsgan": {**_ADAM, "train.loss": "least_squares"},
    "wgan": {"train.loss": "wasserstein", "reg.clip": 0.01, "train.n_critic": 5,
             "optim.optimizer": "rmsprop", "optim.g_lr": 5e-5, "optim.d_lr": 5e-5,
             "optim.b2": 0.99},
    "wgan_gp": {**_PENALTY_ADAM, "train.loss": "wasserstein", "reg.penalty": "wgan_gp",
                "reg.penalty_weight": 10.0, "model.d_norm": "none"},
    "dragan": {**_PENALTY_ADAM, "train.loss": "non_saturating", "reg.penalty": "dragan",
               "reg.penalty_weight": 10.0, "model.d_norm": "none"},
    "wgan_narrow": {"train.loss": "wasserstein", "reg.clip": 0.01, "optim.g_lr": 1e-4,
                    "optim.d_lr": 1e-4, "optim.b1": 0.5, "optim.b2": 0.999},
}
TEST = {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16, **TEST_SCHEDULE}

VARIANTS = {**{name: recipe for name, recipe in RECIPES.items()},
            **{f"{name}.test": {**recipe, **TEST} for name, recipe in RECIPES.items()}}


def get_config(variant: str | None = None) -> Config:
    return variant_config("lucic_fashion_mnist", VARIANTS, variant, base=INFOGAN)

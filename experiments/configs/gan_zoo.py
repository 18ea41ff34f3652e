"""The classic GANs, each a set of choices on the one gan_jax train step.

    python -m experiments.train --config experiments/configs/gan_zoo.py:wgan_gp \
        --workdir runs/wgan_gp

Variants are `NAME`, `NAME.cifar10` and either with `.test` appended:
  mm_gan           Goodfellow et al. 2014: minimax loss, DCGAN networks, Adam 2e-4 / 0.5.
  ns_gan           the same with the non-saturating generator loss.
  lsgan            Mao et al. 2017: least squares (a=0, b=c=1).
  wgan             Arjovsky et al. 2017: Wasserstein loss, weight clipping 0.01, RMSprop 5e-5,
                   5 critic updates per generator update (Algorithm 1; the reference code's
                   100 critic updates early on and every 500th step are not reproduced).
  wgan_gp          Gulrajani et al. 2017: gradient penalty 10, layer-norm critic, Adam 1e-4
                   (0, 0.9), 5 critic updates.
  dragan           Kodali et al. 2017: non-saturating loss with the DRAGAN penalty 10 around
                   real data, layer-norm critic.
  hinge_sngan      Miyato et al. 2018's hinge loss and spectral norm in D, on the DCGAN
                   networks (not SNGAN's "standard CNN" layer by layer), Adam 2e-4 / 0.5.
  sngan_resnet     the SNGAN ResNet (32x32; Fashion-MNIST is zero-padded): hinge, spectral
                   norm, Adam 2e-4 (0, 0.9), 5 D updates, rates decayed linearly to zero.
  cgan_projection  Miyato & Koyama 2018: sngan_resnet with conditional BatchNorm in G and the
                   projection discriminator.
  acgan            Odena et al. 2017: DCGAN networks with class-conditional BatchNorm in G and
                   an auxiliary classifier on D.
  sngan_ema_diffaug  the project's candidate for its best Fashion-MNIST recipe: hinge_sngan
                   with Adam (0, 0.9), a generator EMA (10 kimg half-life, StyleGAN2's ramp-up;
                   samples and FID use it) and DiffAugment translation + cutout on every image
                   D sees. Not tuned; its Fashion-MNIST ablation is best_fashion_mnist.py.
  biggan           Brock et al. 2019 at 32x32, conditional: BigGAN-PyTorch's networks with
                   StudioGAN's CIFAR-10 settings (configs/CIFAR10/BigGAN.yaml: z 80 in 4
                   hierarchical chunks, shared embedding 128, G 4 x 96 and D 4 x 48 channels,
                   self-attention at 16x16 after G's second and D's first block, spectral norm
                   in both, projection D, hinge, Adam 2e-4 (0.5, 0.999), batch 64, 5 D updates,
                   orthogonal init, G EMA 0.9999 per step from step 1000, 100k G updates).
                   On Fashion-MNIST (padded to 32) it is sized for a 2-core CPU: G and D
                   ch = 8 (32 channels in every block), 2 D updates (the paper's ImageNet
                   ratio), an EMA of 20 kimg half-life from 64 kimg; not tuned.

Fashion-MNIST runs use the "Are GANs Created Equal?" budget: 20 epochs (1200 kimg) of real
images shown to D, and log fid10k every 300 kimg. `.cifar10` reads CIFAR-10 through
tensorflow-datasets (`data.tfds_data_dir=...` where it is stored) at 32x32x3; its ResNet
recipes train for SNGAN's 50k generator updates (5 x 64 x 50k = 16,000 kimg), so their linear
decay ends where the paper's does. `.test` is a tiny
model and a few steps, for the test suite. Quality figures for these recipes come from
experiments/fid_study.py and are not measured yet.
"""

from __future__ import annotations

from gan_jax.config import TEST_SCHEDULE, Config, variant_config

_DCGAN_ADAM = {"optim.g_lr": 2e-4, "optim.d_lr": 2e-4, "optim.b1": 0.5, "optim.b2": 0.999}
_SNGAN_ADAM = {"optim.g_lr": 2e-4, "optim.d_lr": 2e-4, "optim.b1": 0.0, "optim.b2": 0.9}
_RESNET_32 = {"model.arch": "resnet", "model.resolution": 32, "data.fit": "pad",
              "model.g_width": 256, "model.d_width": 128}

RECIPES: dict[str, dict[str, object]] = {
    "mm_gan": {**_DCGAN_ADAM, "train.loss": "minimax"},
    "ns_gan": {**_DCGAN_ADAM, "train.loss": "non_saturating"},
    "lsgan": {**_DCGAN_ADAM, "train.loss": "least_squares"},
    "wgan": {"train.loss": "wasserstein", "reg.clip": 0.01, "train.n_critic": 5,
             "optim.optimizer": "rmsprop", "optim.g_lr": 5e-5, "optim.d_lr": 5e-5,
             "optim.b2": 0.99},
    "wgan_gp": {"train.loss": "wasserstein", "reg.penalty": "wgan_gp", "reg.penalty_weight": 10.0,
                "model.d_norm": "layer", "train.n_critic": 5, "optim.g_lr": 1e-4,
                "optim.d_lr": 1e-4, "optim.b1": 0.0, "optim.b2": 0.9},
    "dragan": {**_DCGAN_ADAM, "train.loss": "non_saturating", "reg.penalty": "dragan",
               "reg.penalty_weight": 10.0, "model.d_norm": "layer"},
    "hinge_sngan": {**_DCGAN_ADAM, "train.loss": "hinge", "model.spectral_norm": "d",
                    "model.d_norm": "none"},
    "sngan_resnet": {**_RESNET_32, **_SNGAN_ADAM, "train.loss": "hinge",
                     "model.spectral_norm": "d", "train.n_critic": 5, "optim.lr_decay": "linear"},
    "cgan_projection": {**_RESNET_32, **_SNGAN_ADAM, "train.loss": "hinge",
                        "model.spectral_norm": "d", "train.n_critic": 5,
                        "optim.lr_decay": "linear", "model.conditioning": "projection"},
    "acgan": {**_DCGAN_ADAM, "train.loss": "non_saturating", "model.conditioning": "acgan"},
    "biggan": {"model.arch": "biggan", "model.resolution": 32, "data.fit": "pad",
               "model.latent_dim": 80, "model.biggan.shared_dim": 128,
               "model.g_width": 96, "model.d_width": 48, "model.attention_resolution": 16,
               "model.spectral_norm": "g_and_d", "model.conditioning": "projection",
               "train.loss": "hinge", **_DCGAN_ADAM, "train.n_critic": 5,
               # 0.9999 per G step of 5 x 64 real images: a half-life of 2218 kimg; from
               # step 1000 (320 kimg) on
               "optim.ema_kimg": 2218.0, "optim.ema_start_kimg": 320.0},
    "sngan_ema_diffaug": {**_SNGAN_ADAM, "train.loss": "hinge", "model.spectral_norm": "d",
                          "model.d_norm": "none", "optim.ema_kimg": 10.0,
                          "optim.ema_rampup": 0.05, "augment.policy": "translation,cutout"},
}

FASHION_MNIST = {"eval.metrics": "fid10k", "eval.every_kimg": 300.0}
CIFAR10 = {"data.source": "tfds", "data.dataset": "cifar10", "model.channels": 3,
           "model.resolution": 32, "data.fit": "resize", "eval.metrics": "fid10k",
           "eval.every_kimg": 300.0}
TEST = {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16, **TEST_SCHEDULE,
        "eval.metrics": "", "eval.every_kimg": None}


# SNGAN's CIFAR-10 schedule: 50k G updates of 5 D updates on 64 images; StudioGAN's BigGAN
# 100k.
CIFAR10_SCHEDULES = {**{name: {"train.total_kimg": 16000.0}
                        for name in ("sngan_resnet", "cgan_projection")},
                     "biggan": {"train.total_kimg": 32000.0}}
# Fashion-MNIST sizes of the recipes whose own are a GPU's: trained on 2 CPU cores within the
# 1200 kimg budget.
FASHION_MNIST_SIZES = {"biggan": {"model.g_width": 8, "model.d_width": 8, "train.n_critic": 2,
                                  "optim.ema_kimg": 20.0, "optim.ema_start_kimg": 64.0}}


def _variants() -> dict[str, dict[str, object]]:
    variants = {}
    for name, recipe in RECIPES.items():
        cifar10 = {**CIFAR10, **CIFAR10_SCHEDULES.get(name, {})}
        for suffix, data in (("", FASHION_MNIST), (".cifar10", cifar10)):
            # CIFAR-10's 32x32x3 overrides the recipe; on Fashion-MNIST the recipe's own
            # resolution and fitting (e.g. the ResNet's 32x32 padding) win.
            variants[name + suffix] = ({**recipe, **data} if suffix
                                       else {**data, **recipe, **FASHION_MNIST_SIZES.get(name, {})})
            variants[name + suffix + ".test"] = {**variants[name + suffix], **TEST}
    return variants


VARIANTS = _variants()


def get_config(variant: str | None = None) -> Config:
    return variant_config("gan_zoo", VARIANTS, variant)

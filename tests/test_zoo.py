"""The named GAN recipes build and step, and contradictory choices are refused by name."""

import jax
import numpy as np
import pytest

from experiments.configs import best_fashion_mnist, lucic_fashion_mnist
from experiments.configs.gan_zoo import RECIPES, VARIANTS
from gan_jax.compatibility import check_labels
from gan_jax.config import load_config, with_overrides
from gan_jax.errors import UserError
from gan_jax.train import build_gan, init_state, train_step_for
from tests.conftest import REPO, requires_fashion_mnist
from tests.helpers import leaves, random_batch, tiny_config

ZOO = REPO / "experiments" / "configs" / "gan_zoo.py"
LUCIC = REPO / "experiments" / "configs" / "lucic_fashion_mnist.py"
BEST = REPO / "experiments" / "configs" / "best_fashion_mnist.py"
EXPERIMENTS = {"zoo": ZOO, "lucic": LUCIC, "best": BEST}


def _config(variant, experiment=ZOO):
    return load_config(f"{experiment}:{variant}")


@pytest.mark.parametrize("variant", [*sorted(VARIANTS), *(
    pytest.param(name, id=f"best:{name}") for name in sorted(best_fashion_mnist.RECIPES))])
def test_every_variant_builds_and_initialises(variant, request):
    config = _config(variant, BEST if request.node.callspec.id.startswith("best:") else ZOO)
    gan = build_gan(config)
    state = jax.eval_shape(lambda key: init_state(gan, key), jax.random.key(0))
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.g_params))
    if ".cifar10" in variant:
        assert gan.image_shape == (32, 32, 3)


# The ResNet recipes (5 D updates of a ResNet in the scan) take 15-30 s each to compile on two
# CPU cores; they and the CIFAR-10 variants (32x32x3, the same combinations at another shape)
# are in the slow suite. The ResNet itself is tested against PyTorch in the default suite.
# So are wgan_gp and sngan_ema_diffaug (13 s each): dragan steps the penalty and
# test_step_options.py DiffAugment in the default suite.
_SLOW_RECIPES = ("sngan_resnet", "cgan_projection", "biggan", "wgan_gp", "sngan_ema_diffaug")


@pytest.mark.parametrize("variant", [
    *(pytest.param(f"{name}.test", marks=[pytest.mark.slow] if name in _SLOW_RECIPES else [])
      for name in sorted(RECIPES)),
    *(pytest.param(f"{name}.cifar10.test", marks=pytest.mark.slow) for name in sorted(RECIPES)),
    # The InfoGAN networks with a BatchNorm D (ns_gan) by default; the other losses are the
    # zoo's, tested above on the DCGAN networks.
    *(pytest.param(f"{name}.test", id=f"lucic:{name}",
                   marks=[] if name == "ns_gan" else [pytest.mark.slow])
      for name in sorted(lucic_fashion_mnist.RECIPES)),
    # The best-recipe candidates: the zoo's combinations at 28x28 (sngan_ema_diffaug is the
    # last of them at the zoo's width), so in the slow suite.
    *(pytest.param(f"{name}.test", id=f"best:{name}", marks=pytest.mark.slow)
      for name in sorted(best_fashion_mnist.RECIPES))])
def test_every_recipe_runs_one_finite_step_on_tiny_data(variant, request):
    """Each (loss x architecture x conditioning x regulariser) combination of the zoo, and each
    row of the "Are GANs Created Equal?" table on its InfoGAN networks."""
    experiment = request.node.callspec.id.partition(":")[0]
    config = _config(variant, EXPERIMENTS.get(experiment, ZOO))
    gan = build_gan(config)
    before = init_state(gan, jax.random.key(0))
    after, metrics = jax.jit(train_step_for(gan))(before, random_batch(config), jax.random.key(1))
    metrics = jax.device_get(metrics)
    assert metrics["finite"], {k: v for k, v in metrics.items() if not np.all(np.isfinite(v))}
    for tree in ("g_params", "d_params"):
        assert any(not np.array_equal(a, b) for a, b in
                   zip(leaves(getattr(before, tree)), leaves(getattr(after, tree)),
                       strict=True)), tree
    if config.reg.penalty != "none":
        assert metrics["penalty"] > 0
    if config.model.conditioning == "acgan":
        assert metrics["d_class_loss"] > 0 and metrics["g_class_loss"] > 0


INCOMPATIBLE = [  # (overrides, words the message must contain)
    ({"reg.clip": 0.01, "reg.penalty": "wgan_gp", "model.d_norm": "layer",
      "train.loss": "wasserstein"}, ["reg.clip=0.01", "reg.penalty='wgan_gp'"]),
    ({"train.loss": "wasserstein"}, ["train.loss='wasserstein'", "reg.clip"]),
    ({"train.loss": "wasserstein", "reg.penalty": "dragan", "model.d_norm": "layer"},
     ["train.loss='wasserstein'", "reg.penalty='dragan'"]),
    ({"optim.ema_rampup": 0.05}, ["optim.ema_rampup", "optim.ema_kimg"]),
    ({"reg.top_k_min": 0.5, "train.loss": "relativistic_pairing"},
     ["reg.top_k_min", "train.loss='relativistic_pairing'"]),
    ({"optim.decay_kimg": 100.0}, ["optim.decay_kimg", "optim.lr_decay=linear"]),
    ({"reg.lecam_decay": 0.9}, ["reg.lecam_decay", "reg.lecam_weight"]),
    ({"reg.top_k_decay": 0.9}, ["reg.top_k_decay", "reg.top_k_min"]),
    ({"reg.top_k_epoch_kimg": 50.0}, ["reg.top_k_epoch_kimg", "reg.top_k_min"]),
    ({"reg.class_weight": 0.5}, ["reg.class_weight", "model.conditioning=acgan"]),
    ({"reg.penalty": "r1"}, ["reg.penalty='r1'", "model.d_norm"]),
    # InfoGAN's D has BatchNorm by default too (Lucic et al. drop it for penalised critics).
    ({"model.arch": "infogan", "reg.penalty": "wgan_gp", "train.loss": "wasserstein"},
     ["reg.penalty='wgan_gp'", "model.d_norm"]),
    ({"reg.penalty_every": 4}, ["reg.penalty_every=4", "reg.penalty='none'"]),
    ({"reg.label_smoothing": 0.1, "train.loss": "hinge"},
     ["reg.label_smoothing=0.1", "train.loss='hinge'"]),
    ({"augment.ada_target": 0.6}, ["augment.ada_target=0.6", "augment.policy"]),
    ({"augment.policy": "color,zoom"}, ["augment.policy", "'zoom'"]),
    ({"model.conditioning": "projection", "model.num_classes": 1},
     ["model.conditioning='projection'", "model.num_classes"]),
    ({"model.minibatch_std": 3}, ["model.minibatch_std=3", "train.batch_size=16"]),
    ({"model.arch": "mlp", "model.d_norm": "layer"}, ["model.arch='mlp'", "model.d_norm"]),
    ({"model.spectral_norm": "g"}, ["model.spectral_norm='g'"]),
    ({"optim.optimizer": "sgd"}, ["optim.optimizer='sgd'"]),
    ({"train.n_critic": 0}, ["train.n_critic=0"]),
    ({"augment.p": 1.5}, ["augment.p=1.5"]),
]


@pytest.mark.parametrize("overrides,words", INCOMPATIBLE)
def test_contradictory_choices_are_refused_naming_both(overrides, words):
    with pytest.raises(UserError) as error:
        build_gan(tiny_config(**{k.replace(".", "__"): v for k, v in overrides.items()}))
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_conditioning_on_an_unlabelled_dataset_is_refused(conditioning):
    config = with_overrides(tiny_config(), {"model.conditioning": conditioning})
    with pytest.raises(UserError, match=f"model.conditioning='{conditioning}'.*'celeb_a'"):
        check_labels(config, num_classes=0, dataset="celeb_a")
    with pytest.raises(UserError, match="model.num_classes=10.*100 classes"):
        check_labels(config, num_classes=100, dataset="cifar100")
    check_labels(config, num_classes=10, dataset="fashion_mnist")  # matching: accepted


def test_unknown_zoo_variant_lists_the_choices():
    with pytest.raises(UserError, match="unknown variant 'wgan_gpp'.*wgan_gp"):
        _config("wgan_gpp")


@requires_fashion_mnist
def test_training_loop_counts_every_critic_batch_as_shown_images(tmp_path):
    """wgan.test: batch 16 x 5 critic updates = 80 real images per step, so 0.048 kimg is one
    step, and the logged kimg is 0.08; a conditional recipe gets the dataset's labels."""
    import json

    from gan_jax.loop import train
    config = with_overrides(_config("wgan.test"), {"model.conditioning": "acgan"})
    state = train(config, tmp_path, progress=False)
    assert int(state.step) == 1
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 1 and lines[-1]["kimg"] == pytest.approx(0.08)
    assert np.isfinite(lines[-1]["d_class_loss"])

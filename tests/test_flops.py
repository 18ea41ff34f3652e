"""Analytic FLOP counts against XLA's own count on the CPU.

XLA's CPU cost analysis counts convolutions (on the GPU it leaves out cuDNN's), so it is an
independent reference: exact for layers without padding, and a little lower than the analytic
count for SAME-padded convolutions (XLA skips taps that land in the padding) and for a whole step
(XLA prunes the unused input gradient of D's first layer).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from gan_jax import flops
from gan_jax.train import build_gan, discriminator_step, init_state, train_step_for
from tests.helpers import random_batch, tiny_config


def xla_flops(fn, *args) -> float:
    return jax.jit(fn).lower(*args).compile().cost_analysis()["flops"]


@pytest.mark.parametrize("layer, shape", [
    (nn.Dense(37, use_bias=False), (3, 5, 11)),
    (nn.Conv(16, (3, 3), padding="VALID", use_bias=False), (2, 9, 9, 8)),
    (nn.Conv(16, (4, 4), strides=2, padding="VALID", use_bias=False), (2, 10, 10, 8)),
    (nn.Conv(16, (3, 3), padding="VALID", feature_group_count=4, use_bias=False), (2, 9, 9, 8)),
    (nn.ConvTranspose(16, (4, 4), strides=(2, 2), padding="VALID", use_bias=False),
     (2, 5, 5, 8)),
], ids=["dense", "conv", "strided-conv", "grouped-conv", "conv-transpose"])
def test_layer_count_equals_xla_without_padding(layer, shape):
    x = jnp.zeros(shape)
    variables = layer.init(jax.random.key(0), x)
    counted = 2 * flops.count_macs(layer.apply, variables, x)
    assert counted == xla_flops(layer.apply, variables, x)


# Either way of computing the convolutions is the same network, counted once per layer (a
# layer that falls back to Flax's own call must not count twice).
@pytest.mark.parametrize("implementation", ["matmul", "xla"])
def test_dcgan_64_counts_every_layer_of_the_paper_network(implementation):
    # Hand count of the standard DCGAN at 64x64x3 (ngf = ndf = 64, z of 100), in multiply-adds:
    # G: z -> 4x4x512, then 4->8->16->32 transposed convs (k4) halving channels, then -> 3.
    g = 100 * 16 * 512 + 16 * 512 * 256 * 16 + 64 * 256 * 128 * 16 + 256 * 128 * 64 * 16 \
        + 1024 * 64 * 3 * 16
    # D: k4 s2 convs 3->64 at 32x32 out, 64->128 at 16, 128->256 at 8, 256->512 at 4, then 1.
    d = 1024 * 64 * 3 * 16 + 256 * 128 * 64 * 16 + 64 * 256 * 128 * 16 + 16 * 512 * 256 * 16 \
        + 16 * 512
    gan = build_gan(tiny_config(model__resolution=64, model__channels=3, model__g_width=64,
                                model__d_width=64, model__latent_dim=100,
                                model__conv_implementation=implementation))
    assert flops.network_flops(gan) == (2 * g, 2 * d)


def test_spectral_norm_adds_no_layer_calls():
    # Spectral norm's initialisation calls the wrapped layer twice; the count must not.
    plain = flops.network_flops(build_gan(tiny_config()))
    spectral = flops.network_flops(build_gan(tiny_config(model__spectral_norm="d",
                                                         model__d_norm="none")))
    assert spectral == plain


@pytest.mark.parametrize("overrides", [
    {},
    {"model__arch": "mlp", "model__g_width": 64, "model__d_width": 32},
    pytest.param({"model__arch": "resnet", "model__resolution": 32, "model__g_width": 16,
                  "model__d_width": 16}, marks=pytest.mark.slow),
    # D's extra passes: bCR's transformed batches, RpGAN's real batch in the G update.
    {"reg__consistency_real": 10.0, "reg__consistency_fake": 10.0},
    {"train__loss": "relativistic_pairing"},
    {"train__g_latents": "fresh"},  # G's update runs G forward on latents of its own
], ids=["dcgan", "mlp", "resnet", "bcr", "rpgan", "fresh_g_latents"])
def test_step_count_is_close_to_xla(overrides):
    config = tiny_config(train__batch_size=8, **overrides)
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    measured = xla_flops(train_step_for(gan), state, random_batch(config), jax.random.key(1))
    assert 0.8 <= measured / flops.train_step_flops(gan).per_step <= 1.05


def test_each_extra_critic_update_costs_one_discriminator_step():
    # XLA counts a scan's body once, so n_critic is checked through the D step on its own.
    config = tiny_config(train__batch_size=8)
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    real = jnp.zeros((8, *gan.image_shape))
    d_step = xla_flops(lambda s, r, k: discriminator_step(gan, s, r, None, k, 0)[0],
                       state, real, jax.random.key(1))
    three = flops.train_step_flops(build_gan(tiny_config(train__batch_size=8,
                                                         train__n_critic=3)))
    one = flops.train_step_flops(gan)
    assert three.real_images_per_step == 24
    assert 0.8 <= d_step / ((three.per_step - one.per_step) / 2) <= 1.05


def test_self_attention_counts_its_projections_and_its_two_products():
    from gan_jax.models.layers import SelfAttention
    block, x = SelfAttention(), jnp.zeros((2, 8, 8, 64))
    variables = block.init(jax.random.key(0), x, train=False)
    apply = lambda v, inputs: block.apply(v, inputs, train=False)  # noqa: E731
    counted = 2 * flops.count_macs(apply, variables, x)
    positions = 64
    products = 2 * positions * (positions // 4) * (8 + 32)  # per image
    projections = positions * 64 * (8 + 8 + 32) + (positions // 1) * 32 * 64
    assert counted == 2 * 2 * (products // 2 + projections)
    # XLA also counts the softmax, pooling and the residual sum: a few percent more.
    assert counted <= xla_flops(apply, variables, x) <= 1.1 * counted


def test_a_growing_model_is_counted_at_its_final_level_batch():
    # With model.progan.batch_sizes the final level trains at its own batch, not at
    # train.batch_size: the count is that of a run whose every step has the final batch.
    from gan_jax.config import load_config, with_overrides
    base = load_config("experiments/configs/progan.py:fashion_mnist.test")
    listed = with_overrides(base, {"train.batch_size": 4, "model.minibatch_std": 2,
                                   "model.progan.batch_sizes": "16:8,32:6"})
    plain = with_overrides(base, {"train.batch_size": 6, "model.minibatch_std": 2})
    counted, expected = (flops.train_step_flops(build_gan(c)) for c in (listed, plain))
    assert counted.real_images_per_step == 6
    assert counted == expected

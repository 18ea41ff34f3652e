"""Shared layers against float64 NumPy: spectral norm, conditional BN, minibatch statistics,
and the discriminator head's projection and ACGAN outputs."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.config import MLPSettings, ModelConfig
from gan_jax.models import build_networks
from gan_jax.models.layers import (ConditionalBatchNorm, MinibatchDiscrimination, SpectralNorm,
                                   minibatch_stddev)


def _top_singular_value(kernel: np.ndarray) -> float:
    matrix = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


@pytest.mark.parametrize("layer,x_shape", [
    (nn.Dense(24), (5, 40)),
    (nn.Conv(16, (3, 3)), (2, 8, 8, 6)),  # a conv kernel is flattened to (3*3*6, 16)
])
def test_spectral_norm_estimate_converges_to_the_top_singular_value(layer, x_shape):
    model = SpectralNorm(layer)
    x = jax.random.normal(jax.random.key(0), x_shape)
    variables = model.init(jax.random.key(1), x, update_stats=True)
    step = jax.jit(lambda v: model.apply(v, x, update_stats=True, mutable=["batch_stats"])[1])
    stats = variables["batch_stats"]
    for _ in range(60):  # one power iteration per training call, as in PyTorch
        stats = step({**variables, "batch_stats": stats})["batch_stats"]
    kernel = np.asarray(variables["params"]["layer"]["kernel"], np.float64)
    matrix = kernel.reshape(-1, kernel.shape[-1])
    u = np.asarray(stats["layer/kernel/u"], np.float64)
    assert np.linalg.norm(matrix @ u) == pytest.approx(_top_singular_value(kernel), rel=0.01)


def test_spectral_norm_evaluation_uses_the_stored_u_and_changes_nothing():
    model = SpectralNorm(nn.Dense(3))
    x = jax.random.normal(jax.random.key(0), (4, 5))
    variables = model.init(jax.random.key(1), x, update_stats=True)
    _, updated = model.apply(variables, x, update_stats=True, mutable=["batch_stats"])
    variables = {**variables, **updated}
    # Other weights than the ones the iteration saw (as an EMA generator's are).
    params = jax.tree.map(lambda p: 1.5 * p + 0.1, variables["params"])["layer"]
    out = model.apply({**variables, "params": {"layer": params}}, x, update_stats=False)
    kernel = np.asarray(params["kernel"], np.float64)
    sigma = np.linalg.norm(kernel @ np.asarray(variables["batch_stats"]["layer/kernel/u"]))
    expected = np.asarray(x, np.float64) @ (kernel / sigma) + np.asarray(params["bias"])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_spectral_norm_stores_the_raw_initial_weights():
    x = jnp.ones((2, 5))
    spectral = SpectralNorm(nn.Dense(3, kernel_init=nn.initializers.constant(0.7)))
    kernel = spectral.init(jax.random.key(0), x, update_stats=True)["params"]["layer"]["kernel"]
    np.testing.assert_array_equal(kernel, np.full((5, 3), 0.7, np.float32))


def test_spectral_norm_keeps_the_gradient_through_sigma():
    """The gradient of W / sigma(W) differs from treating sigma as a constant (Miyato et al.)."""
    model = SpectralNorm(nn.Dense(1, use_bias=False))
    x = jax.random.normal(jax.random.key(0), (8, 3))
    variables = model.init(jax.random.key(1), x, update_stats=True)

    def loss(params):
        out, _ = model.apply({**variables, "params": params}, x, update_stats=True,
                             mutable=["batch_stats"])
        return jnp.sum(out)

    grads = jax.grad(loss)(variables["params"])["layer"]["kernel"]
    # For a (3, 1) kernel, W / sigma = W / ||W||: its output is scale-invariant in W, so the
    # gradient is orthogonal to W.
    kernel = variables["params"]["layer"]["kernel"]
    assert float(jnp.abs(jnp.sum(grads * kernel))) < 1e-5
    assert float(jnp.linalg.norm(grads)) > 1e-3


def test_conditional_batch_norm_uses_each_samples_class_gain_and_bias():
    layer = ConditionalBatchNorm(num_classes=3)
    x = jax.random.normal(jax.random.key(0), (6, 2, 2, 4)) * 3 + 1
    labels = jnp.array([0, 1, 2, 0, 1, 2])
    variables = layer.init(jax.random.key(1), x, labels, train=True)
    rng = np.random.default_rng(0)
    gain, bias = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    params = {"BatchNorm_0": variables["params"].get("BatchNorm_0", {}),
              "gain": {"embedding": jnp.asarray(gain, jnp.float32)},
              "bias": {"embedding": jnp.asarray(bias, jnp.float32)}}
    out, _ = layer.apply({**variables, "params": params}, x, labels, train=True,
                         mutable=["batch_stats"])
    x64 = np.asarray(x, np.float64)
    normalised = (x64 - x64.mean((0, 1, 2))) / np.sqrt(x64.var((0, 1, 2)) + 1e-5)
    expected = normalised * gain[labels][:, None, None] + bias[labels][:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_minibatch_stddev_matches_numpy():
    x = np.random.default_rng(0).normal(size=(8, 3, 3, 5)).astype(np.float32)
    out = np.asarray(minibatch_stddev(jnp.asarray(x), group_size=4))
    assert out.shape == (8, 3, 3, 6)
    np.testing.assert_array_equal(out[..., :5], x)
    groups = x.astype(np.float64).reshape(4, 2, 3, 3, 5)  # sample n is in subgroup n % 2
    stat = np.sqrt(groups.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    for n in range(8):
        np.testing.assert_allclose(out[n, ..., 5], stat[n % 2], rtol=1e-5)
    # Identical samples (mode collapse) give a zero statistic.
    same = np.asarray(minibatch_stddev(jnp.ones((4, 2, 2, 1)), group_size=4))
    assert np.abs(same[..., 1]).max() < 1e-3


def test_minibatch_discrimination_matches_numpy():
    layer = MinibatchDiscrimination(kernels=3, kernel_dim=2)
    f = jax.random.normal(jax.random.key(0), (5, 4))
    variables = layer.init(jax.random.key(1), f)
    out = np.asarray(layer.apply(variables, f))
    t = np.asarray(variables["params"]["Dense_0"]["kernel"], np.float64)
    m = (np.asarray(f, np.float64) @ t).reshape(5, 3, 2)
    expected = np.zeros((5, 3))
    for i in range(5):
        for j in range(5):
            if i != j:
                expected[i] += np.exp(-np.abs(m[i] - m[j]).sum(-1))
    np.testing.assert_allclose(out[:, 4:], expected, rtol=1e-5)
    np.testing.assert_array_equal(out[:, :4], f)


def _tiny_d(conditioning):
    config = ModelConfig(arch="mlp", resolution=4, channels=1, g_width=8, d_width=6,
                         mlp=MLPSettings(maxout_pieces=2), conditioning=conditioning,
                         num_classes=3)
    _, d = build_networks(config)
    images = jax.random.normal(jax.random.key(0), (4, 4, 4, 1))
    labels = jnp.array([0, 1, 2, 1])
    return d, d.init(jax.random.key(1), images, labels, train=False), images, labels


def test_projection_head_adds_the_class_embedding_inner_product():
    d, variables, images, labels = _tiny_d("projection")
    out = d.apply(variables, images, labels, train=False)
    p = variables["params"]
    h = np.asarray(out.features, np.float64)
    linear = h @ np.asarray(p["logit"]["kernel"], np.float64)[:, 0] + float(p["logit"]["bias"][0])
    projection = np.sum(np.asarray(p["projection"]["embedding"], np.float64)[labels] * h, -1)
    np.testing.assert_allclose(out.logits, linear + projection, rtol=1e-5, atol=1e-6)


def test_acgan_head_classifies_the_same_features():
    d, variables, images, labels = _tiny_d("acgan")
    out = d.apply(variables, images, labels, train=False)
    p = variables["params"]["classifier"]
    expected = (np.asarray(out.features, np.float64) @ np.asarray(p["kernel"], np.float64)
                + np.asarray(p["bias"]))
    assert out.class_logits.shape == (4, 3)
    np.testing.assert_allclose(out.class_logits, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_bfloat16_compute_keeps_float32_parameters(arch):
    # 8x8: bfloat16 convolutions are slow on CPUs.
    config = ModelConfig(arch=arch, resolution=8, g_width=8, d_width=8, latent_dim=8,
                         compute_dtype="bfloat16")
    g, d = build_networks(config)
    z = jnp.ones((2, 8))
    g_vars = g.init(jax.random.key(0), z, train=False)
    images = g.apply(g_vars, z, train=False)
    assert images.dtype == jnp.bfloat16
    assert {x.dtype for x in jax.tree.leaves(g_vars)} == {jnp.dtype(jnp.float32)}
    d_vars = d.init(jax.random.key(1), images, train=False)
    assert {x.dtype for x in jax.tree.leaves(d_vars)} == {jnp.dtype(jnp.float32)}
    assert d.apply(d_vars, images, train=False).logits.dtype == jnp.float32


def _torch_attention(x, theta, phi, g, o, gamma):
    """BigGAN-PyTorch's layers.Attention.forward with plain 1x1 convolutions, float64, NCHW."""
    import torch
    import torch.nn.functional as F
    conv = lambda inputs, kernel: F.conv2d(inputs, kernel.T[:, :, None, None])
    n, ch, height, width = x.shape
    theta_x = conv(x, theta).view(-1, ch // 8, height * width)
    phi_x = F.max_pool2d(conv(x, phi), [2, 2]).view(-1, ch // 8, height * width // 4)
    g_x = F.max_pool2d(conv(x, g), [2, 2]).view(-1, ch // 2, height * width // 4)
    beta = F.softmax(torch.bmm(theta_x.transpose(1, 2), phi_x), -1)
    attended = torch.bmm(g_x, beta.transpose(1, 2)).view(-1, ch // 2, height, width)
    return x + gamma * conv(attended, o)


def test_self_attention_matches_biggan_pytorch_in_float64():
    import torch
    from gan_jax.models.layers import SelfAttention
    x = np.random.default_rng(0).normal(size=(2, 8, 6, 16))  # NHWC, 16 channels
    block = SelfAttention(dtype=jnp.float64)
    with jax.enable_x64(True):
        params = block.init(jax.random.key(0), jnp.asarray(x), train=False)["params"]
        assert float(params["gamma"]) == 0.0  # the identity at initialisation
        params = dict(params, gamma=jnp.asarray(0.7, jnp.float64))
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
        out = np.asarray(block.apply({"params": params}, jnp.asarray(x), train=False))
    kernels = {name: torch.from_numpy(np.array(params[name]["kernel"], np.float64))
               for name in ("theta", "phi", "g", "o")}
    expected = _torch_attention(torch.from_numpy(x.transpose(0, 3, 1, 2)), **kernels,
                                gamma=0.7).numpy().transpose(0, 2, 3, 1)
    assert not np.allclose(out, x)  # the block changed something
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("arch, resolution, side", [("dcgan", 32, 8), ("dcgan", 28, 14),
                                                   ("resnet", 32, 16)])
def test_attention_at_a_resolution_sits_once_in_g_and_in_d(arch, resolution, side):
    from gan_jax.config import Config, with_overrides
    from gan_jax.errors import UserError
    from gan_jax.train import build_gan, init_state
    base = {"model.arch": arch, "model.resolution": resolution, "model.g_width": 16,
            "model.d_width": 16, "model.latent_dim": 8}
    gan = build_gan(with_overrides(Config(), {**base, "model.attention_resolution": side}))
    state = jax.eval_shape(lambda key: init_state(gan, key), jax.random.key(0))
    for tree in (state.g_params, state.d_params):
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]
        assert sum(p.endswith("['attention']['gamma']") for p in paths) == 1, paths
    with pytest.raises(UserError, match="model.attention_resolution=3"):
        build_gan(with_overrides(Config(), {**base, "model.attention_resolution": 3}))


def test_a_generator_with_attention_starts_as_the_one_without():
    """gamma = 0 at initialisation, and Flax derives every other layer's init from its name."""
    config = ModelConfig(resolution=16, g_width=16, latent_dim=8)
    z = jax.random.normal(jax.random.key(1), (2, 8))
    images = []
    for side in (0, 8):
        generator = build_networks(dataclasses.replace(config, attention_resolution=side)
                                   ).generator
        def sample(key, z, generator=generator):  # one compilation instead of op by op
            return generator.apply(generator.init(key, z, train=False), z, train=False)
        images.append(np.asarray(jax.jit(sample)(jax.random.key(0), z)))
    np.testing.assert_allclose(images[1], images[0], atol=1e-6)

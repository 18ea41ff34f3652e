"""Tests of BigGAN's generator and discriminator (gan_jax.models.biggan).

The strong check is a PyTorch transcription of BigGAN-PyTorch's networks
(experiments/benchmarks/torch_biggan.py): the Flax parameters and BatchNorm statistics are
copied into it and both must give the same images and logits, in training and in inference
mode, so a mis-wired block, a z chunk sent to the wrong block, a misplaced ReLU or a shortcut
that pools on the wrong side of its 1x1 fails here. The parameter count of the paper's 128x128
model (ch 96) pins the channel tables.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from experiments.benchmarks import torch_biggan
from gan_jax.config import BigGANSettings, ModelConfig
from gan_jax.errors import UserError
from gan_jax.models import build_networks
from tests.parity import assert_close, fast_jit, nchw, perturb, set_param

KEY = jax.random.PRNGKey(0)

# 32x32: conditional, hierarchical, self-attention at 16 (after G's second block and D's
# first). 64x64: unconditional, all of z to the first layer; its two parity tests (20 s) are in
# the slow suite, the 128x128 parameter count keeps the channel tables in the default one.
CASES = {
    "32_conditional_hierarchical_attention": ModelConfig(
        arch="biggan", resolution=32, channels=3, latent_dim=20, g_width=8, d_width=8,
        conditioning="projection", num_classes=3, attention_resolution=16,
        biggan=BigGANSettings(shared_dim=12)),
    "64_unconditional_flat": ModelConfig(
        arch="biggan", resolution=64, channels=1, latent_dim=16, g_width=4, d_width=4,
        conditioning="none", biggan=BigGANSettings(hierarchical=False)),
}


def _without_sn(config: ModelConfig) -> ModelConfig:
    # The transcription has no spectral norm: SpectralNorm has its own tests (test_layers).
    return dataclasses.replace(config, spectral_norm="none")


def _inputs(config: ModelConfig, n: int) -> tuple[jax.Array, jax.Array | None, jax.Array]:
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=(n, config.latent_dim)), jnp.float32)
    labels = (jnp.asarray(rng.integers(0, config.num_classes, n), jnp.int32)
              if config.conditioning != "none" else None)
    x = jnp.asarray(rng.uniform(-1, 1, (n, config.resolution, config.resolution,
                                        config.channels)), jnp.float32)
    return z, labels, x


def _load_conv(conv: torch.nn.Conv2d, p: dict) -> None:
    set_param(conv.weight, np.transpose(p["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
    if "bias" in p:
        set_param(conv.bias, p["bias"])


def _load_linear(linear: torch.nn.Linear, p: dict) -> None:
    set_param(linear.weight, np.asarray(p["kernel"]).T)
    if "bias" in p:
        set_param(linear.bias, p["bias"])


def _load_norm(norm: torch_biggan.ConditionalBatchNorm, p: dict, s: dict) -> None:
    bn_p, bn_s = p.get("BatchNorm_0", {}), s["BatchNorm_0"]
    if "scale" in bn_p:
        set_param(norm.bn.weight, bn_p["scale"])
        set_param(norm.bn.bias, bn_p["bias"])
    set_param(norm.bn.running_mean, bn_s["mean"])
    set_param(norm.bn.running_var, bn_s["var"])
    for name in ("gain", "bias"):
        if name in p:
            _load_linear(getattr(norm, name), p[name])


def _load_attention(attention: torch_biggan.Attention, p: dict) -> None:
    for name in ("theta", "phi", "g", "o"):
        kernel = np.asarray(p[name]["kernel"]).T[:, :, None, None]  # (in, out) -> OI11
        set_param(getattr(attention, name).weight, kernel)
    set_param(attention.gamma, p["gamma"])


def load_generator(ref: torch_biggan.Generator, params: dict, stats: dict) -> None:
    if ref.shared is not None:
        set_param(ref.shared.weight, params["shared"]["embedding"])
    _load_linear(ref.linear, params["linear"])  # channels-first columns on both sides
    for index, block in enumerate(ref.blocks):
        p, s = params[f"block{index}"], stats[f"block{index}"]
        for name in ("conv1", "conv2", "shortcut"):
            _load_conv(getattr(block, name), p[name])
        _load_norm(block.bn1, p["bn1"], s["bn1"])
        _load_norm(block.bn2, p["bn2"], s["bn2"])
    if ref.attention is not None:
        _load_attention(ref.attention, params["attention"])
    _load_norm(ref.output_bn, params["output_bn"], stats["output_bn"])
    _load_conv(ref.output, params["output"])


def load_discriminator(ref: torch_biggan.Discriminator, params: dict) -> None:
    body = params["body"]
    for index, block in enumerate(ref.blocks):
        p = body[f"block{index}"]
        for name in ("conv1", "conv2", "shortcut"):
            if getattr(block, name) is None:
                assert name not in p, f"block{index} has a {name} the reference lacks"
            else:
                _load_conv(getattr(block, name), p[name])
    if ref.attention is not None:
        _load_attention(ref.attention, body["attention"])
    _load_linear(ref.linear, params["logit"])
    if ref.embed is not None:
        set_param(ref.embed.weight, params["projection"]["embedding"])


def _reference_generator(c: ModelConfig) -> torch_biggan.Generator:
    classes = c.num_classes if c.conditioning != "none" else 0
    return torch_biggan.Generator(c.resolution, c.g_width, c.latent_dim, c.channels, classes,
                                  c.biggan.shared_dim, c.biggan.hierarchical,
                                  c.attention_resolution)


def _reference_discriminator(c: ModelConfig) -> torch_biggan.Discriminator:
    classes = c.num_classes if c.conditioning != "none" else 0
    return torch_biggan.Discriminator(c.resolution, c.d_width, c.channels, classes,
                                      c.attention_resolution)


def _torch(x: Any) -> torch.Tensor | None:
    return None if x is None else torch.from_numpy(np.asarray(x).copy())


PARITY_CASES = [pytest.param(case, marks=[pytest.mark.slow] if case.startswith("64") else [])
                for case in CASES]


@pytest.mark.parametrize("case", PARITY_CASES)
def test_generator_matches_the_torch_transcription(case: str) -> None:
    config = _without_sn(CASES[case])
    g, _ = build_networks(config)
    z, labels, _ = _inputs(config, 6)
    variables = fast_jit(lambda z, y: g.init(KEY, z, y, train=False))(z, labels)
    # Noise on every leaf (gamma starts at 0, gains at 1), then one training call moves the
    # running statistics away from (0, 1).
    params = perturb(variables["params"], 3, scale=0.1)
    train = fast_jit(lambda v, z, y: g.apply(v, z, y, train=True, mutable=["batch_stats"]))
    _, updated = train({**variables, "params": params}, z * 2 + 0.5, labels)
    variables = {"params": params, **updated}
    ref = _reference_generator(config)
    load_generator(ref, jax.device_get(params), jax.device_get(updated["batch_stats"]))
    eval_ours = fast_jit(lambda v, z, y: g.apply(v, z, y, train=False))(variables, z, labels)
    for mode, ours in ((False, eval_ours), (True, train(variables, z, labels)[0])):
        ref.train(mode)  # inference: the running statistics copied from Flax
        with torch.no_grad():
            expected = ref(_torch(z), _torch(labels)).numpy().transpose(0, 2, 3, 1)
        assert np.std(expected) > 0.05, mode  # neither constant nor saturated
        assert_close(ours, expected, rtol=1e-4)


@pytest.mark.parametrize("case", PARITY_CASES)
def test_discriminator_matches_the_torch_transcription(case: str) -> None:
    config = _without_sn(CASES[case])
    _, d = build_networks(config)
    _, labels, x = _inputs(config, 5)
    variables = fast_jit(lambda x, y: d.init(KEY, x, y, train=False))(x, labels)
    params = perturb(variables["params"], 4, scale=0.1)
    ours = fast_jit(lambda p, x, y: d.apply({"params": p}, x, y, train=False).logits)(params, x,
                                                                                  labels)
    ref = _reference_discriminator(config).eval()
    load_discriminator(ref, jax.device_get(params))
    with torch.no_grad():
        expected = ref(nchw(x), _torch(labels)).numpy()
    assert ours.shape == (5,) and np.std(expected) > 0
    assert_close(ours, expected, rtol=1e-4)


def _count(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _torch_count(make) -> int:
    with torch.device("meta"):  # shapes only: 70M parameters without allocating them
        return sum(p.numel() for p in make().parameters())


def test_the_papers_128x128_model_has_its_parameter_count() -> None:
    """BigGAN at 128x128, ch 96, 1000 classes, z 120 in 6 chunks, shared embedding 128,
    attention at 64: G has 70,433,988 parameters (the paper's 70.4M), D 87,982,370 (88.0M),
    in Flax and in the transcription alike."""
    config = ModelConfig(arch="biggan", resolution=128, channels=3, latent_dim=120, g_width=96,
                         d_width=96, spectral_norm="g_and_d", conditioning="projection",
                         num_classes=1000, attention_resolution=64)
    g, d = build_networks(config)
    z, y = jnp.zeros((2, 120)), jnp.zeros((2,), jnp.int32)
    g_params = jax.eval_shape(lambda: g.init(KEY, z, y, train=False))["params"]
    d_params = jax.eval_shape(lambda: d.init(KEY, jnp.zeros((2, 128, 128, 3)), y,
                                             train=False))["params"]
    assert _count(g_params) == _torch_count(lambda: _reference_generator(config)) == 70_433_988
    assert (_count(d_params) == _torch_count(lambda: _reference_discriminator(config))
            == 87_982_370)
    assert g_params["linear"]["kernel"].shape == (20, 4 * 4 * 1536)  # z's first chunk
    assert g_params["block0"]["bn1"]["gain"]["kernel"].shape == (128 + 20, 1536)


def test_spectral_norm_covers_every_layer_but_gs_shared_embedding() -> None:
    config = CASES["32_conditional_hierarchical_attention"]
    assert config.spectral_norm == "none"
    g, d = build_networks(dataclasses.replace(config, spectral_norm="g_and_d"))
    z, labels, x = _inputs(config, 2)
    g_vars = jax.eval_shape(lambda: g.init(KEY, z, labels, train=False))
    d_vars = jax.eval_shape(lambda: d.init(KEY, x, labels, train=False))
    weights = lambda v: sum(leaf.ndim >= 2 for leaf in jax.tree.leaves(v["params"]))  # noqa
    vectors = lambda v: sum(jax.tree_util.keystr(p).endswith("/u']")  # noqa: E731
                            for p, _ in jax.tree_util.tree_leaves_with_path(v["batch_stats"]))
    assert vectors(g_vars) == weights(g_vars) - 1  # the shared class embedding is left alone
    assert vectors(d_vars) == weights(d_vars)  # D's projection embedding included


def test_orthogonal_weights_and_pytorchs_default_biases() -> None:
    config = CASES["32_conditional_hierarchical_attention"]
    g, _ = build_networks(config)
    z, labels, _ = _inputs(config, 2)
    params = fast_jit(lambda z, y: g.init(KEY, z, y, train=False))(z, labels)["params"]
    conv = np.asarray(params["block1"]["conv1"]["kernel"]).reshape(-1, 32)  # (9 * 32, 32)
    np.testing.assert_allclose(conv.T @ conv, np.eye(32), atol=1e-5)
    linear = np.asarray(params["linear"]["kernel"])  # (5, 512): orthonormal rows
    np.testing.assert_allclose(linear @ linear.T, np.eye(5), atol=1e-5)
    bias = np.asarray(params["block1"]["conv1"]["bias"])
    bound = 1 / np.sqrt(9 * 32)
    assert np.all(np.abs(bias) <= bound) and np.std(bias) > bound / 4


@pytest.mark.parametrize("change,message", [
    ({"resolution": 28}, "model.resolution=28 is not supported by the BigGAN models"),
    ({"latent_dim": 21}, "model.latent_dim=21 does not split evenly into the 4 chunks"),
    ({"d_norm": "batch"}, "model.arch='biggan' has no normalisation"),
    ({"attention_resolution": 32}, "model.attention_resolution=32: model.arch='biggan'"),
])
def test_bad_settings_are_refused_by_name(change: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_networks(dataclasses.replace(CASES["32_conditional_hierarchical_attention"],
                                           **change))

"""Tests of the ResNet generator and discriminator body (gan_jax.models.resnet).

The strong check is an independent PyTorch re-implementation of the SNGAN 32x32 networks
(written after Mimicry's sngan_32 / chainer-gan-lib's resnet_32): the Flax parameters and
BatchNorm statistics are copied into it and both must give the same outputs, so a mis-wired
block (a missing or misplaced ReLU, a norm after instead of before its ReLU, an identity
shortcut where a 1x1 convolution belongs, mean instead of sum pooling) fails here.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn as tnn

from experiments.benchmarks.torch_gans import (SampleLayerNorm, TorchDiscriminatorBody32,
                                             TorchGenerator32)

from gan_jax.errors import UserError
from gan_jax.models.resnet import ResNetDiscriminatorBody, ResNetGenerator
from tests.parity import FAST_COMPILE, assert_close, fast_jit, nchw, perturb, set_param

LATENT = 16
KEY = jax.random.PRNGKey(0)


# Inputs and noise come from NumPy: XLA:CPU compiles JAX's random bits slowly for every new
# multi-dimensional shape, and these tests are about the networks, not the generator of noise.


def _latents(n: int, seed: int = 1) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(size=(n, LATENT)), jnp.float32)


def _images(n: int, resolution: int, seed: int = 2) -> jax.Array:
    x = np.random.default_rng(seed).uniform(-1, 1, (n, resolution, resolution, 3))
    return jnp.asarray(x, jnp.float32)


def _init(model: Any, *inputs: Any) -> dict:
    """model.init under one jit: a single compilation instead of one per operation."""
    return fast_jit(lambda *a: model.init(KEY, *a, train=False))(*inputs)


def _apply(model: Any, *, train: bool) -> Callable[..., Any]:
    """(variables, *inputs) -> (output, updated batch_stats), compiled at each call."""
    return fast_jit(lambda v, *a: model.apply(v, *a, train=train, mutable=["batch_stats"]))


def _count(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------------------------
# PyTorch reference (NCHW), module names mirror the Flax ones to keep the copy readable.


def _load_conv(conv: tnn.Conv2d, p: dict) -> None:
    set_param(conv.weight, np.transpose(p["kernel"], (3, 2, 0, 1)))  # HWIO -> OIHW
    set_param(conv.bias, p["bias"])


def _load_norm(norm: tnn.Module, params: dict, stats: dict | None) -> None:
    if isinstance(norm, tnn.Identity):
        return
    set_param(norm.weight, params["scale"])
    set_param(norm.bias, params["bias"])
    if stats is not None:
        set_param(norm.running_mean, stats["mean"])
        set_param(norm.running_var, stats["var"])


def load_generator(model: TorchGenerator32, params: dict, stats: dict) -> None:
    ngf = model.ngf
    kernel = np.asarray(params["dense"]["kernel"])  # (nz, 4*4*ngf), columns in (h, w, c) order
    nz = kernel.shape[0]
    set_param(model.dense.weight, kernel.reshape(nz, 4, 4, ngf).transpose(3, 1, 2, 0)
         .reshape(ngf * 16, nz))  # rows in torch's (c, h, w) order
    set_param(model.dense.bias, np.asarray(params["dense"]["bias"]).reshape(4, 4, ngf)
         .transpose(2, 0, 1).reshape(-1))
    bn = lambda tree: tree["BatchNorm_0"]
    for i, block in enumerate(model.blocks, start=1):
        p, s = params[f"block{i}"], stats[f"block{i}"]
        for name in ("conv1", "conv2", "shortcut"):
            _load_conv(getattr(block, name), p[name])
        _load_norm(block.bn1, bn(p["bn1"]), bn(s["bn1"]))
        _load_norm(block.bn2, bn(p["bn2"]), bn(s["bn2"]))
    _load_norm(model.bn_out, bn(params["bn_out"]), bn(stats["bn_out"]))
    _load_conv(model.conv_out, params["conv_out"])


def load_discriminator(model: TorchDiscriminatorBody32, params: dict, stats: dict) -> None:
    for i, block in enumerate(model.blocks, start=1):
        p, s = params[f"block{i}"], stats.get(f"block{i}", {})
        for name in ("conv1", "conv2", "shortcut"):
            if getattr(block, name, None) is not None:
                _load_conv(getattr(block, name), p[name])
            else:
                assert name not in p, f"block{i} has a {name} the reference lacks"
        for j in (1, 2):
            norm = getattr(block, f"norm{j}", tnn.Identity())
            key = {SampleLayerNorm: "LayerNorm", tnn.BatchNorm2d: "BatchNorm"}.get(type(norm))
            if key:
                name = f"{key}_{j - 1}"
                _load_norm(norm, p[name], s.get(name))


# ----------------------------------------------------------------------------------------------
# Agreement with the reference


# Width 64 makes the convolutions wide enough for the matrix-product form
# (gan_jax.models.convolution.MIN_MATMUL_WIDTH); width 8 keeps lax's. The generator's error
# against torch is float32 rounding: typically 2.6e-6 at width 8 and 3.7e-5 at width 64 (either
# form), but 9e-5 was seen at width 8 in two of about twenty processes on a busy 2-core machine,
# so both widths are held to the project's float32 parity bound, 1e-4.
IMPLEMENTATIONS = pytest.mark.parametrize("implementation,width", [("xla", 8), ("matmul", 64)])


@IMPLEMENTATIONS
def test_generator_matches_torch_reference(implementation: str, width: int) -> None:
    g = ResNetGenerator(32, 3, width=width, conv_implementation=implementation)
    z = _latents(6)
    variables = _init(g, z)
    params = perturb(variables["params"], 3, scale=0.1)
    train_step = _apply(g, train=True)
    # One training call moves the running statistics away from (0, 1).
    _, updated = train_step({**variables, "params": params}, z * 2 + 0.5)
    variables = {"params": params, **updated}

    ref = TorchGenerator32(LATENT, width)
    load_generator(ref, jax.device_get(params), jax.device_get(updated["batch_stats"]))
    for train, ours in ((False, _apply(g, train=False)(variables, z)[0]),
                        (True, train_step(variables, z)[0])):
        ref.train(train)
        with torch.no_grad():
            expected = ref(torch.tensor(np.asarray(z))).numpy().transpose(0, 2, 3, 1)
        assert np.std(expected) > 0.05  # neither constant nor saturated
        assert_close(ours, expected, rtol=1e-4)


@IMPLEMENTATIONS
@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_discriminator_matches_torch_reference(norm: str, implementation: str,
                                               width: int) -> None:
    d = ResNetDiscriminatorBody(32, width=width, norm=norm, conv_implementation=implementation)
    x = _images(5, 32)
    variables = _init(d, x)
    params = perturb(variables["params"], 4, scale=0.1)
    stats = variables.get("batch_stats", {})
    if norm == "batch":
        _, updated = _apply(d, train=True)({"params": params, "batch_stats": stats},
                                           x * 0.5 + 0.2)
        stats = updated["batch_stats"]
    ours, _ = _apply(d, train=False)({"params": params, "batch_stats": stats}, x)

    ref = TorchDiscriminatorBody32(width, norm).eval()
    load_discriminator(ref, jax.device_get(params), jax.device_get(stats))
    with torch.no_grad():
        expected = ref(nchw(x)).numpy()
    assert ours.shape == (5, width) and ours.dtype == jnp.float32
    assert_close(ours, expected)


def test_sngan32_parameter_counts() -> None:
    """SNGAN CIFAR widths (G 256, D 128, z 128): Flax = the torch reference = hand count."""
    g = ResNetGenerator(32, 3, width=256)
    d = ResNetDiscriminatorBody(32, width=128)
    g_shapes = jax.eval_shape(lambda: g.init(KEY, jnp.zeros((2, 128)), train=False))
    d_shapes = jax.eval_shape(lambda: d.init(KEY, jnp.zeros((2, 32, 32, 3)), train=False))
    torch_count = lambda m: sum(p.numel() for p in m.parameters())
    # Dense 128 -> 4096 (528,384); 3 GBlocks of 1,246,976; BN 512; conv 256 -> 3 (6,915).
    assert _count(g_shapes["params"]) == torch_count(TorchGenerator32(128, 256)) == 4_276_739
    # 151,680 + 311,680 + 2 x 295,168; with the head's Dense(128 -> 1) this is 1,053,825.
    assert _count(d_shapes["params"]) == torch_count(TorchDiscriminatorBody32(128)) == 1_053_696


def test_sngan64_layout() -> None:
    """Width 64 is Mimicry's SNGAN-64: G 1024 -> 512 -> 256 -> 128 -> 64, D 64 ... 1024."""
    g = ResNetGenerator(64, 3, width=64)
    d = ResNetDiscriminatorBody(64, width=64)
    gp = jax.eval_shape(lambda: g.init(KEY, jnp.zeros((2, 128)), train=False))["params"]
    dp = jax.eval_shape(lambda: d.init(KEY, jnp.zeros((2, 64, 64, 3)), train=False))["params"]
    assert gp["dense"]["kernel"].shape == (128, 4 * 4 * 1024)
    assert [gp[f"block{i}"]["conv1"]["kernel"].shape[2:] for i in range(1, 5)] == [
        (1024, 512), (512, 256), (256, 128), (128, 64)]
    assert gp["conv_out"]["kernel"].shape == (3, 3, 64, 3)
    assert [dp[f"block{i}"]["conv2"]["kernel"].shape[3] for i in range(1, 6)] == [
        64, 128, 256, 512, 1024]
    assert dp["block2"]["conv1"]["kernel"].shape == (3, 3, 64, 64)  # hidden = input width
    out = jax.eval_shape(lambda p: d.apply({"params": p}, jnp.zeros((2, 64, 64, 3)),
                                           train=False), dp)
    assert out.shape == (2, 1024)


def test_glorot_initialisation() -> None:
    """Xavier uniform: gain sqrt(2) in the residual 3x3 convolutions, 1 in the shortcuts."""
    params = _init(ResNetDiscriminatorBody(32, width=16), _images(2, 32))["params"]

    def check(kernel: jax.Array, gain: float) -> None:
        kernel = np.asarray(kernel)
        receptive = kernel.shape[0] * kernel.shape[1]
        limit = gain * np.sqrt(6 / (receptive * (kernel.shape[2] + kernel.shape[3])))
        assert np.max(np.abs(kernel)) <= limit
        assert abs(np.std(kernel) / (limit / np.sqrt(3)) - 1) < 0.1
        assert abs(np.mean(kernel)) < 0.1 * limit

    check(params["block3"]["conv1"]["kernel"], np.sqrt(2))
    check(params["block2"]["conv2"]["kernel"], np.sqrt(2))
    check(params["block2"]["shortcut"]["kernel"], 1.0)
    assert not np.any(np.asarray(params["block3"]["conv1"]["bias"]))


# ----------------------------------------------------------------------------------------------
# Shapes, dtypes, options


def _shapes(model: Any, *inputs: Any, train: bool) -> tuple[Any, Any]:
    """(parameter shapes, output shape) by tracing only: no compilation, no computation."""
    variables = jax.eval_shape(lambda: model.init(KEY, *inputs, train=False))
    out = jax.eval_shape(lambda v: model.apply(v, *inputs, train=train, mutable=["batch_stats"])[0],
                         variables)
    return variables, out


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("num_classes,spectral_norm,dtype", [
    (0, False, jnp.float32), (5, True, jnp.bfloat16)])
def test_generator_shapes_and_dtypes(resolution: int, num_classes: int, spectral_norm: bool,
                                     dtype: Any) -> None:
    g = ResNetGenerator(resolution, 3, width=4, num_classes=num_classes,
                        spectral_norm=spectral_norm, dtype=dtype)
    labels = jnp.zeros((4,), jnp.int32) if num_classes else None
    for train in (True, False):
        variables, images = _shapes(g, jnp.zeros((4, LATENT)), labels, train=train)
        assert images.shape == (4, resolution, resolution, 3) and images.dtype == dtype
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables["params"]))
    n_sn = sum(k.endswith("/u") for k in flax.traverse_util.flatten_dict(
        flax.core.unfreeze(variables["batch_stats"]), sep="|").keys())
    assert n_sn == (2 + 3 * (3 if resolution == 32 else 4) if spectral_norm else 0)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("norm,spectral_norm,minibatch_std,dtype", [
    ("none", True, 0, jnp.float32), ("layer", False, 2, jnp.bfloat16),
    ("batch", True, 4, jnp.bfloat16)])
def test_discriminator_shapes_and_dtypes(resolution: int, norm: str, spectral_norm: bool,
                                         minibatch_std: int, dtype: Any) -> None:
    d = ResNetDiscriminatorBody(resolution, width=4, norm=norm, spectral_norm=spectral_norm,
                                minibatch_std=minibatch_std, dtype=dtype)
    for train in (True, False):
        variables, h = _shapes(d, jnp.zeros((4, resolution, resolution, 3)), train=train)
        assert h.shape == (4, 4 if resolution == 32 else 64) and h.dtype == jnp.float32
    params = variables["params"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    # The stddev map is one more input channel of the last block, not of its hidden layer.
    last = params[f"block{4 if resolution == 32 else 5}"]
    width_in = 4 if resolution == 32 else 32
    extra = 1 if minibatch_std else 0
    assert last["conv1"]["kernel"].shape[2:] == (width_in + extra, width_in)
    if extra or resolution == 64:
        assert last["shortcut"]["kernel"].shape[2] == width_in + extra
    else:
        assert "shortcut" not in last  # identity shortcut: same width, no downsampling
    for i in range(2, 5 if resolution == 32 else 6):
        norms = sorted(k for k in params[f"block{i}"] if k[0].isupper())
        assert norms == {"none": [], "layer": ["LayerNorm_0", "LayerNorm_1"],
                         "batch": ["BatchNorm_0", "BatchNorm_1"]}[norm]
    assert not [k for k in params["block1"] if k[0].isupper()]  # the first block: no norm


def _spectral_sigmas(stats: Any, params: Any) -> dict[tuple[str, ...], np.ndarray]:
    """{path of the normalised layer: the sigma evaluation divides by}, i.e. ||M u|| for the
    stored u and the layer's kernel flattened to M = (fan_in, out)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    out = {}
    for path, u in flax.traverse_util.flatten_dict(flax.core.unfreeze(stats)).items():
        if path[-1].endswith("/kernel/u"):
            layer = path[:-2] + (path[-1].split("/")[0],)
            kernel = np.asarray(flat[layer + ("kernel",)], np.float64)
            out[layer] = np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]) @ np.asarray(u))
    return out


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_spectral_norm_covers_every_layer(network: str) -> None:
    """After a training call, SN(w) in evaluation equals the plain network with w / ||M u||."""
    if network == "generator":
        make = lambda sn: ResNetGenerator(32, 3, width=4, spectral_norm=sn)
        x = _latents(4)
    else:
        make = lambda sn: ResNetDiscriminatorBody(32, width=4, norm="layer", spectral_norm=sn,
                                                  minibatch_std=2)
        x = _images(4, 32)
    # Initialising the plain network compiles much faster; the power-iteration vectors that the
    # spectral one adds are drawn here. Doubled weights have singular values far from the
    # initial estimates of 1.
    plain = _init(make(False), x)
    shapes = jax.eval_shape(lambda: make(True).init(KEY, x, train=False))["batch_stats"]
    plain_stats = flax.traverse_util.flatten_dict(flax.core.unfreeze(plain.get("batch_stats",
                                                                                 {})))
    rng = np.random.default_rng(6)
    stats = {}
    for path, leaf in flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes)).items():
        if path[-1].endswith("/u"):
            u = rng.normal(size=leaf.shape)
            stats[path] = jnp.asarray(u / np.linalg.norm(u), jnp.float32)
        else:
            stats[path] = plain_stats[path] if path in plain_stats else jnp.ones(leaf.shape)
    variables = {"params": jax.tree.map(lambda p: 2 * p, plain["params"]),
                 "batch_stats": flax.traverse_util.unflatten_dict(stats)}
    out, updated = _apply(make(True), train=True)(variables, x)
    if network == "generator":
        assert float(jnp.max(jnp.abs(out))) <= 1.0 and float(jnp.std(out)) > 0.01
    else:
        assert bool(jnp.all(out >= 0)) and bool(jnp.all(jnp.isfinite(out)))
        assert float(jnp.max(out)) > 0
    sigmas = _spectral_sigmas(updated["batch_stats"], variables["params"])
    params = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
    kernels = {path[:-1] for path in params if path[-1] == "kernel"}
    assert set(sigmas) == kernels  # every convolution and dense layer, nothing else
    assert all(float(s) > 1.5 for s in sigmas.values())
    scaled = {path: value / sigmas[path[:-1]] if path[-1] == "kernel" else value
              for path, value in params.items()}
    plain_vars = {"params": flax.traverse_util.unflatten_dict(scaled)}
    if network == "generator":  # the BatchNorm statistics the training call left
        stats = flax.traverse_util.flatten_dict(flax.core.unfreeze(updated["batch_stats"]))
        plain_vars["batch_stats"] = flax.traverse_util.unflatten_dict(
            {p: v for p, v in stats.items() if not any(k.startswith("SpectralNorm") for k in p)})
    spectral, _ = _apply(make(True), train=False)({"params": variables["params"], **updated}, x)
    plain, _ = _apply(make(False), train=False)(plain_vars, x)
    assert_close(spectral, plain)
    assert _spectral_sigmas(jax.eval_shape(lambda: make(False).init(KEY, x, train=False))
                            .get("batch_stats", {}), variables["params"]) == {}


# ----------------------------------------------------------------------------------------------
# Conditioning and errors


def test_conditional_generator_uses_labels_in_every_norm() -> None:
    classes = 3
    g = ResNetGenerator(32, 3, width=4, num_classes=classes)
    z = jnp.repeat(_latents(1), 2, axis=0)
    labels = jnp.array([0, 1])
    variables = _init(g, z, labels)
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
    embeddings = [p for p in flat if p[-1] == "embedding"]
    # bn1, bn2 of three blocks and bn_out: a gain and a bias table each, one row per class.
    assert len(embeddings) == 2 * 7
    assert all(flat[p].shape == (classes, 4) for p in embeddings)
    assert not any(p[-1] == "scale" for p in flat)  # no unconditional BatchNorm left

    base = perturb(flat, 5, scale=0.1)
    run = jax.jit(lambda params, lab: g.apply(
        {"params": flax.traverse_util.unflatten_dict(params),
         "batch_stats": variables["batch_stats"]}, z, lab, train=False)
    ).lower(base, labels).compile(FAST_COMPILE)  # compiled once for all the calls below
    images = run(base, labels)
    assert float(jnp.max(jnp.abs(images[0] - images[1]))) > 1e-3  # same z, other class
    np.testing.assert_allclose(run(base, jnp.array([1, 1]))[0], images[1], atol=1e-5)
    # Changing one norm's class-1 row changes the class-1 image only: every norm sees labels.
    for path in embeddings:
        changed = dict(base)
        changed[path] = base[path].at[1].add(0.5)
        out = run(changed, labels)
        np.testing.assert_allclose(out[0], images[0], atol=1e-5)
        assert float(jnp.max(jnp.abs(out[1] - images[1]))) > 1e-4, path


def test_conditional_generator_needs_labels() -> None:
    g = ResNetGenerator(32, 3, width=4, num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        jax.eval_shape(lambda: g.init(KEY, jnp.zeros((2, LATENT)), train=False))


@pytest.mark.parametrize("resolution", [16, 48, 128])
def test_unsupported_resolution(resolution: int) -> None:
    with pytest.raises(UserError, match=rf"model\.resolution={resolution}.*32, 64"):
        ResNetGenerator(resolution, 3, width=4).init(KEY, jnp.zeros((2, LATENT)), train=False)
    with pytest.raises(UserError, match=rf"model\.resolution={resolution}"):
        ResNetDiscriminatorBody(resolution, width=4).init(
            KEY, jnp.zeros((2, resolution, resolution, 3)), train=False)

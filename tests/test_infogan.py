"""The InfoGAN-style networks of Lucic et al. 2018 against a PyTorch transcription of
compare_gan's `architectures/infogan.py` (layer for layer, NCHW, float64), in training mode
(batch statistics) and in evaluation mode (running statistics), and their user errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.config import Config, with_overrides
from gan_jax.errors import UserError
from gan_jax.models import build_networks
from gan_jax.models.infogan import InfoGANDiscriminatorBody, InfoGANGenerator

torch = pytest.importorskip("torch")
tnn = torch.nn
# Width 32 (FC 512, 64 x 7 x 7 maps, 32 channels; 28x28 images) is wide enough for the
# matrix-product form of the stride-2 layers (MIN_MATMUL_WIDTH), so "matmul" runs it.
WIDTH, LATENT, SIDE = 32, 16, 28
BN_EPSILON = 1e-3  # compare_gan's standardize_batch, written out: an independent value


def _bn(features: int) -> tnn.Module:
    # compare_gan: epsilon 1e-3, decay 0.999 (torch's momentum is 1 - decay).
    return tnn.BatchNorm1d(features, eps=BN_EPSILON, momentum=1e-3)


class TorchInfoGANGenerator(tnn.Module):
    def __init__(self, width: int, latent: int, channels: int, side: int):
        super().__init__()
        self.width, self.side = width, side // 4
        self.fc1, self.bn1 = tnn.Linear(latent, 16 * width), _bn(16 * width)
        self.fc2 = tnn.Linear(16 * width, 2 * width * self.side ** 2)
        self.bn2 = _bn(2 * width * self.side ** 2)
        self.dc3 = tnn.ConvTranspose2d(2 * width, width, 4, 2, padding=1)
        self.bn3 = tnn.BatchNorm2d(width, eps=BN_EPSILON, momentum=1e-3)
        self.dc4 = tnn.ConvTranspose2d(width, channels, 4, 2, padding=1)

    def forward(self, z):
        lrelu = lambda x: tnn.functional.leaky_relu(x, 0.2)  # noqa: E731
        x = lrelu(self.bn1(self.fc1(z)))
        x = lrelu(self.bn2(self.fc2(x)))
        # gan_jax's feature maps are NHWC: the FC output is read as (H, W, C).
        x = x.view(-1, self.side, self.side, 2 * self.width).permute(0, 3, 1, 2)
        x = lrelu(self.bn3(self.dc3(x)))
        return torch.sigmoid(self.dc4(x)) * 2 - 1


class TorchInfoGANDiscriminatorBody(tnn.Module):
    def __init__(self, width: int, channels: int, side: int, norm: str):
        super().__init__()
        self.conv1 = tnn.Conv2d(channels, width, 4, 2, padding=1)
        self.conv2 = tnn.Conv2d(width, 2 * width, 4, 2, padding=1)
        self.fc3 = tnn.Linear(2 * width * (side // 4) ** 2, 16 * width)
        self.norm = norm
        if norm == "batch":
            self.bn2 = tnn.BatchNorm2d(2 * width, eps=BN_EPSILON, momentum=1e-3)
            self.bn3 = _bn(16 * width)

    def forward(self, x):
        lrelu = lambda x: tnn.functional.leaky_relu(x, 0.2)  # noqa: E731
        same = (lambda x: x) if self.norm == "none" else None  # noqa: E731
        x = lrelu(self.conv1(x))
        x = lrelu((same or self.bn2)(self.conv2(x)))
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC order, as gan_jax flattens
        return lrelu((same or self.bn3)(self.fc3(x)))


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, np.float64))


def _load_dense(layer, p):
    layer.weight.data, layer.bias.data = _t(p["kernel"]).T, _t(p["bias"])


def _load_conv(layer, p, transposed: bool):
    kernel = np.asarray(p["kernel"])
    # lax's transposed convolution (no kernel transpose) is torch's with the kernel flipped.
    weight = kernel[::-1, ::-1].transpose(2, 3, 0, 1) if transposed else kernel.transpose(3, 2,
                                                                                         0, 1)
    layer.weight.data, layer.bias.data = _t(weight.copy()), _t(p["bias"])


def _load_bn(layer, params, stats):
    layer.weight.data, layer.bias.data = _t(params["scale"]), _t(params["bias"])
    layer.running_mean.data, layer.running_var.data = _t(stats["mean"]), _t(stats["var"])


def _perturb(tree, seed):
    """Away from the initial values (BN gains 1, biases 0), so every parameter is exercised."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: a + 0.1 * rng.standard_normal(a.shape).astype(a.dtype), tree)


def _stats(tree, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: a + 0.2 * rng.uniform(0, 1, a.shape).astype(a.dtype), tree)


def _both_modes(module, variables, inputs, ref, ref_inputs):
    """(ours, torch's) outputs in evaluation mode, then in training mode (batch statistics);
    evaluation first, since torch's training call moves its running statistics."""
    for train in (False, True):
        ours = module.apply(variables, inputs, train=train,
                            mutable=["batch_stats"] if train else False)
        ref.train(train)
        with torch.no_grad():
            yield (ours[0] if train else ours), ref(ref_inputs).numpy()


@pytest.mark.parametrize("implementation", ["xla", "matmul"])
def test_generator_matches_torch_transcription(implementation):
    g = InfoGANGenerator(SIDE, 1, WIDTH, conv_implementation=implementation)
    z = jnp.asarray(np.random.default_rng(1).normal(size=(6, LATENT)), jnp.float32)
    variables = g.init(jax.random.key(0), z, train=False)
    params, stats = _perturb(variables["params"], 2), _stats(variables["batch_stats"], 3)
    ref = TorchInfoGANGenerator(WIDTH, LATENT, 1, SIDE).double()
    _load_dense(ref.fc1, params["Dense_0"])
    _load_dense(ref.fc2, params["Dense_1"])
    _load_conv(ref.dc3, params["ConvTranspose_0"], transposed=True)
    _load_conv(ref.dc4, params["ConvTranspose_1"], transposed=True)
    for bn, name in ((ref.bn1, "GeneratorNorm_0"), (ref.bn2, "GeneratorNorm_1"),
                     (ref.bn3, "GeneratorNorm_2")):
        _load_bn(bn, params[name]["BatchNorm_0"], stats[name]["BatchNorm_0"])
    for ours, want in _both_modes(g, {"params": params, "batch_stats": stats}, z, ref, _t(z)):
        want = want.transpose(0, 2, 3, 1)
        assert ours.shape == (6, SIDE, SIDE, 1) and np.std(want) > 0.01  # not constant
        np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("implementation", ["xla", "matmul"])
def test_discriminator_matches_torch_transcription(norm, implementation):
    d = InfoGANDiscriminatorBody(SIDE, WIDTH, norm=norm, conv_implementation=implementation)
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (5, SIDE, SIDE, 1)), jnp.float32)
    variables = d.init(jax.random.key(0), x, train=False)
    params = _perturb(variables["params"], 5)
    stats = _stats(variables.get("batch_stats", {}), 6)
    ref = TorchInfoGANDiscriminatorBody(WIDTH, 1, SIDE, norm).double()
    _load_conv(ref.conv1, params["Conv_0"], transposed=False)
    _load_conv(ref.conv2, params["Conv_1"], transposed=False)
    _load_dense(ref.fc3, params["Dense_0"])
    if norm == "batch":
        _load_bn(ref.bn2, params["BatchNorm_0"], stats["BatchNorm_0"])
        _load_bn(ref.bn3, params["BatchNorm_1"], stats["BatchNorm_1"])
    for ours, want in _both_modes(d, {"params": params, "batch_stats": stats}, x, ref,
                                  _t(x).permute(0, 3, 1, 2)):
        assert ours.shape == (5, 16 * WIDTH)
        np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("implementation", ["xla", "matmul"])
def test_discriminator_gradients_match_torch_in_training_mode(implementation):
    """The gradients the train step uses: of a weighted sum of D's features (BatchNorm on batch
    statistics) with respect to the images, the second convolution's kernel and the FC layer's,
    against torch's autograd of the transcription."""
    d = InfoGANDiscriminatorBody(SIDE, WIDTH, norm="batch", conv_implementation=implementation)
    x = jnp.asarray(np.random.default_rng(7).uniform(-1, 1, (5, SIDE, SIDE, 1)), jnp.float32)
    variables = d.init(jax.random.key(0), x, train=False)
    params = _perturb(variables["params"], 8)
    weights = np.random.default_rng(9).normal(size=(5, 16 * WIDTH))

    def objective(params, images):
        features, _ = d.apply({"params": params, **{k: v for k, v in variables.items()
                                                    if k != "params"}},
                              images, train=True, mutable=["batch_stats"])
        return jnp.sum(features * weights)
    grads, image_grads = jax.grad(objective, argnums=(0, 1))(params, x)

    ref = TorchInfoGANDiscriminatorBody(WIDTH, 1, SIDE, "batch").double().train()
    _load_conv(ref.conv1, params["Conv_0"], transposed=False)
    _load_conv(ref.conv2, params["Conv_1"], transposed=False)
    _load_dense(ref.fc3, params["Dense_0"])
    _load_bn(ref.bn2, params["BatchNorm_0"], variables["batch_stats"]["BatchNorm_0"])
    _load_bn(ref.bn3, params["BatchNorm_1"], variables["batch_stats"]["BatchNorm_1"])
    images = _t(x).permute(0, 3, 1, 2).requires_grad_(True)
    (ref(images) * _t(weights)).sum().backward()
    np.testing.assert_allclose(np.asarray(image_grads),
                               images.grad.permute(0, 2, 3, 1).numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["Conv_1"]["kernel"]),
                               ref.conv2.weight.grad.permute(2, 3, 1, 0).numpy(),
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grads["Dense_0"]["kernel"]),
                               ref.fc3.weight.grad.T.numpy(), rtol=1e-3, atol=1e-5)
    assert np.abs(np.asarray(image_grads)).max() > 1e-3  # not vanishing


def test_the_recipes_initialise_and_normalise_as_compare_gan():
    """N(0, 0.02) weights and zero biases; every BatchNorm with compare_gan's epsilon 1e-3 and
    decay 0.999 (Flax's momentum), in G and in D, as the table's recipes build them."""
    import flax.linen as nn

    from gan_jax.config import load_config
    from gan_jax.train import build_gan, init_state
    from tests.test_zoo import LUCIC
    gan = build_gan(load_config(f"{LUCIC}:ns_gan"))
    state = jax.jit(lambda key: init_state(gan, key))(jax.random.key(0))  # one compilation
    kernel = np.asarray(state.g_params["Dense_1"]["kernel"])  # 1024 x 6272 draws
    assert abs(kernel.std() - 0.02) < 0.0005 and abs(kernel.mean()) < 0.0005
    biases = [np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(
        {"g": state.g_params, "d": state.d_params})
        if jax.tree_util.keystr(path).endswith("['bias']") and "BatchNorm" not in
        jax.tree_util.keystr(path)]
    assert biases and all(np.all(b == 0) for b in biases)
    settings = set()

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, nn.BatchNorm):
            settings.add((context.module.momentum, context.module.epsilon))
        return next_fun(*args, **kwargs)
    def both(state, z):  # the modules are built while tracing: nothing needs to run
        images, _ = gan.generator.apply({"params": state.g_params, **state.g_model_state}, z,
                                        None, train=True, mutable=["batch_stats"])
        return gan.discriminator.apply({"params": state.d_params, **state.d_model_state},
                                       images, None, train=True, mutable=["batch_stats"])
    with nn.intercept_methods(record):
        jax.eval_shape(both, state, jnp.zeros((2, gan.latent_dim)))
    assert settings == {(0.999, 1e-3)}


def test_the_published_networks_have_the_published_layers():
    """Width 64 (the default): FC 1024, 128 x 7 x 7, 64 channels in G; 64, 128, FC 1024 in D."""
    config = with_overrides(Config(), {"model.arch": "infogan", "model.latent_dim": 62,
                                       "model.channels": 1})
    g, d = build_networks(config.model)
    z = jnp.zeros((2, 62))
    g_params = jax.eval_shape(lambda: g.init(jax.random.key(0), z, train=False))["params"]
    shapes = {k: v["kernel"].shape for k, v in g_params.items() if "kernel" in v}
    assert shapes == {"Dense_0": (62, 1024), "Dense_1": (1024, 128 * 7 * 7),
                      "ConvTranspose_0": (4, 4, 128, 64), "ConvTranspose_1": (4, 4, 64, 1)}
    d_params = jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)),
                                             train=False))["params"]
    body = {k: v["kernel"].shape for k, v in d_params["body"].items() if "kernel" in v}
    assert body == {"Conv_0": (4, 4, 1, 64), "Conv_1": (4, 4, 64, 128),
                    "Dense_0": (128 * 7 * 7, 1024)}
    assert d_params["logit"]["kernel"].shape == (1024, 1)


@pytest.mark.parametrize("overrides,message", [
    ({"model.resolution": 30}, "multiple of 4"),
    ({"model.minibatch_std": 4}, "minibatch_std"),
])
def test_user_errors(overrides, message):
    config = with_overrides(Config(), {"model.arch": "infogan", **overrides})
    with pytest.raises(UserError, match=message):
        build_networks(config.model)

"""Every generator and discriminator: shapes, dtypes and ranges at every supported resolution."""

import jax
import jax.numpy as jnp
import pytest

from gan_jax.config import ModelConfig
from gan_jax.errors import UserError
from gan_jax.models import build_networks, upsampling_plan

CASES = [  # (arch, resolution, channels)
    ("dcgan", 28, 1), ("dcgan", 32, 1), ("dcgan", 32, 3), ("dcgan", 64, 3),
    ("mlp", 28, 1), ("mlp", 32, 3),
]


@pytest.mark.parametrize("arch,resolution,channels", CASES)
@pytest.mark.parametrize("train", [True, False])
def test_generator_and_discriminator_shapes(arch, resolution, channels, train):
    config = ModelConfig(arch=arch, resolution=resolution, channels=channels, latent_dim=16,
                         g_width=8, d_width=8)
    g, d = build_networks(config)
    z = jax.random.normal(jax.random.key(0), (3, 16))

    @jax.jit  # one compilation instead of op-by-op dispatch
    def both(z):
        images, _ = g.apply(g.init(jax.random.key(1), z, train=False), z, train=train,
                            mutable=["batch_stats"])
        out, _ = d.apply(d.init(jax.random.key(2), images, train=False), images, train=train,
                         mutable=["batch_stats"], rngs={"dropout": jax.random.key(3)})
        return images, out
    images, out = both(z)
    assert images.shape == (3, resolution, resolution, channels)
    assert images.dtype == jnp.float32
    assert float(jnp.abs(images).max()) <= 1.0  # tanh output matches the data's [-1, 1]
    assert out.logits.shape == (3,)
    assert out.logits.dtype == jnp.float32
    assert out.features.ndim == 2 and out.class_logits is None


def test_dcgan_widths_follow_the_paper():
    g, d = build_networks(ModelConfig(resolution=64, channels=3, g_width=64, d_width=64))
    # Shapes only (eval_shape): nothing is computed.
    g_vars = jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 100)), train=False))
    d_vars = jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)),
                                           train=False))
    # G: 100 -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3
    assert g_vars["params"]["Dense_0"]["kernel"].shape == (100, 4 * 4 * 512)
    g_out = [g_vars["params"][f"ConvTranspose_{i}"]["kernel"].shape[-1] for i in range(4)]
    assert g_out == [256, 128, 64, 3]
    # D: 64 -> 128 -> 256 -> 512 channels, then one logit from the 4x4x512 map
    d_out = [d_vars["params"]["body"][f"Conv_{i}"]["kernel"].shape[-1] for i in range(4)]
    assert d_out == [64, 128, 256, 512]
    assert d_vars["params"]["logit"]["kernel"].shape == (4 * 4 * 512, 1)


@pytest.mark.parametrize("resolution,plan", [(28, (7, 2)), (32, (4, 3)), (56, (7, 3)),
                                             (64, (4, 4)), (8, (4, 1))])
def test_upsampling_plan(resolution, plan):
    assert upsampling_plan(resolution) == plan


@pytest.mark.parametrize("resolution", [4, 7, 30, 48, 100])
def test_unsupported_dcgan_resolution_is_a_user_error(resolution):
    with pytest.raises(UserError, match=f"model.resolution={resolution}"):
        build_networks(ModelConfig(resolution=resolution))


def test_unknown_architecture_is_named():
    with pytest.raises(UserError, match="model.arch='resnet9000'"):
        build_networks(ModelConfig(arch="resnet9000"))


def test_maxout_takes_the_max_of_its_pieces():
    from gan_jax.models.mlp import Maxout
    layer = Maxout(units=2, pieces=3)
    x = jax.random.normal(jax.random.key(0), (4, 5))
    variables = layer.init(jax.random.key(1), x)
    kernel, bias = variables["params"]["Dense_0"]["kernel"], variables["params"]["Dense_0"]["bias"]
    affine = (x @ kernel + bias).reshape(4, 2, 3)
    assert jnp.allclose(layer.apply(variables, x), affine.max(-1))

"""gan_jax.models.convolution: the matmul and sub-pixel forms are Flax's Conv and ConvTranspose
(same parameters, same outputs and gradients to float rounding), checked against lax and
against PyTorch, and a DCGAN built either way is the same model."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.config import with_overrides
from gan_jax.models import build_networks
from gan_jax.models.convolution import (Conv, ConvTranspose, conv_matmul, conv_space_to_depth,
                                        conv_tap_kernel_grad, conv_transpose_subpixel,
                                        default_implementation, patch_product,
                                        stride1_input_grad, stride1_kernel_grad)
from tests.helpers import tiny_config

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(0)


def _assert_same_layer(ours, flax_layer, x):
    """The same parameters from the same key, and the same sum(sin(y)) and gradients (every
    parameter and the input) to float rounding."""
    variables = flax_layer.init(jax.random.key(0), x)
    jax.tree.map(np.testing.assert_array_equal, variables, ours.init(jax.random.key(0), x))
    value_and_grads = lambda module: jax.value_and_grad(
        lambda v, x: jnp.sum(jnp.sin(module.apply(v, x))), argnums=(0, 1))(variables, x)
    (value, grads), (want, want_grads) = value_and_grads(ours), value_and_grads(flax_layer)
    # A sum of thousands of terms can nearly cancel: its rounding is absolute, not relative.
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 grads, want_grads)


# (kernel, stride) of every transposed convolution the models use (DCGAN: 4, 2), and others.
@pytest.mark.parametrize("kernel,stride", [(4, 2), (3, 2), (5, 2), (3, 1), (6, 3), (4, 4)])
@pytest.mark.parametrize("side", [1, 5])
def test_subpixel_equals_lax_conv_transpose(kernel, stride, side):
    x = RNG.standard_normal((2, side, side + 1, 3)).astype(np.float32)
    w = RNG.standard_normal((kernel, kernel, 3, 5)).astype(np.float32)
    want = jax.lax.conv_transpose(x, w, (stride, stride), "SAME", precision="highest")
    for implementation in ("matmul", "xla", "taps"):
        got = conv_transpose_subpixel(x, w, stride, implementation, precision="highest")
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dcgan_upsampling_equals_torch_conv_transpose2d_forward_and_backward():
    """DCGAN's layer, 4x4 stride 2 'SAME' = PyTorch's ConvTranspose2d(4, 2, padding=1), whose
    weight is (C_in, C_out, kH, kW) and spatially flipped relative to lax's (no transpose)."""
    x = RNG.standard_normal((3, 5, 6, 4)).astype(np.float32)
    w = RNG.standard_normal((4, 4, 4, 7)).astype(np.float32)
    upstream = RNG.standard_normal((3, 10, 12, 7)).astype(np.float32)
    out, vjp = jax.vjp(lambda x, w: conv_transpose_subpixel(x, w, 2), x, w)
    dx, dw = vjp(upstream)
    tx = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    tw = torch.tensor(w[::-1, ::-1].transpose(2, 3, 0, 1).copy(), dtype=torch.float64,
                      requires_grad=True)
    ty = torch.nn.functional.conv_transpose2d(tx, tw, stride=2, padding=1)
    ty.backward(torch.tensor(upstream.transpose(0, 3, 1, 2), dtype=torch.float64))
    np.testing.assert_allclose(out, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tw.grad.numpy().transpose(2, 3, 0, 1)[::-1, ::-1],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("settings", [
    dict(kernel_size=(4, 4), strides=(2, 2), padding="SAME"),  # DCGAN's discriminator
    dict(kernel_size=(3, 3), padding=1), dict(kernel_size=(1, 1)),  # the ResNet's
    dict(kernel_size=(3, 3), strides=2, padding="VALID"), dict(kernel_size=(1, 7)),
    dict(kernel_size=(5, 5), padding=((2, 1), (0, 3))),
], ids=str)
@pytest.mark.parametrize("min_matmul_width", [0, 64], ids=["product", "thin"])
def test_matmul_conv_is_flax_conv(settings, min_matmul_width):
    """min_matmul_width=0: the product even for a layer this thin; 64: lax's convolution, with
    the tap-wise kernel gradient where the stride is 1."""
    x = jnp.asarray(RNG.standard_normal((2, 9, 8, 3)), jnp.float32)
    _assert_same_layer(Conv(4, implementation="matmul", min_matmul_width=min_matmul_width,
                            **settings), nn.Conv(4, **settings), x)


def _numpy_kernel_grad(x, g, kernel_shape, padding):
    """float64 loops: dK[i, j] = sum over n, h, w of x_padded[n, h + i, w + j] (outer) g[n, h, w]."""
    x = np.pad(x.astype(np.float64), ((0, 0), *padding, (0, 0)))
    g = g.astype(np.float64)
    kh, kw = kernel_shape[:2]
    out = np.zeros(kernel_shape)
    for i in range(kh):
        for j in range(kw):
            window = x[:, i:i + g.shape[1], j:j + g.shape[2]]
            out[i, j] = np.einsum("nhwc,nhwo->co", window, g)
    return out


# Thin input (3 -> 8: the input is shifted) and thin output (8 -> 3: the gradient is shifted),
# the sub-pixel layer's 2x2 with padding 1, uneven kernels and paddings, and 1x1.
@pytest.mark.parametrize("kernel,padding,c_in,c_out", [
    ((3, 3), ((1, 1), (1, 1)), 3, 8), ((2, 2), ((1, 1), (1, 1)), 8, 3),
    ((5, 3), ((2, 0), (0, 3)), 4, 2), ((5, 3), ((2, 0), (0, 3)), 2, 4),
    ((1, 1), ((0, 0), (0, 0)), 3, 5)], ids=str)
def test_tap_kernel_grad_equals_float64_numpy_and_lax(kernel, padding, c_in, c_out):
    x = RNG.standard_normal((2, 7, 6, c_in)).astype(np.float32)
    w = RNG.standard_normal((*kernel, c_in, c_out)).astype(np.float32)
    lax_conv = lambda x, w: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), precision="highest")
    g = RNG.standard_normal(lax_conv(x, w).shape).astype(np.float32)
    want = _numpy_kernel_grad(x, g, w.shape, padding)
    got = stride1_kernel_grad(jnp.asarray(x), jnp.asarray(g), w.shape, padding, "highest")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # The layer: lax's output and input gradient, these kernel gradients, and differentiable
    # twice (a gradient penalty takes the gradient of an input gradient).
    tapped = lambda x, w: conv_tap_kernel_grad(x, w, padding, "highest")  # noqa: E731
    for conv in (lax_conv, tapped):
        assert conv(x, w).shape == g.shape
    np.testing.assert_array_equal(tapped(x, w), lax_conv(x, w))
    grads = lambda conv: jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w))), (0, 1))(x, w)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    jax.tree.map(close, grads(tapped), grads(lax_conv))
    penalty = lambda conv: jax.grad(lambda w: jnp.sum(  # noqa: E731
        jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, w))))(x) ** 2))(w)
    close(penalty(tapped), penalty(lax_conv))


def _numpy_input_grad(g, w, x_shape, padding):
    """float64: every output pixel's gradient scattered back through the kernel's taps."""
    (pt, pb), (pl, pr) = padding
    n, h, wd, _ = x_shape
    grad = np.zeros((n, h + pt + pb, wd + pl + pr, w.shape[2]))
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            grad[:, i:i + g.shape[1], j:j + g.shape[2]] += np.einsum(
                "nhwo,co->nhwc", g.astype(np.float64), w[i, j].astype(np.float64))
    return grad[:, pt:pt + h, pl:pl + wd]


@pytest.mark.parametrize("kernel,padding", [
    ((3, 3), ((1, 1), (1, 1))), ((5, 3), ((2, 0), (0, 2))), ((1, 1), ((0, 0), (0, 0))),
    ((2, 2), ((1, 1), (1, 1)))], ids=str)
def test_input_grad_as_a_forward_convolution_equals_float64_numpy(kernel, padding):
    x_shape = (2, 7, 6, 5)
    w = RNG.standard_normal((*kernel, 5, 4)).astype(np.float32)
    out = jax.eval_shape(lambda x: conv_tap_kernel_grad(x, w, padding),
                         jax.ShapeDtypeStruct(x_shape, jnp.float32)).shape
    g = RNG.standard_normal(out).astype(np.float32)
    got = stride1_input_grad(jnp.asarray(g), jnp.asarray(w), padding, "highest")
    np.testing.assert_allclose(got, _numpy_input_grad(g, w, x_shape, padding), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("outputs", [6, 3])  # wider, thinner than the 5 patch columns
def test_patch_product_gradients_equal_float64_numpy_and_twice_differentiable(outputs):
    """The product under every matmul convolution: its custom gradient (the matrix gradient
    from a transposed copy of the patches or, when thinner, of the output gradient) against
    float64 NumPy, and its gradient penalty (the gradient of an input gradient) against jnp's
    own product."""
    patches = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    matrix = RNG.standard_normal((5, outputs)).astype(np.float32)
    loss = lambda product: lambda p, m: jnp.sum(jnp.sin(product(p, m)))  # noqa: E731
    custom = lambda p, m: patch_product(p, m, "highest")  # noqa: E731
    plain = lambda p, m: jnp.matmul(p, m, precision="highest")  # noqa: E731
    d_patches, d_matrix = jax.grad(loss(custom), (0, 1))(patches, matrix)
    p64, m64 = patches.astype(np.float64), matrix.astype(np.float64)
    upstream = np.cos(p64 @ m64)
    np.testing.assert_allclose(d_patches, upstream @ m64.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_matrix, np.einsum("abck,abcn->kn", p64, upstream), rtol=1e-5,
                               atol=1e-5)
    penalty = lambda product: jax.grad(lambda m: jnp.sum(  # noqa: E731
        jax.grad(loss(product))(patches, m) ** 2))(matrix)
    np.testing.assert_allclose(penalty(custom), penalty(plain), rtol=1e-4, atol=1e-4)


def test_matmul_conv_equals_torch_conv2d():
    x = RNG.standard_normal((2, 8, 8, 3)).astype(np.float32)
    w = RNG.standard_normal((4, 4, 3, 6)).astype(np.float32)
    got = conv_matmul(x, w, (2, 2), ((1, 1), (1, 1)))
    want = torch.nn.functional.conv2d(torch.tensor(x.transpose(0, 3, 1, 2)),
                                      torch.tensor(w.transpose(3, 2, 0, 1)), stride=2, padding=1)
    np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["matmul", "taps", "xla"])
def test_conv_transpose_layer_is_flax_conv_transpose(implementation):
    x = jnp.asarray(RNG.standard_normal((2, 4, 4, 3)), jnp.float32)
    settings = dict(features=5, kernel_size=(4, 4), strides=(2, 2), padding="SAME")
    _assert_same_layer(ConvTranspose(**settings, implementation=implementation,
                                     min_matmul_width=0), nn.ConvTranspose(**settings), x)


# The plain DCGAN in the default suite; spectral norm and conditioning (25 s) in the slow one.
@pytest.mark.parametrize("overrides", [
    {}, pytest.param({"model.spectral_norm": "g_and_d"}, marks=pytest.mark.slow),
    pytest.param({"model.conditioning": "projection"}, marks=pytest.mark.slow)], ids=str)
def test_a_dcgan_is_the_same_model_with_either_implementation(overrides):
    """Same parameter tree and initial values (checkpoints move between the two), and the
    same images, logits and gradients to float rounding."""
    # Widths at which D's second layer and G's first upsampling are matrix products.
    configs = [with_overrides(tiny_config(model__g_width=32, model__d_width=32),
                              {**overrides, "model.conv_implementation": impl})
               for impl in ("matmul", "xla")]
    z = jax.random.normal(jax.random.key(1), (4, 16))
    labels = jnp.arange(4) % 10
    outputs = []
    for config in configs:
        g, d = build_networks(config.model)

        @jax.jit  # one compilation per implementation instead of op-by-op dispatch
        def everything(z, labels, g=g, d=d):
            g_vars = g.init(jax.random.key(0), z, labels, train=False)
            fake = g.apply(g_vars, z, labels, train=False)
            d_vars = d.init(jax.random.key(0), fake, labels, train=False)

            def loss(g_vars, d_vars):
                images = g.apply(g_vars, z, labels, train=False)
                return jnp.sum(d.apply(d_vars, images, labels, train=False).logits)
            return g_vars, d_vars, fake, jax.value_and_grad(loss, (0, 1))(g_vars, d_vars)
        outputs.append(jax.device_get(everything(z, labels)))
    (g0, d0, fake0, (l0, grads0)), (g1, d1, fake1, (l1, grads1)) = outputs
    jax.tree.map(np.testing.assert_array_equal, (g0, d0), (g1, d1))
    np.testing.assert_allclose(fake0, fake1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l0, l1, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 grads0, grads1)


def test_auto_is_matmul_on_the_cpu_and_xla_elsewhere():
    assert default_implementation("cpu") == "matmul"
    assert default_implementation("gpu") == default_implementation("tpu") == "xla"
    assert default_implementation() == "matmul"  # the suite runs on the CPU


def _primitives(module, x) -> set[str]:
    """The primitives of the module's forward pass; a convolution with its input dilation."""
    variables = module.init(jax.random.key(0), x)
    eqns = jax.make_jaxpr(module.apply)(variables, x).jaxpr.eqns
    return {str(e.primitive) for e in eqns} | {
        f"conv with lhs_dilation {tuple(e.params['lhs_dilation'])}" for e in eqns
        if str(e.primitive) == "conv_general_dilated"}


def test_thin_layers_use_lax_and_wide_ones_a_matrix_product():
    """RGB input and output layers are too thin for a fast product (MIN_MATMUL_WIDTH)."""
    wide, rgb = jnp.zeros((2, 8, 8, 64)), jnp.zeros((2, 8, 8, 3))
    conv = lambda: Conv(64, (4, 4), strides=(2, 2), padding="SAME", implementation="matmul")
    assert "conv_general_dilated" not in _primitives(conv(), wide)
    assert "conv_general_dilated" in _primitives(conv(), rgb)
    up = lambda c: ConvTranspose(c, (4, 4), strides=(2, 2), padding="SAME",
                                 implementation="matmul")
    assert "conv_general_dilated" not in _primitives(up(64), wide)
    # Sub-pixel still (no input dilation, unlike lax.conv_transpose), its convolution by lax
    # with the tap-wise kernel gradient; a thin stride-1 Conv too.
    assert "custom_vjp_call" in _primitives(up(3), wide)
    assert "custom_vjp_call" in _primitives(Conv(64, (3, 3), padding=1,
                                                 implementation="matmul"), rgb)
    assert "custom_vjp_call" not in _primitives(conv(), rgb)  # stride 2: Flax's own
    assert "conv with lhs_dilation (2, 2)" in _primitives(
        ConvTranspose(3, (4, 4), strides=(2, 2), padding="SAME", implementation="xla"), wide)


@pytest.mark.parametrize("settings", [
    dict(kernel_size=(3, 3), padding=1), dict(kernel_size=(1, 1)),
    dict(kernel_size=(4, 4), strides=(2, 2), padding="SAME")], ids=str)
def test_taps_conv_is_flax_conv(settings):
    """"taps": the tap-wise gradients for every stride-1 layer, however wide; Flax's own
    convolution where the stride is not 1."""
    x = jnp.asarray(RNG.standard_normal((2, 9, 8, 64)), jnp.float32)
    conv = Conv(64, implementation="taps", **settings)
    _assert_same_layer(conv, nn.Conv(64, **settings), x)
    stride1 = settings.get("strides", 1) == 1
    assert conv._form(x) == ("taps" if stride1 else "flax")
    assert ("custom_vjp_call" in _primitives(conv, x)) == stride1


def _conv2d_float64(x, w, padding):
    """A stride-1 NHWC x HWIO convolution (cross-correlation) in float64 NumPy."""
    x = np.pad(x.astype(np.float64), ((0, 0), *padding, (0, 0)))
    k = w.shape[0]
    out_h, out_w = x.shape[1] - k + 1, x.shape[2] - k + 1
    return sum(np.einsum("nhwc,co->nhwo", x[:, i:i + out_h, j:j + out_w], w[i, j])
               for i in range(k) for j in range(k))


@pytest.mark.parametrize("kernel,padding", [(3, 0), (3, 1), (5, 2), (4, 1), (1, 0), (2, 0)])
@pytest.mark.parametrize("side", [(7, 7), (6, 9)])
def test_space_to_depth_convolution_equals_float64_numpy(kernel, padding, side):
    x = RNG.standard_normal((2, *side, 3)).astype(np.float32)
    w = RNG.standard_normal((kernel, kernel, 3, 4)).astype(np.float32)
    pads = ((padding, padding), (padding, padding))
    got = conv_space_to_depth(x, w, pads, precision="highest")
    np.testing.assert_allclose(got, _conv2d_float64(x, w, pads), rtol=1e-5, atol=1e-5)


def test_space_to_depth_layer_is_flax_conv_where_it_applies():
    x = jnp.asarray(RNG.standard_normal((2, 9, 9, 3)), jnp.float32)
    for settings in (dict(features=5, kernel_size=(3, 3), padding="VALID"),
                     dict(features=5, kernel_size=(3, 3), padding="SAME"),
                     dict(features=5, kernel_size=(3, 3), strides=(2, 2))):  # lax's: stride 2
        _assert_same_layer(Conv(**settings, implementation="space_to_depth"),
                           nn.Conv(**settings), x)
    assert Conv(5, (3, 3), implementation="space_to_depth")._form(x) == "space_to_depth"
    assert Conv(5, (3, 3), (2, 2), implementation="space_to_depth")._form(x) == "flax"
    with pytest.raises(ValueError, match="space_to_depth"):
        ConvTranspose(5, (4, 4), implementation="space_to_depth").init(jax.random.key(0), x)

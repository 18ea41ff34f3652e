"""Convolutions that are fast forward *and* backward on the CPU: patches times a matrix.

XLA:CPU runs the gradients of convolutions through slow generic paths: the weight gradient of
DCGAN's 4x4 stride-2 transposed convolution (16x16x256 -> 32x32x128, batch 128) takes 114 s
against 0.36 s forward, and even a stride-1 convolution's weight gradient is tens of times its
forward pass. Written as im2col (the k*k shifted views of the input, concatenated on the channel
axis) times the kernel reshaped to a matrix, the forward pass and both gradients are matrix
products plus slices and pads: 0.77 s forward and backward for that layer (PyTorch: 0.59 s).

A layer too thin for a fast product (an RGB input's 48 patch columns, an RGB output's 12 phase
channels) keeps lax's convolution forward, but a stride-1 one takes its kernel gradient as one
product per kernel tap of the input and the shifted output gradient (`conv_tap_kernel_grad`):
XLA:CPU's own kernel gradient of DCGAN's RGB output layer took 341 ms at batch 128 (64x64), a
tenth of the whole train step, and the tap products 39 ms. Its input gradient is a forward
convolution with the kernel flipped and transposed (`stride1_input_grad`): lax's transpose rule
gives XLA:CPU a reversed kernel in OI order, which in the train step ran tens of times slower
than the same convolution alone (BigGAN's Fashion-MNIST step: 1906-2046 -> 1221-1281 ms).

Transposed convolutions use the sub-pixel form first (Shi et al. 2016, "Real-Time Single Image
and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network"): output
pixel s*m + p only meets the kernel taps of its phase p, so a stride-s transposed convolution is
one stride-1 convolution of the input with s*s*C_out channels (each phase's taps) and a
depth-to-space shuffle. No zeros are inserted and none are multiplied. (One product per phase
over only its own outputs, which skips the convolution's extra row and column, was not faster
in the DCGAN 32x32 step: 494 against 466 ms in back-to-back runs on a noisy 2-core machine;
the per-phase patch copies cost what the skipped products save.)

Every product's kernel gradient (patches^T times the output gradient, a sum over the batch's
pixels) is a plain product of a transposed copy of the thinner of the two (`patch_product`,
`summed_over_rows`): XLA:CPU's own form of it ran 1.6-2.6x slower than a forward product of
the same size (the DCGAN train step on a 2-core AVX2 CPU, both forms interleaved in one
process: 615 -> 548 ms at 32x32 batch 64, 6577 -> 5996 ms at 64x64 batch 128, copying the
patches; copying the output gradient where it is the thinner, on a 2-core AVX-512 CPU: 288 ->
266 ms and 3121 -> 3055 ms).

`Conv` and `ConvTranspose` are Flax's layers with the same parameters (names, shapes, HWIO
layout, initialisation), so parameter trees and checkpoints are those of `flax.linen.Conv` /
`ConvTranspose`; `implementation` picks "matmul" (this module's products, with the tap form
for the thin layers), "taps" (the tap form for every stride-1 layer: lax's forward pass with
the gradients above) or "xla" (lax's convolutions and gradients, cuDNN on a GPU). All
three give the same outputs and gradients to float rounding (tested against lax and
PyTorch). `Conv` also takes "space_to_depth" (`conv_space_to_depth`: a stride-1 layer
computed on 2x2 pixel blocks, 4x as many channels), which the FID Inception uses for its one
32-channel 3x3 layer on the CPU.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMPLEMENTATIONS = ("matmul", "taps", "xla")
# Conv alone also takes "space_to_depth" (`conv_space_to_depth`): the FID Inception's thin
# stride-1 layers on the CPU, forward only.
CONV_IMPLEMENTATIONS = (*IMPLEMENTATIONS, "space_to_depth")
# Below this many columns on either side of the matrix product (an RGB input layer's 4*4*3 = 48
# patch columns, an RGB output layer's 2*2*3 = 12 phase channels), XLA:CPU's own convolution is
# faster, gradients included: the product is too thin to use the machine (measured on 2 cores:
# DCGAN's first D layer at batch 128, forward and backward, 24 ms with lax vs 51 ms as matmul).
MIN_MATMUL_WIDTH = 64


def default_implementation(backend: str | None = None) -> str:
    """matmul on the CPU, where XLA's convolution gradients are slow; xla (cuDNN, TPU
    convolutions) elsewhere, where the native kernels are the fast ones."""
    return "matmul" if (backend or jax.default_backend()) == "cpu" else "xla"


def _pair(value: int | Sequence[int] | None, default: int = 1) -> tuple[int, int]:
    if value is None:
        return (default, default)
    return (value, value) if isinstance(value, int) else tuple(value)


def conv_matmul(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                padding: Sequence[tuple[int, int]], precision=None,
                preferred_element_type=None) -> jax.Array:
    """lax.conv_general_dilated(x, kernel, strides, padding) for NHWC x, an HWIO kernel and
    padding >= 0, as im2col times the kernel matrix. Patch columns are ordered (ky, kx, c_in),
    as the kernel's reshape to (ky * kx * c_in, c_out) is."""
    kh, kw, c_in, c_out = kernel.shape
    (sh, sw), ((pt, pb), (pl, pr)) = strides, padding
    x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out_h, out_w = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    patches = jnp.concatenate(
        [x[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw]
         for i in range(kh) for j in range(kw)], axis=-1)
    return patch_product(patches, kernel.reshape(kh * kw * c_in, c_out), precision,
                         preferred_element_type)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def patch_product(patches: jax.Array, matrix: jax.Array, precision=None,
                  preferred_element_type=None) -> jax.Array:
    """patches (..., K) times matrix (K, N), whose matrix gradient patches^T g, a sum over the
    M = batch x pixels rows, is `summed_over_rows`: plain products of explicit transposes."""
    return jax.lax.dot_general(patches, matrix, (((patches.ndim - 1,), (0,)), ((), ())),
                               precision=precision,
                               preferred_element_type=preferred_element_type)


def _patch_product_forward(patches, matrix, precision, preferred_element_type):
    return (patch_product(patches, matrix, precision, preferred_element_type),
            (patches, matrix))


def _patch_product_backward(precision, preferred_element_type, residuals, g):
    patches, matrix = residuals
    d_patches = jax.lax.dot_general(g, matrix, (((g.ndim - 1,), (1,)), ((), ())),
                                    precision=precision,
                                    preferred_element_type=preferred_element_type)
    rows, g_rows = patches.reshape(-1, patches.shape[-1]), g.reshape(-1, g.shape[-1])
    d_matrix = summed_over_rows(rows, g_rows.astype(rows.dtype), precision,
                                preferred_element_type)
    return d_patches.astype(patches.dtype), d_matrix.astype(matrix.dtype)


patch_product.defvjp(_patch_product_forward, _patch_product_backward)


def summed_over_rows(a: jax.Array, b: jax.Array, precision=None,
                     preferred_element_type=None) -> jax.Array:
    """a^T b for a (M, K) and b (M, N), a sum over the M rows, as a plain product of an explicit
    transposed copy of the thinner operand. XLA:CPU's own product over the major axis runs
    1.6-2.6x slower than a forward product of the same size (its Eigen fallback spends the time
    packing). Copying the thinner side costs least: for D's 4x4 stride-2 layer at 16x16x64 ->
    8x8x128, batch 64 (K = 1024 patch columns, N = 128 outputs) the product took 11.3 ms from
    a transposed copy of the patches and 7.3 ms as (b^T a)^T (2-core AMD EPYC, AVX-512)."""
    barrier = jax.lax.optimization_barrier  # keeps XLA from folding a transpose into the dot
    plain = functools.partial(jax.lax.dot_general, dimension_numbers=(((1,), (0,)), ((), ())),
                              precision=precision, preferred_element_type=preferred_element_type)
    if b.shape[1] < a.shape[1]:
        return barrier(plain(barrier(b.T), a)).T
    return plain(barrier(a.T), b)


def _lax_conv(x: jax.Array, kernel: jax.Array, padding, precision=None,
              preferred_element_type=None) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision, preferred_element_type=preferred_element_type)


def stride1_kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: Sequence[int],
                        padding: Sequence[tuple[int, int]], precision=None) -> jax.Array:
    """The kernel gradient of a stride-1 convolution y = conv(x, kernel, padding >= 0) for an
    output gradient g, as one (C_in x C_out) product per tap: tap (i, j) pairs input pixel a with
    output pixel a + pad - (i, j). The thinner of x and g is the one shifted (sliced)."""
    kh, kw = kernel_shape[:2]
    (pt, _), (pl, _) = padding
    height, width = x.shape[1:3]
    if x.shape[-1] <= g.shape[-1]:  # shift the (padded) input against the output gradient
        x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
        pairs = [(x[:, i:i + g.shape[1], j:j + g.shape[2]], g)
                 for i in range(kh) for j in range(kw)]
    else:  # shift the output gradient (zero beyond its edges) against the input
        g = jnp.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
        rows = lambda i: slice(pt - i + kh - 1, pt - i + kh - 1 + height)  # noqa: E731
        cols = lambda j: slice(pl - j + kw - 1, pl - j + kw - 1 + width)  # noqa: E731
        pairs = [(x, g[:, rows(i), cols(j)]) for i in range(kh) for j in range(kw)]
    # Sums in float32 at least (bfloat16 inputs), float64 under jax_enable_x64.
    accumulate = jnp.promote_types(jnp.result_type(x, g), jnp.float32)
    taps = [jnp.einsum("nhwc,nhwo->co", a, b, precision=precision,
                       preferred_element_type=accumulate) for a, b in pairs]
    return jnp.stack(taps).reshape(kernel_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_tap_kernel_grad(x: jax.Array, kernel: jax.Array,
                         padding: tuple[tuple[int, int], tuple[int, int]], precision=None,
                         preferred_element_type=None) -> jax.Array:
    """A stride-1 lax convolution (NHWC, HWIO, padding >= 0) whose kernel gradient is
    `stride1_kernel_grad` and input gradient `stride1_input_grad`; its forward pass is lax's.
    For layers too thin for a matrix product, where lax's forward pass is fast but its
    gradients are not."""
    return _lax_conv(x, kernel, padding, precision, preferred_element_type)


def _tap_grad_forward(x, kernel, padding, precision, preferred_element_type):
    return conv_tap_kernel_grad(x, kernel, padding, precision, preferred_element_type), (x, kernel)


def stride1_input_grad(g: jax.Array, kernel: jax.Array, padding: Sequence[tuple[int, int]],
                       precision=None, preferred_element_type=None) -> jax.Array:
    """The input gradient of a stride-1 convolution (NHWC, HWIO, padding p >= 0 with p < k) as a
    forward convolution of g with the kernel flipped and its channel axes swapped, padded
    k - 1 - p: an HWIO kernel, which XLA:CPU runs on its fast path, where lax's transpose rule
    gives a reversed kernel in OI order."""
    kh, kw = kernel.shape[:2]
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    (pt, pb), (pl, pr) = padding
    return _lax_conv(g, flipped, ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr)),
                     precision, preferred_element_type)


def _tap_grad_backward(padding, precision, preferred_element_type, residuals, g):
    x, kernel = residuals
    if all(p < k for (low, high), k in zip(padding, kernel.shape[:2]) for p in (low, high)):
        dx = stride1_input_grad(g, kernel, padding, precision, preferred_element_type)
    else:  # a padding past the kernel: lax's own transpose
        _, pull_back = jax.vjp(lambda x: _lax_conv(x, kernel, padding, precision,
                                                   preferred_element_type), x)
        (dx,) = pull_back(g)
    dkernel = stride1_kernel_grad(x, g, kernel.shape, padding, precision)
    return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


conv_tap_kernel_grad.defvjp(_tap_grad_forward, _tap_grad_backward)


def _same_padding_low(kernel: int, stride: int) -> int:
    """Padding before the input of lax.conv_transpose's 'SAME' (jax's _conv_transpose_padding)."""
    return kernel - 1 if stride > kernel - 1 else int(np.ceil((kernel + stride - 2) / 2))


def _phase_plan(kernel: int, stride: int) -> tuple[np.ndarray, np.ndarray, int]:
    """For one spatial axis of a 'SAME' transposed convolution: taps[p, i], the kernel tap that
    output phase p applies to input offset offsets[p] + i (-1: none), and the taps per phase."""
    low = _same_padding_low(kernel, stride)
    length = -(-kernel // stride)
    taps = np.full((stride, length), -1)
    offsets = np.zeros(stride, int)
    for phase in range(stride):
        first = (low - phase) % stride  # output s*m + p meets the taps t = low - p (mod s)
        offsets[phase] = (phase + first - low) // stride
        for i, tap in enumerate(range(first, kernel, stride)):
            taps[phase, i] = tap
    return taps, offsets, length


def subpixel_kernel(kernel: jax.Array, stride: int) -> jax.Array:
    """The (L, L, C_in, s*s*C_out) stride-1 kernel of every phase of a transposed convolution's
    square (k, k, C_in, C_out) kernel; phase (py, px) is channel block (py * s + px)."""
    size, _, c_in, c_out = kernel.shape
    taps, _, length = _phase_plan(size, stride)
    ky, kx = taps[:, None, :, None], taps[None, :, None, :]  # -> [py, px, ty, tx]
    flat = np.where((ky >= 0) & (kx >= 0), ky * size + kx, size * size)  # k*k: a zero tap
    padded = jnp.concatenate([kernel.reshape(size * size, c_in, c_out),
                              jnp.zeros((1, c_in, c_out), kernel.dtype)])
    phases = padded[flat]  # (s, s, L, L, C_in, C_out)
    return phases.transpose(2, 3, 4, 0, 1, 5).reshape(length, length, c_in,
                                                      stride * stride * c_out)


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, stride: int,
                            implementation: str = "matmul", precision=None,
                            preferred_element_type=None) -> jax.Array:
    """lax.conv_transpose(x, kernel, (s, s), 'SAME') for NHWC x and a square HWIO kernel:
    one stride-1 convolution (`implementation`: "matmul", "xla", or "taps": lax's with
    `conv_tap_kernel_grad`'s kernel gradient) and a depth-to-space shuffle."""
    n, height, width, _ = x.shape
    size, c_out = kernel.shape[0], kernel.shape[-1]
    _, offsets, length = _phase_plan(size, stride)
    pad_low = max(0, -int(offsets.min()))
    starts = offsets + pad_low  # where phase p's outputs begin in the convolution's output
    pad_high = int(starts.max()) + length - 1 - pad_low
    padding = ((pad_low, pad_high), (pad_low, pad_high))
    phase_kernel = subpixel_kernel(kernel, stride)
    if implementation == "matmul":
        z = conv_matmul(x, phase_kernel, (1, 1), padding, precision, preferred_element_type)
    elif implementation == "taps":
        z = conv_tap_kernel_grad(x, phase_kernel, padding, precision, preferred_element_type)
    else:
        z = _lax_conv(x, phase_kernel, padding, precision, preferred_element_type)
    z = z.reshape(*z.shape[:3], stride, stride, c_out)
    rows = [jnp.stack([z[:, sy:sy + height, sx:sx + width, py, px]
                       for px, sx in enumerate(starts)], axis=3)
            for py, sy in enumerate(starts)]  # each (N, H, W, s_x, C_out)
    y = jnp.stack(rows, axis=2)  # (N, H, s_y, W, s_x, C_out)
    return y.reshape(n, height * stride, width * stride, c_out)


def _blocks_spanned(size: int, block: int) -> int:
    """How many b x b blocks a window of k taps spans along an axis, from any output phase."""
    return -(-(size - 1) // block) + 1


def space_to_depth_kernel(kernel: jax.Array, block: int = 2) -> jax.Array:
    """The (L, L, b*b*C_in, b*b*C_out) kernel over b x b pixel blocks of a stride-1 square
    (k, k, C_in, C_out) kernel, L = ceil((k - 1) / b) + 1: block offset q, input phase u and
    output phase r meet tap t = b*q + u - r (zero where t is outside 0..k-1). Channels are
    ordered (phase y, phase x, channel), as `conv_space_to_depth` lays out its blocks."""
    size, _, c_in, c_out = kernel.shape
    length = _blocks_spanned(size, block)
    q, u, r = np.ogrid[:length, :block, :block]
    taps = block * q + u - r  # (L, b_in, b_out)
    valid = (taps >= 0) & (taps < size)
    taps = np.clip(taps, 0, size - 1)
    # [qy, qx, uy, ux, ry, rx] -> the kernel's (ty, tx) taps, then (C_in, C_out)
    ty, tx = taps[:, None, :, None, :, None], taps[None, :, None, :, None, :]
    mask = valid[:, None, :, None, :, None] & valid[None, :, None, :, None, :]
    blocks = kernel[ty, tx] * jnp.asarray(mask, kernel.dtype)[..., None, None]
    return blocks.transpose(0, 1, 2, 3, 6, 4, 5, 7).reshape(
        length, length, block * block * c_in, block * block * c_out)


def conv_space_to_depth(x: jax.Array, kernel: jax.Array,
                        padding: Sequence[tuple[int, int]], block: int = 2, precision=None,
                        preferred_element_type=None) -> jax.Array:
    """lax.conv_general_dilated(x, kernel, (1, 1), padding) for NHWC x and a square HWIO kernel,
    computed on b x b pixel blocks: the input's blocks as b*b*C_in channels, one stride-1
    convolution with `space_to_depth_kernel`, the output's blocks back to pixels. It multiplies
    ~(L*b/k)^2 more (1.8x for 3x3, b = 2) but its channels are b*b times wider, which is what
    XLA:CPU's convolution kernels need: the FID Inception's 149x149x32 -> 32 3x3 layer ran in
    278 instead of 440 ms at batch 16, and the whole network at 6.8 instead of 5.9 img/s (2-core
    AVX-512 CPU), while its wider layers ran 2x slower this way."""
    size, _, c_in, c_out = kernel.shape
    n = x.shape[0]
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    out_h, out_w = x.shape[1] - size + 1, x.shape[2] - size + 1
    length = _blocks_spanned(size, block)
    rows, cols = -(-out_h // block), -(-out_w // block)  # output blocks
    high, wide = (rows + length - 1) * block, (cols + length - 1) * block
    x = jnp.pad(x, ((0, 0), (0, high - x.shape[1]), (0, wide - x.shape[2]), (0, 0)))
    x = x.reshape(n, high // block, block, wide // block, block, c_in)
    x = x.transpose(0, 1, 3, 2, 4, 5).reshape(n, high // block, wide // block, -1)
    y = jax.lax.conv_general_dilated(
        x, space_to_depth_kernel(kernel, block).astype(x.dtype), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision,
        preferred_element_type=preferred_element_type)
    y = y.reshape(n, rows, cols, block, block, c_out).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, rows * block, cols * block, c_out)[:, :out_h, :out_w]


def _check(implementation: str, choices: tuple[str, ...] = IMPLEMENTATIONS) -> None:
    if implementation not in choices:
        raise ValueError(f"implementation={implementation!r}; use one of {choices}")


class Conv(nn.Conv):
    """flax.linen.Conv, computed as patches times a matrix (`implementation="matmul"`) where
    that applies: 2D NHWC, no dilation, one feature group, no mask, padding >= 0, a product at
    least MIN_MATMUL_WIDTH wide. A thinner stride-1 layer, and every stride-1 layer with
    "taps", is lax's convolution with the tap-wise gradients (`conv_tap_kernel_grad`);
    anything else, and every layer with "xla", is Flax's own lax convolution. Named like
    Flax's layer (Conv_0/kernel, ...)."""

    implementation: str = "xla"
    min_matmul_width: int = MIN_MATMUL_WIDTH

    def _explicit_padding(self, inputs: jax.Array) -> list[tuple[int, int]]:
        padding = self.padding
        if isinstance(padding, str):
            return jax.lax.padtype_to_pads(inputs.shape[1:3], _pair(self.kernel_size),
                                           _pair(self.strides), padding)
        if isinstance(padding, int):
            return [(padding, padding)] * 2
        return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]

    def _form(self, inputs: jax.Array) -> str:
        """"matmul", "taps", "space_to_depth" or "flax": how this call is computed."""
        kernel_size = _pair(self.kernel_size)
        if not (self.implementation != "xla" and inputs.ndim == 4
                and len(kernel_size) == 2
                and _pair(self.kernel_dilation) == _pair(self.input_dilation) == (1, 1)
                and self.feature_group_count == 1 and self.mask is None
                and not (isinstance(self.padding, str) and self.padding == "CIRCULAR")
                and min(min(p) for p in self._explicit_padding(inputs)) >= 0):
            return "flax"
        if self.implementation == "space_to_depth":
            square_stride1 = kernel_size[0] == kernel_size[1] and _pair(self.strides) == (1, 1)
            return "space_to_depth" if square_stride1 else "flax"
        width = min(int(np.prod(kernel_size)) * inputs.shape[-1], self.features)
        if self.implementation == "matmul" and width >= self.min_matmul_width:
            return "matmul"
        return "taps" if _pair(self.strides) == (1, 1) else "flax"

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        _check(self.implementation, CONV_IMPLEMENTATIONS)
        form = self._form(inputs)
        if form == "flax":
            return super().__call__(inputs)
        kernel_size, strides = _pair(self.kernel_size), _pair(self.strides)
        # The same parameters, in the same order, as flax.linen.Conv creates.
        kernel = self.param("kernel", self.kernel_init,
                            (*kernel_size, inputs.shape[-1], self.features), self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        padding = tuple(map(tuple, self._explicit_padding(inputs)))
        if form == "matmul":
            y = conv_matmul(inputs, kernel, strides, padding, self.precision)
        elif form == "space_to_depth":
            y = conv_space_to_depth(inputs, kernel, padding, precision=self.precision)
        else:
            y = conv_tap_kernel_grad(inputs, kernel, padding, self.precision)
        return y if bias is None else y + bias


class ConvTranspose(nn.ConvTranspose):
    """flax.linen.ConvTranspose in the sub-pixel form where that applies (2D, 'SAME' padding,
    square kernel and stride <= kernel, no dilation, mask or kernel transpose), its stride-1
    convolution computed by `implementation`; elsewhere lax.conv_transpose. Named like Flax's
    layer, so the parameter tree (ConvTranspose_0/kernel, ...) is the same."""

    implementation: str = "xla"
    min_matmul_width: int = MIN_MATMUL_WIDTH

    def _subpixel_applies(self, inputs: jax.Array) -> bool:
        size, strides = _pair(self.kernel_size), _pair(self.strides)
        return (inputs.ndim == 4 and len(size) == 2 and size[0] == size[1]
                and strides[0] == strides[1] <= size[0] and self.padding == "SAME"
                and _pair(self.kernel_dilation) == (1, 1)
                and not self.transpose_kernel and self.mask is None)

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        _check(self.implementation)
        if self.implementation == "xla" or not self._subpixel_applies(inputs):
            return super().__call__(inputs)
        size, stride = _pair(self.kernel_size)[0], _pair(self.strides)[0]
        # The same parameters, in the same order, as flax.linen.ConvTranspose creates.
        kernel = self.param("kernel", self.kernel_init,
                            (size, size, inputs.shape[-1], self.features), self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        # An output too thin for a matrix product (RGB) uses lax for the stride-1 convolution,
        # with the tap-wise gradients.
        thin = min(inputs.shape[-1], stride * stride * self.features) < self.min_matmul_width
        form = "taps" if thin or self.implementation == "taps" else "matmul"
        y = conv_transpose_subpixel(inputs, kernel, stride, form,
                                    self.precision, self.preferred_element_type)
        return y if bias is None else y + bias

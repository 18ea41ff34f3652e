"""Resize images to the FID Inception network's 299x299 input and normalise them, three ways.

Why the mode matters: Parmar et al. 2022 ("On Aliased Resizing and Surprising Subtleties in GAN
Evaluation", clean-fid) showed that the resize in front of the Inception network moves FID by
amounts comparable to published improvements. Bilinear resizes without antialiasing alias when
they downsample and shift the image by half a pixel when they ignore pixel centres, and the
Inception features notice. An FID is only comparable with one computed with the same resize:

  "clean"      clean-fid: PIL bicubic (antialiased when downsampling) on each channel as a float32
               image, clipped to [0, 255], then (x - 128) / 128.
  "tf_legacy"  the original TTUR FID code (Heusel et al. 2017), TF-GAN's
               `tfgan.eval.preprocess_image` and the "Are GANs Created Equal?" (Lucic et al. 2018)
               numbers: TF1 `resize_bilinear` (align_corners=False, half_pixel_centers=False) on
               [0, 255], then (x - 128) / 128.
  "pytorch"    pytorch-fid: `F.interpolate(mode="bilinear", align_corners=False)` without
               antialiasing on x / 255, then 2 * x - 1.

The default, "clean", is the resize of the project's ANCHORS floor measurement (FID 3.13 between
the Fashion-MNIST train-10k and test images).

All three are linear and separable, so each is one (out_size, in_size) matrix per axis, built in
float64 NumPy from the reference's own formulas and applied in JAX as two matmuls: along the
width first, then the height, the order all three references use ("clean"'s clip comes after).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.metrics.checks import check_choice

RESIZE_MODES = ("clean", "tf_legacy", "pytorch")

# PIL's bicubic kernel: Keys' cubic convolution with a = -0.5, zero beyond |x| >= 2.
_BICUBIC_A = -0.5
_BICUBIC_SUPPORT = 2.0


def _pil_bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's `bicubic_filter` (Resample.c), vectorised."""
    x = np.abs(x)
    a = _BICUBIC_A
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _clean_matrix(in_size: int, out_size: int) -> np.ndarray:
    """PIL's `precompute_coeffs` for BICUBIC with the whole image as the box (in0 = 0)."""
    scale = in_size / out_size
    # Downsampling stretches the kernel over `scale` input pixels: that is PIL's antialiasing.
    filterscale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filterscale
    matrix = np.zeros((out_size, in_size), np.float64)
    for i in range(out_size):
        center = (i + 0.5) * scale
        # C's (int) truncates toward zero; a negative value is clamped to 0 right after, so
        # int() (also truncation) reproduces it.
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        j = np.arange(xmin, xmax)
        weights = _pil_bicubic((j - center + 0.5) / filterscale)
        total = weights.sum()
        if total != 0.0:  # PIL leaves an all-zero row unnormalised rather than dividing by 0
            weights = weights / total
        matrix[i, xmin:xmax] = weights
    return matrix


def _lerp_matrix(src: np.ndarray, in_size: int) -> np.ndarray:
    """Linear interpolation at (non-negative) source coordinates `src`, clamped at the far edge.

    Both bilinear references take x0 = floor(src), x1 = min(x0 + 1, in_size - 1) and weights
    (1 - t, t) with t = src - x0; at the last pixel both weights land on the same column. (TF
    writes x1 = min(ceil(src), in_size - 1), which differs only where t = 0.)
    """
    x0 = np.floor(src).astype(np.int64)
    x1 = np.minimum(x0 + 1, in_size - 1)
    t = src - x0
    rows = np.arange(len(src))
    matrix = np.zeros((len(src), in_size), np.float64)
    np.add.at(matrix, (rows, x0), 1.0 - t)
    np.add.at(matrix, (rows, x1), t)
    return matrix


# Both bilinear references compute the source coordinate in float32, from a float32 scale
# in/out. Taking float64 coordinates instead moves the weights by up to ~in_size * 2^-24, i.e.
# ~0.006 grey levels at in_size 512 (5e-5 after normalisation); rounding them the way the
# references do leaves only the float32 rounding of the output (~1e-6).


def _tf_legacy_matrix(in_size: int, out_size: int) -> np.ndarray:
    """TF1 resize_bilinear, align_corners=False, half_pixel_centers=False: src = dst * in/out."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale  # one float32 product, as in TF
    return _lerp_matrix(src.astype(np.float64), in_size)


def _pytorch_matrix(in_size: int, out_size: int) -> np.ndarray:
    """torch bilinear, align_corners=False: src = (dst + 0.5) * in/out - 0.5, clamped at 0."""
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    # torch's float32 scale * (dst + 0.5) - 0.5 compiles to a fused multiply-add, one rounding
    # (measured on its AVX2 CPU kernel; nvcc also fuses by default; only its portable DEFAULT CPU
    # kernel rounds twice, ~1 float32 ulp of the coordinate away). In float64 the expression is
    # exact, so rounding it once to float32 reproduces the FMA.
    src = (scale * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
    return _lerp_matrix(np.maximum(src, 0.0).astype(np.float64), in_size)


_MATRIX_BUILDERS = {
    "clean": _clean_matrix,
    "tf_legacy": _tf_legacy_matrix,
    "pytorch": _pytorch_matrix,
}


@functools.lru_cache(maxsize=None)
def resize_matrix(mode: str, in_size: int, out_size: int) -> np.ndarray:
    """The float64 (out_size, in_size) matrix that resizes one axis the way `mode` does.

    Cached: it depends only on the sizes, and the cached array is read-only so no caller can
    corrupt the next one's resize.
    """
    check_choice("resize mode", mode, RESIZE_MODES)
    matrix = _MATRIX_BUILDERS[mode](int(in_size), int(out_size))
    matrix.setflags(write=False)
    return matrix


def _normalise(x: jax.Array, mode: str) -> jax.Array:
    """Map resized [0, 255] values to the range each reference feeds its Inception network."""
    if mode == "clean":
        # PIL's float bicubic overshoots at edges; clean-fid clips back to the pixel range.
        return (jnp.clip(x, 0.0, 255.0) - 128.0) / 128.0
    if mode == "tf_legacy":
        return (x - 128.0) / 128.0
    # pytorch-fid: 2 * resize(x / 255) - 1, the same up to float rounding since resize is linear.
    return x / 127.5 - 1.0


def to_inception_input(images: jax.Array, mode: str = "clean", size: int = 299) -> jax.Array:
    """Resize NHWC images in [0, 255] to (N, size, size, C) and normalise them for Inception.

    `mode` is one of RESIZE_MODES (see the module docstring); `mode` and `size` must be static
    under jit. C is usually 3; each channel is resized on its own, so C = 1 works too.
    """
    check_choice("resize mode", mode, RESIZE_MODES)
    images = jnp.asarray(images, jnp.float32)
    _, height, width, _ = images.shape
    rows = jnp.asarray(resize_matrix(mode, height, size), jnp.float32)
    cols = jnp.asarray(resize_matrix(mode, width, size), jnp.float32)
    # HIGHEST: on GPU/TPU the default matmul precision rounds inputs to TF32 or bf16, errors of
    # up to about one grey level, far more than the references differ from each other.
    highest = jax.lax.Precision.HIGHEST
    # Width first, like PIL's horizontal pass (and TF's/torch's inner loop); for "clean" this
    # also keeps PIL's float32 intermediate image.
    x = jnp.einsum("qw,nhwc->nhqc", cols, images, precision=highest)
    x = jnp.einsum("ph,nhqc->npqc", rows, x, precision=highest)
    return _normalise(x, mode)

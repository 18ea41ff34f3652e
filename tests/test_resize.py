"""FID input resizes against the implementations they reproduce.

clean      vs real PIL (`Image.resize` BICUBIC on mode "F" images, clip, normalise);
tf_legacy  vs a float64 NumPy gather transcription and vs `tf.compat.v1.image.resize_bilinear`;
pytorch    vs a float64 NumPy gather transcription and vs `torch.nn.functional.interpolate`.
"""

import os

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax.errors import UserError
from gan_jax.metrics.resize import RESIZE_MODES, resize_matrix, to_inception_input

OUT = 299
# (height, width) of the inputs: Fashion-MNIST, CIFAR, 64x64 faces, already 299 (identity), a
# downsample (where antialiasing matters) and a non-square one.
IN_SHAPES = [(28, 28), (32, 32), (64, 64), (299, 299), (512, 512), (20, 37)]

# Tolerances in the normalised range (1/128 per grey level). Against the libraries only float32
# rounding remains (measured <= 5e-7). The float64 formula transcriptions differ more: TF and
# torch round the source coordinate to float32 (and so does resize.py, to match them), which moves
# the result by up to ~in_size * 2^-24 * 255 grey levels (measured 5e-5 at in_size 512).
TOL_LIBRARY = 2e-6
TOL_FORMULA = 1e-4


def _images(height, width, channels=3, n=2, seed=0):
    """Random uint8 images as float32 NHWC in [0, 255]."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, height, width, channels), dtype=np.uint8).astype(np.float32)


# One jitted function for all tests: one compile per (shape, mode), none per call.
_resize = jax.jit(to_inception_input, static_argnames=("mode", "size"))


def _ours(images, mode):
    return np.asarray(_resize(images, mode=mode, size=OUT), np.float64)


def _max_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---- references ------------------------------------------------------------------------------

def _pil_clean(images):
    """clean-fid: each channel a float32 PIL image, bicubic to OUT x OUT, clip, then Inception's
    (x - 128) / 128."""
    n, _, _, c = images.shape
    out = np.empty((n, OUT, OUT, c), np.float32)
    for i in range(n):
        for ch in range(c):
            img = Image.fromarray(images[i, :, :, ch].astype(np.float32), mode="F")
            out[i, :, :, ch] = np.asarray(img.resize((OUT, OUT), resample=Image.BICUBIC))
    return (np.clip(out, 0, 255).astype(np.float64) - 128.0) / 128.0


def _np_bilinear(images, source):
    """Float64 bilinear resize by gathering the two neighbours along each axis.

    `source(dst, in_size)` gives the source coordinate of each output pixel; x0 = floor, x1 the
    next pixel clamped to the last one, weight of x1 = the fractional part.
    """
    x = images.astype(np.float64)

    def neighbours(in_size):
        src = source(np.arange(OUT, dtype=np.float64), in_size)
        x0 = np.floor(src).astype(int)
        return x0, np.minimum(x0 + 1, in_size - 1), src - x0

    y0, y1, ty = neighbours(x.shape[1])
    x0, x1, tx = neighbours(x.shape[2])
    x = x[:, y0] * (1 - ty)[:, None, None] + x[:, y1] * ty[:, None, None]
    return x[:, :, x0] * (1 - tx)[:, None] + x[:, :, x1] * tx[:, None]


def _np_tf_legacy(images):
    resized = _np_bilinear(images, lambda dst, n: dst * n / OUT)
    return (resized - 128.0) / 128.0


def _np_pytorch(images):
    resized = _np_bilinear(images / 255.0,
                           lambda dst, n: np.maximum((dst + 0.5) * n / OUT - 0.5, 0.0))
    return 2.0 * resized - 1.0


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's import is slow and chatty: once
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_tolerance(torch):
    """torch's AVX2/AVX-512 CPU kernels fuse the source coordinate's multiply-add, as resize.py
    assumes; its portable DEFAULT kernel rounds twice, ~1 float32 ulp of the coordinate away."""
    get_capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    return TOL_FORMULA if get_capability() == "DEFAULT" else TOL_LIBRARY


# ---- each mode against its reference ---------------------------------------------------------

@pytest.mark.parametrize("shape", IN_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_clean_matches_pil(shape):
    images = _images(*shape)
    assert _max_err(_ours(images, "clean"), _pil_clean(images)) <= TOL_LIBRARY


@pytest.mark.parametrize("shape", IN_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_tf_legacy_matches_numpy_and_tensorflow(shape, tf):
    images = _images(*shape)
    ours = _ours(images, "tf_legacy")
    assert _max_err(ours, _np_tf_legacy(images)) <= TOL_FORMULA
    theirs = tf.compat.v1.image.resize_bilinear(tf.constant(images), [OUT, OUT]).numpy()
    assert _max_err(ours, (theirs.astype(np.float64) - 128.0) / 128.0) <= TOL_LIBRARY


@pytest.mark.parametrize("shape", IN_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pytorch_matches_numpy_and_torch(shape, torch):
    images = _images(*shape)
    ours = _ours(images, "pytorch")
    assert _max_err(ours, _np_pytorch(images)) <= TOL_FORMULA
    nchw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2) / 255.0,
                                                 np.float32))
    resized = torch.nn.functional.interpolate(nchw, size=(OUT, OUT), mode="bilinear",
                                              align_corners=False)
    theirs = (2 * resized - 1).numpy().transpose(0, 2, 3, 1)
    assert _max_err(ours, theirs) <= _torch_tolerance(torch)


# ---- properties ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_matrix_rows_sum_to_one(mode):
    """Every output pixel is a weighted average, so flat images stay flat."""
    for in_size in (20, 28, 32, 37, 64, 299, 512):
        matrix = resize_matrix(mode, in_size, OUT)
        assert matrix.shape == (OUT, in_size)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_same_size_is_identity(mode):
    np.testing.assert_array_equal(resize_matrix(mode, OUT, OUT), np.eye(OUT))
    images = _images(OUT, OUT, n=1)
    expected = images / 127.5 - 1.0 if mode == "pytorch" else (images - 128.0) / 128.0
    np.testing.assert_allclose(_ours(images, mode), expected, rtol=0, atol=1e-6)


def test_clean_antialiases_when_downsampling():
    """PIL widens the kernel by in/out when shrinking; the bilinear modes keep two taps."""
    taps = (resize_matrix("clean", 512, OUT) != 0).sum(axis=1)
    assert taps.max() > 4
    for mode in ("tf_legacy", "pytorch"):
        assert (resize_matrix(mode, 512, OUT) != 0).sum(axis=1).max() <= 2


def test_matrix_is_cached_and_read_only():
    matrix = resize_matrix("clean", 28, OUT)
    assert resize_matrix("clean", 28, OUT) is matrix
    with pytest.raises(ValueError):
        matrix[0, 0] = 1.0


def test_unknown_mode_is_a_user_error():
    for call in (lambda: resize_matrix("bicubic", 28, OUT),
                 lambda: to_inception_input(_images(28, 28), mode="bicubic")):
        with pytest.raises(UserError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and "'bicubic'" in message
        assert all(mode in message for mode in RESIZE_MODES)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_jit_matches_eager_and_shape(mode):
    images = _images(28, 28)
    jitted = _resize(images, mode=mode, size=OUT)
    assert jitted.shape == (2, OUT, OUT, 3) and jitted.dtype == np.float32
    eager = to_inception_input(images, mode=mode)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_one_channel_equals_each_channel_of_three(mode):
    images = _images(32, 20)
    three = _ours(images, mode)
    for ch in range(3):
        one = _ours(images[..., ch:ch + 1], mode)
        assert one.shape == (2, OUT, OUT, 1)
        np.testing.assert_allclose(one[..., 0], three[..., ch], rtol=0, atol=1e-6)

"""DiffAugment against the reference formulas (DiffAugment-pytorch, run in PyTorch on the same
draws), hand-built expectations for translation and cutout, and ADA's probability update."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.augment import (POLICIES, adjust_color, adjust_probability, color_uniforms, cutout,
                             cutout_size, diff_augment, parse_policy, translate)
from gan_jax.errors import UserError
from gan_jax.sharding import batch_sharded, make_mesh

RNG = np.random.default_rng(0)
# Nearly every test uses this one batch shape: eager JAX compiles each primitive once per shape,
# which is most of this file's time. 512 samples for the statistical tests; 12 pixels tell the
# reference's rounding apart (translation s = int(12 / 8 + 0.5) = 2, where 12 // 8 = 1).
IMAGES = jnp.asarray(RNG.uniform(-1, 1, (512, 12, 12, 3)), jnp.float32)


def tiled(rows):
    """Hand-chosen per-sample values, repeated to the batch size."""
    return np.resize(np.array(rows, np.int32), (len(IMAGES), 2))


# --- the reference, transcribed from DiffAugment-pytorch with its draws passed in -------------
# Each function takes NCHW float64 tensors and the values the reference draws with torch.rand
# or torch.randint, so it runs on exactly the draws gan_jax made.

def torch_color(x, u):
    import torch
    u = torch.as_tensor(u, dtype=x.dtype).reshape(-1, 3, 1, 1, 1)
    x = x + (u[:, 0] - 0.5)  # rand_brightness
    x_mean = x.mean(dim=1, keepdim=True)
    x = (x - x_mean) * (u[:, 1] * 2) + x_mean  # rand_saturation
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - x_mean) * (u[:, 2] + 0.5) + x_mean  # rand_contrast


def torch_translation(x, translation_x, translation_y):
    import torch
    import torch.nn.functional as F
    translation_x = torch.as_tensor(translation_x).reshape(-1, 1, 1)
    translation_y = torch.as_tensor(translation_y).reshape(-1, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0)), torch.arange(x.size(2)), torch.arange(x.size(3)), indexing="ij")
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def torch_cutout(x, offset_x, offset_y, ratio=0.5):
    import torch
    cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = torch.as_tensor(offset_x).reshape(-1, 1, 1)
    offset_y = torch.as_tensor(offset_y).reshape(-1, 1, 1)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0)), torch.arange(cutout_size[0]), torch.arange(cutout_size[1]),
        indexing="ij")
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


def to_torch(images):
    import torch
    return torch.as_tensor(np.asarray(images, np.float64)).permute(0, 3, 1, 2)


def from_torch(x):
    return x.permute(0, 2, 3, 1).numpy()


# --- parse_policy ----------------------------------------------------------------------------

def test_parse_policy_reads_comma_separated_names_in_order():
    assert parse_policy("") == ()
    assert parse_policy("color,translation,cutout") == POLICIES
    assert parse_policy("cutout, color") == ("cutout", "color")


def test_parse_policy_names_the_unknown_item_and_the_choices():
    with pytest.raises(UserError) as error:
        parse_policy("colour,translation")
    assert str(error.value) == ("augment.policy has unknown 'colour'; choose from color, "
                                "translation, cutout")


# --- color -----------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [3, 1])
def test_color_matches_the_reference_on_the_same_draws(channels):
    pytest.importorskip("torch")
    images = IMAGES[..., :channels]
    u = color_uniforms(jax.random.key(0), len(images))
    expected = from_torch(torch_color(to_torch(images), np.asarray(u, np.float64)))
    np.testing.assert_allclose(np.asarray(adjust_color(images, u)), expected, atol=2e-6)


def test_color_draws_each_factor_from_the_reference_range():
    # y = c s (x - mean_C x) + c (mean_C x - mean x) + mean x + b is linear in its features, so
    # a least-squares fit recovers brightness b, saturation s and contrast c from any output.
    out = np.asarray(diff_augment(IMAGES, jax.random.key(3), ("color",)), np.float64)
    x = np.asarray(IMAGES, np.float64)
    grey = x.mean(axis=3, keepdims=True)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    factors = []
    for i in range(len(x)):
        features = np.stack([(x[i] - grey[i]).ravel(),
                             np.broadcast_to(grey[i] - mean[i], x[i].shape).ravel(),
                             np.ones(x[i].size)], axis=1)
        coef, *_ = np.linalg.lstsq(features, (out[i] - mean[i]).ravel(), rcond=None)
        np.testing.assert_allclose(features @ coef, (out[i] - mean[i]).ravel(), atol=1e-5)
        factors.append((coef[2], coef[0] / coef[1], coef[1]))
    b, s, c = np.array(factors).T
    for values, low, high in [(b, -0.5, 0.5), (s, 0.0, 2.0), (c, 0.5, 1.5)]:
        assert low - 1e-4 <= values.min() < low + 0.05 and high - 0.05 < values.max() <= high


# --- translation -----------------------------------------------------------------------------

def shifted_with_zeros(image, dy, dx):
    """np.roll, then zero what wrapped around: the expected translation of one HWC image."""
    out = np.roll(image, (dy, dx), axis=(0, 1))
    height, width = image.shape[:2]
    out[:dy] = 0 if dy > 0 else out[:dy]
    out[height + dy:] = 0 if dy < 0 else out[height + dy:]
    out[:, :dx] = 0 if dx > 0 else out[:, :dx]
    out[:, width + dx:] = 0 if dx < 0 else out[:, width + dx:]
    return out


SHIFTS = tiled([[0, 0], [2, -3], [-1, 5], [11, 0], [-12, 1], [3, 3], [1, -2], [-5, -4]])


def test_translate_is_roll_with_zeros_shifted_in():
    out = np.asarray(translate(IMAGES, jnp.asarray(SHIFTS)))
    for i, (dy, dx) in enumerate(SHIFTS):
        np.testing.assert_array_equal(out[i], shifted_with_zeros(np.asarray(IMAGES[i]), dy, dx))
    assert not out[4].any()  # shifted a full height: nothing is left


def test_translate_moves_a_single_bright_pixel_by_the_shift():
    images = np.zeros(IMAGES.shape, np.float32)
    images[:, 5, 7, 1] = 1.0
    shifts = tiled([[2, -1], [-3, 3], [0, 0], [-5, -7], [6, 4], [4, 0], [0, -4], [1, 1]])
    out = np.asarray(translate(jnp.asarray(images), jnp.asarray(shifts)))
    for i, (dy, dx) in enumerate(shifts):
        assert out[i].sum() == 1.0 and out[i, 5 + dy, 7 + dx, 1] == 1.0


def test_translate_matches_the_reference_with_the_mirrored_shift():
    pytest.importorskip("torch")
    # The reference reads input j + t into output j: its t is minus our shift.
    out = translate(IMAGES, jnp.asarray(SHIFTS))
    expected = from_torch(torch_translation(to_torch(IMAGES), -SHIFTS[:, 0], -SHIFTS[:, 1]))
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_random_translation_covers_every_shift_up_to_an_eighth_rounded():
    # One bright pixel in the middle of each 12x12 image, moved by at most 2 either way.
    images = np.zeros(IMAGES.shape, np.float32)
    images[:, 6, 6] = 1.0
    out = np.asarray(diff_augment(jnp.asarray(images), jax.random.key(4), ("translation",)))
    assert np.all(out.reshape(len(out), -1).sum(axis=1) == 3.0)
    rows, cols = np.nonzero(out[..., 0])[1:]
    assert set(rows - 6) == set(cols - 6) == {-2, -1, 0, 1, 2}


# --- cutout ----------------------------------------------------------------------------------

def test_cutout_zeroes_a_square_of_half_the_side_and_keeps_the_rest():
    images = IMAGES + 2.0  # no pixel is zero before cutout
    assert cutout_size(12, 12) == (6, 6)
    centers = tiled([[6, 6], [3, 9], [9, 3], [4, 7]])
    out = np.asarray(cutout(images, jnp.asarray(centers)))
    for i, (cy, cx) in enumerate(centers):
        zero = np.zeros((12, 12), bool)
        zero[cy - 3:cy + 3, cx - 3:cx + 3] = True
        assert np.all(out[i][zero] == 0) and (out[i] == 0).sum() == 6 * 6 * 3
        np.testing.assert_array_equal(out[i][~zero], np.asarray(images[i])[~zero])


def test_cutout_matches_the_reference_including_clipped_squares():
    pytest.importorskip("torch")
    # Centres at and beyond both borders of the reference's range, for an even side (12 -> 6)
    # and an odd one (14 -> 7).
    centers = tiled([[0, 0], [12, 12], [0, 12], [5, 2], [1, 11], [12, 6]])
    expected = from_torch(torch_cutout(to_torch(IMAGES), centers[:, 0], centers[:, 1]))
    np.testing.assert_array_equal(np.asarray(cutout(IMAGES, jnp.asarray(centers))), expected)
    assert (expected[0] == 0).sum() == 3 * 3 * 3  # only the in-image quarter of the square
    odd = jnp.asarray(RNG.uniform(-1, 1, (6, 14, 14, 2)), jnp.float32)
    centers = np.array([[0, 0], [13, 13], [0, 13], [7, 3], [1, 12], [6, 6]], np.int32)
    expected = from_torch(torch_cutout(to_torch(odd), centers[:, 0], centers[:, 1]))
    np.testing.assert_array_equal(np.asarray(cutout(odd, jnp.asarray(centers))), expected)
    assert (expected[5] == 0).sum() == 7 * 7 * 2


def test_random_cutout_places_the_square_over_the_reference_range():
    images = jnp.ones(IMAGES.shape, jnp.float32)
    out = np.asarray(diff_augment(images, jax.random.key(5), ("cutout",)))[..., 0]
    starts = []
    for image in out:
        rows, cols = np.nonzero(image == 0)
        # One clipped square per image: a filled rectangle of at most 6x6.
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == height * width and height <= 6 and width <= 6
        starts.append(rows.min() if height == 6 or rows.min() > 0 else rows.max() - 5)
    # Side 6 is even: centres lie in [0, 12], so the square starts anywhere in [-3, 9].
    assert set(starts) == set(range(-3, 10))


# --- the policy and its probability ----------------------------------------------------------

def changed(a, b):
    return np.any(np.asarray(a) != np.asarray(b), axis=(1, 2, 3))


def test_diff_augment_is_deterministic_per_key_and_differs_between_keys():
    first = diff_augment(IMAGES, jax.random.key(1), POLICIES)
    np.testing.assert_array_equal(first, diff_augment(IMAGES, jax.random.key(1), POLICIES))
    assert changed(first, diff_augment(IMAGES, jax.random.key(2), POLICIES)).all()


def test_probability_zero_is_the_identity_and_one_changes_every_sample():
    key = jax.random.key(6)
    np.testing.assert_array_equal(diff_augment(IMAGES, key, POLICIES, p=0.0), IMAGES)
    np.testing.assert_array_equal(diff_augment(IMAGES, key, (), p=1.0), IMAGES)
    for policy in [("color",), ("cutout",), POLICIES]:
        assert changed(diff_augment(IMAGES, key, policy, p=1.0), IMAGES).all()


def test_intermediate_probability_applies_each_op_to_about_that_fraction():
    for p in [0.2, 0.7]:
        fraction = changed(diff_augment(IMAGES, jax.random.key(7), ("color",), p), IMAGES).mean()
        assert abs(fraction - p) < 0.08  # about 4 standard deviations at n = 512
    # Two ops, each drawn on its own: a sample is untouched with probability (1 - p)^2.
    both = diff_augment(IMAGES, jax.random.key(8), ("color", "cutout"), 0.5)
    assert abs((~changed(both, IMAGES)).mean() - 0.25) < 0.08


def test_gradients_flow_through_every_op():
    # The ops are chained, so one that blocked its gradient would zero the whole gradient.
    weights = jnp.asarray(RNG.normal(size=IMAGES.shape), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(diff_augment(x, jax.random.key(9), POLICIES) * weights))(
        IMAGES)
    assert np.all(np.isfinite(grad)) and np.all(np.abs(grad).sum(axis=(1, 2, 3)) > 0)


def test_translation_gradient_is_the_reverse_translation():
    # <translate(x, s), w> = <x, translate(w, -s)>: zero fill on both sides makes them adjoint.
    weights = jnp.asarray(RNG.normal(size=IMAGES.shape), jnp.float32)
    grad = jax.grad(lambda x: jnp.sum(translate(x, jnp.asarray(SHIFTS)) * weights))(IMAGES)
    np.testing.assert_array_equal(grad, translate(weights, -jnp.asarray(SHIFTS)))


def test_jit_on_a_sharded_batch_with_a_traced_probability_matches_eager():
    sharded = jax.device_put(IMAGES, batch_sharded(make_mesh()))
    augment = jax.jit(lambda x, key, p: diff_augment(x, key, POLICIES, p))
    key = jax.random.key(10)
    for p in [0.0, 0.5, 1.0]:
        out = augment(sharded, key, jnp.float32(p))
        assert out.sharding.is_equivalent_to(sharded.sharding, out.ndim)
        np.testing.assert_allclose(out, diff_augment(IMAGES, key, POLICIES, p), atol=1e-6)
    np.testing.assert_array_equal(augment(sharded, key, jnp.float32(0.0)), IMAGES)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_output_keeps_the_input_dtype_and_shape(dtype):
    out = diff_augment(IMAGES.astype(dtype), jax.random.key(11), POLICIES, p=0.5)
    assert out.dtype == dtype and out.shape == IMAGES.shape
    assert np.all(np.isfinite(np.asarray(out, np.float32)))


# --- adjust_probability ----------------------------------------------------------------------

def test_adjust_probability_steps_by_batch_over_speed_towards_the_target():
    step = 64 / (500 * 1000)
    mostly_real = jnp.array([3.0] * 9 + [-1.0])  # r_t = 0.8
    mostly_fake = jnp.array([3.0] * 6 + [-1.0] * 4)  # r_t = 0.2
    up = adjust_probability(0.25, mostly_real, 0.6, 64, 500)
    down = adjust_probability(jnp.float32(0.25), mostly_fake, 0.6, 64, 500)
    assert up.dtype == down.dtype == jnp.float32 and up.shape == ()
    assert float(up) == pytest.approx(0.25 + step, abs=1e-7)
    assert float(down) == pytest.approx(0.25 - step, abs=1e-7)
    assert float(adjust_probability(0.999, mostly_real, 0.6, 640, 0.5)) == 1.0
    assert float(adjust_probability(0.001, mostly_fake, 0.6, 640, 0.5)) == 0.0
    at_target = jnp.array([1.0, 1.0, 1.0, -1.0])  # r_t = 0.5 exactly: no move
    assert float(adjust_probability(0.25, at_target, 0.5, 64, 500)) == 0.25
    jitted = jax.jit(adjust_probability, static_argnums=(2, 3, 4))
    assert float(jitted(jnp.float32(0.25), mostly_real, 0.6, 64, 500)) == float(up)

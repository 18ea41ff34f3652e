"""Image sets handed to the metrics: what is read, how references are fitted, what is refused."""

import numpy as np
import pytest
from PIL import Image

from gan_jax.config import DataConfig, ModelConfig
from gan_jax.errors import UserError
from gan_jax.evaluate import reference_images
from gan_jax.metrics import weights as weights_module
from gan_jax.metrics.images import load_images
from gan_jax.metrics.weights import load_inception_weights


def test_folder_of_mixed_gray_and_rgb_images_is_read_as_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)
    Image.fromarray(gray).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "b.png")
    images = load_images(str(tmp_path))
    assert images.shape == (2, 8, 8, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], np.stack([gray] * 3, axis=-1))
    np.testing.assert_array_equal(images[1], rgb)


def test_sixteen_bit_images_are_refused_not_clipped(tmp_path):
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "deep.png")
    with pytest.raises(UserError, match="16/32-bit"):
        load_images(str(tmp_path))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_empty_or_truncated_npz_is_one_clear_error(tmp_path, content):
    path = tmp_path / "images.npz"
    path.write_bytes(content)
    with pytest.raises(UserError, match="cannot read"):
        load_images(str(path))


def test_npz_of_several_unnamed_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros((2, 4, 4), np.uint8), b=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(UserError, match="name the image array 'images'"):
        load_images(str(tmp_path / "x.npz"))


def test_reference_is_fitted_like_the_training_data(tmp_path):
    images = np.random.default_rng(0).integers(1, 256, (3, 28, 28, 1), dtype=np.uint8)
    np.savez(tmp_path / "real.npz", images=images)
    model = ModelConfig(resolution=32, channels=1)
    padded = reference_images(str(tmp_path / "real.npz"), DataConfig(fit="pad"), model)
    assert padded.shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    assert padded[:, :2].max() == 0 and padded[:, 30:].max() == 0
    # Without a model (plain image sets) nothing is changed.
    assert reference_images(str(tmp_path / "real.npz")).shape == (3, 28, 28, 1)
    with pytest.raises(UserError, match="1-channel images but the generator makes 3-channel"):
        reference_images(str(tmp_path / "real.npz"), DataConfig(), ModelConfig(channels=3))


def test_weights_of_the_other_storage_are_named_as_such():
    load_inception_weights(storage="float16")  # make sure the float16 cache exists
    with pytest.raises(UserError, match="stored as float16, not float32"):
        load_inception_weights(weights_module.cached_weights_path("float16"), storage="float32")

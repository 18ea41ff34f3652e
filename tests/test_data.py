"""The input pipeline: idx parsing, real Fashion-MNIST, tfds, resizing, batch order, devices."""

import dataclasses
import gzip
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from gan_jax import data, sharding
from gan_jax.config import DataConfig
from gan_jax.errors import UserError
from gan_jax.metrics.images import load_dataset_split
from tests.conftest import requires_fashion_mnist


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_idx_dir(tmp_path: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                   rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path


def test_idx_round_trip(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    _write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "x.gz"), images)


@requires_fashion_mnist
@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_real_fashion_mnist(split, n):
    ds = data.load_dataset(DataConfig(split=split))
    assert ds.images.shape == (n, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (n,) and ds.num_classes == 10
    # Fashion-MNIST is exactly balanced: 6000 (train) or 1000 (test) images per class.
    np.testing.assert_array_equal(np.bincount(ds.labels), np.full(10, n // 10))
    assert ds.images.min() == 0 and ds.images.max() == 255
    # Clothes on a black background: the corners are dark, the centre is not.
    assert ds.images[:, :2, :2].mean() < 1 < 50 < ds.images[:, 14, 14].mean()
    again = data.load_dataset(DataConfig(split=split))
    np.testing.assert_array_equal(again.images[:100], ds.images[:100])


@requires_fashion_mnist
def test_real_batches_are_scaled_to_minus_one_one():
    from gan_jax.train import images_to_float
    ds = data.load_dataset(DataConfig())
    batch = next(data.host_batches(ds.images, ds.labels, 32, seed=0))
    x = np.asarray(images_to_float(batch["image"]))
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 1.0


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(UserError, match=f"{tmp_path}.*apt-get install -y dataset-fashion-mnist"):
        data.load_dataset(DataConfig(dir=str(tmp_path)))


def test_truncated_file_is_refused(tmp_path):
    directory = _fake_idx_dir(tmp_path)
    path = directory / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(UserError, match="truncated or corrupt"):
        data.load_dataset(DataConfig(dir=str(directory)))
    path.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="not a readable gzip file"):
        data.load_dataset(DataConfig(dir=str(directory)))


def test_bad_magic_is_refused(tmp_path):
    with gzip.open(tmp_path / "x.gz", "wb") as f:
        f.write(b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(UserError, match="bad magic"):
        data.read_idx(tmp_path / "x.gz")


def test_local_directory_option(tmp_path):
    directory = _fake_idx_dir(tmp_path, n=12)
    ds = data.load_dataset(DataConfig(dir=str(directory), split="test"))
    assert ds.images.shape == (12, 28, 28, 1)
    np.testing.assert_array_equal(ds.labels, np.arange(12) % 10)


def test_tfds_path_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20):
        ds = data.load_dataset(DataConfig(source="tfds", dataset="fashion_mnist"))
        cifar = data.load_tfds_dataset("cifar10", "train")
    assert ds.images.shape == (20, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.shape == (20,) and ds.labels.dtype == np.int32
    assert ds.num_classes == 10 and 0 <= ds.labels.min() and ds.labels.max() < 10
    assert cifar.images.shape == (20, 32, 32, 3)


def test_tfds_images_are_fitted_chunk_by_chunk_as_they_are_read():
    tfds = pytest.importorskip("tensorflow_datasets")
    config = DataConfig(source="tfds", dataset="celeb_a", fit="center_crop")
    with tfds.testing.mock_data(num_examples=6):
        raw = data.load_dataset(config)
        fitted = data.load_dataset(config, resolution=32)
    assert raw.images.shape == (6, 218, 178, 3) and raw.num_classes == 0
    np.testing.assert_array_equal(fitted.images, data.fit_resolution(raw.images, 32,
                                                                     "center_crop"))
    # A FID reference of the run's dataset is cut like its training images.
    cut = dataclasses.replace(config, crop="57,25,128")
    with tfds.testing.mock_data(num_examples=6):
        reference = load_dataset_split("celeb_a:test", cut)
    assert reference.shape == (6, 128, 128, 3)


def test_center_crop_cuts_the_centred_square_then_resizes():
    images = np.random.default_rng(0).integers(0, 256, (2, 218, 178, 3)).astype(np.uint8)
    np.testing.assert_array_equal(data.center_square(images), images[:, 20:198])
    np.testing.assert_array_equal(data.fit_resolution(images, 64, "center_crop"),
                                  data.fit_resolution(images[:, 20:198], 64, "resize"))
    with pytest.raises(UserError, match="use data.fit=center_crop"):
        data.fit_resolution(images, 64, "resize")


def test_crop_cuts_the_given_square_and_refuses_one_that_does_not_fit():
    images = np.random.default_rng(1).integers(0, 256, (2, 218, 178, 3)).astype(np.uint8)
    np.testing.assert_array_equal(data.cropped(images, "57,25,128"), images[:, 57:185, 25:153])
    assert data.cropped(images, None) is images
    with pytest.raises(UserError, match="does not fit inside the 218x178 images"):
        data.cropped(images, "100,60,128")
    with pytest.raises(UserError, match="is not 'top,left,side'"):
        data.cropped(images, "57,25")


def test_pad_centres_the_image_in_zeros():
    images = np.full((2, 28, 28, 1), 200, np.uint8)
    padded = data.fit_resolution(images, 32, "pad")
    assert padded.shape == (2, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    assert padded.sum() == images.sum()  # the border is all zeros


def test_resize_matches_pil_bilinear():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    ours = data.fit_resolution(images, 64, "resize")
    pil = np.stack([np.asarray(Image.fromarray(im[..., 0]).resize((64, 64), Image.BILINEAR))
                    for im in images])[..., None]
    # Same half-pixel-centre bilinear formula; PIL rounds in fixed point, so allow 1 level.
    assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 1


def test_fit_errors():
    images = np.zeros((1, 28, 28, 1), np.uint8)
    with pytest.raises(UserError, match="use data.fit=resize"):
        data.fit_resolution(images, 16, "pad")
    with pytest.raises(UserError, match="data.fit='crop' is unknown"):
        data.fit_resolution(images, 32, "crop")
    with pytest.raises(UserError, match="set model.channels=1"):
        data.check_channels(images, 3, "fashion_mnist")


def test_each_epoch_is_a_permutation_and_batches_span_epochs():
    n, batch = 10, 4  # 2.5 batches per epoch: batches straddle epoch boundaries
    order = np.concatenate([data.batch_indices(s, batch, n, seed=3) for s in range(5)])
    np.testing.assert_array_equal(np.sort(order[:10]), np.arange(10))
    np.testing.assert_array_equal(np.sort(order[10:20]), np.arange(10))
    assert not np.array_equal(order[:10], order[10:20])  # reshuffled each epoch
    np.testing.assert_array_equal(order, np.concatenate(
        [data.batch_indices(s, batch, n, seed=3) for s in range(5)]))
    assert not np.array_equal(order, np.concatenate(
        [data.batch_indices(s, batch, n, seed=4) for s in range(5)]))


def test_iterator_resumes_at_any_step():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    labels = np.arange(50, dtype=np.int32)
    full = data.host_batches(images, labels, 8, seed=0)
    from_start = [next(full) for _ in range(10)]
    resumed = data.host_batches(images, labels, 8, seed=0, start_step=7)
    for expected in from_start[7:]:
        got = next(resumed)
        np.testing.assert_array_equal(got["image"], expected["image"])
        np.testing.assert_array_equal(got["label"], expected["label"])
        np.testing.assert_array_equal(got["image"][:, 0, 0, 0], got["label"])  # rows aligned


def test_device_batches_are_sharded_over_the_mesh():
    mesh = sharding.make_mesh()
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1)
    labels = np.arange(40, dtype=np.int32)
    batches = data.device_batches(images, labels, 16, seed=0, mesh=mesh, start_step=2)
    expected = data.host_batches(images, labels, 16, seed=0, start_step=2)
    for _ in range(3):
        got, want = next(batches), next(expected)
        assert got["image"].sharding.is_equivalent_to(sharding.batch_sharded(mesh), 4)
        assert len(got["image"].addressable_shards) == jax.device_count()
        np.testing.assert_array_equal(np.asarray(got["image"]), want["image"])
    batches.close()
    with pytest.raises(UserError, match="not divisible by the 8 devices"):
        next(data.device_batches(images, labels, 12, seed=0, mesh=mesh))


@pytest.mark.parametrize("start_step", [0, 3])
def test_resident_batches_equal_host_batches(start_step):
    # 40 examples, batches of 16: steps 2 and 4 span an epoch boundary.
    mesh = sharding.make_mesh()
    images = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1)
    labels = np.arange(40, dtype=np.int32) + 100
    resident = data.resident_batches(images, labels, 16, seed=3, mesh=mesh, start_step=start_step)
    expected = data.host_batches(images, labels, 16, seed=3, start_step=start_step)
    for _ in range(6):
        got, want = next(resident), next(expected)
        for name in ("image", "label"):
            assert got[name].sharding.is_equivalent_to(sharding.batch_sharded(mesh),
                                                       want[name].ndim)
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(np.asarray(got[name]), want[name])
    with pytest.raises(UserError, match="not divisible by the 8 devices"):
        next(data.resident_batches(images, labels, 12, seed=0, mesh=mesh))


def test_placement_picks_the_pipeline(monkeypatch):
    mesh = sharding.make_mesh()
    images, labels = np.zeros((16, 2, 2, 1), np.uint8), np.zeros(16, np.int32)
    name = lambda placement: data.batches_for(placement, images, labels, 8, 0, mesh).__name__
    assert (name("auto"), name("device"), name("host")) == (
        "resident_batches", "resident_batches", "device_batches")
    monkeypatch.setattr(data, "RESIDENT_LIMIT_BYTES", images.nbytes)  # labels tip it over
    assert name("auto") == "device_batches"
    with pytest.raises(UserError, match="data.placement='disk' is unknown; choose one of"):
        data.batches_for("disk", images, labels, 8, 0, mesh)

"""Staging the data and FID weights for a GPU machine without network."""

import numpy as np

from experiments import stage_device_files
from gan_jax.data import load_idx_dataset
from gan_jax.metrics.weights import load_inception_weights
from tests.conftest import requires_fashion_mnist


@requires_fashion_mnist
def test_staged_files_load_like_the_originals(tmp_path, capsys, monkeypatch):
    assert stage_device_files.main(["--out", str(tmp_path)]) == 0
    assert "data.dir=" in capsys.readouterr().out
    staged = load_idx_dataset(tmp_path / "fashion-mnist", "test")
    original = load_idx_dataset(stage_device_files.Path(stage_device_files.FASHION_MNIST_DIR),
                                "test")
    np.testing.assert_array_equal(staged.images, original.images)
    # On the device the staged folder is the whole cache: the weights load from it alone.
    expected = load_inception_weights(storage="float16")
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "gan_jax"))
    got = load_inception_weights(storage="float16")
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[k], expected[k]) for k in got)


def test_missing_data_is_one_line(tmp_path, capsys):
    assert stage_device_files.main(["--out", str(tmp_path), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train-images-idx3-ubyte.gz not found" in err

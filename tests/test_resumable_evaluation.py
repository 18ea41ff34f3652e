"""An evaluation stopped part-way resumes from its saved features, and only with the same key."""

import dataclasses

import jax
import numpy as np
import pytest

from gan_jax.evaluate import generated_features
from gan_jax.metrics import resumable
from gan_jax.metrics.inception import FEATURE_DIM
from gan_jax.train import build_gan, init_state
from tests.helpers import ProjectedPixels, Stopped, tiny_config

COUNT, BATCH = 40, 6  # 7 batches, the last one of 4 images


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(resumable, "CHUNK_IMAGES", 2 * BATCH)


@pytest.fixture(scope="module")
def gan_and_state():
    gan = build_gan(tiny_config(eval__batch_size=BATCH))
    return gan, init_state(gan, jax.random.key(0))


def test_a_stopped_evaluation_resumes_at_its_last_chunk_with_the_same_features(
        tmp_path, small_chunks, gan_and_state):
    gan, state = gan_and_state
    progress = tmp_path / "evaluation_progress"
    whole = generated_features(gan, state, COUNT, ProjectedPixels(), gan.config.eval)
    stopping = ProjectedPixels(stop_after=5)
    with pytest.raises(Stopped):
        generated_features(gan, state, COUNT, stopping, gan.config.eval, progress)
    # Chunks of 12 images after batches 2 and 4; batch 5 was lost with the stop.
    [folder] = progress.iterdir()
    assert sorted(p.name for p in folder.glob("*.npy")) == ["00000000.npy", "00000012.npy"]
    resumed = ProjectedPixels()
    features = generated_features(gan, state, COUNT, resumed, gan.config.eval, progress)
    assert resumed.batches == 3  # batches 5, 6 and 7 only
    np.testing.assert_array_equal(features, whole)
    assert not progress.exists()  # removed once complete


def test_a_stopped_image_set_resumes_from_the_cache_and_only_for_the_same_images(
        tmp_path, small_chunks, monkeypatch):
    """A reference, --images or the real-data floor: keyed by the images' bytes and settings,
    kept in the cache's evaluation_progress/ folder."""
    monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
    images = np.random.default_rng(0).integers(0, 256, (COUNT, 8, 8, 1), dtype=np.uint8)
    whole = ProjectedPixels().features_of(images)
    with pytest.raises(Stopped):
        resumable.image_features(ProjectedPixels(stop_after=5), images, "clean", BATCH)
    [folder] = (tmp_path / "evaluation_progress").iterdir()
    assert sorted(p.name for p in folder.glob("*.npy")) == ["00000000.npy", "00000012.npy"]
    one_pixel_off = images.copy()
    one_pixel_off[-1, 0, 0, 0] ^= 1
    for other_images, resize, batch in ((one_pixel_off, "clean", BATCH),
                                        (images, "tf_legacy", BATCH), (images, "clean", 4)):
        extractor = ProjectedPixels()
        got = resumable.image_features(extractor, other_images, resize, batch)
        assert extractor.batches == -(-COUNT // batch)  # all: nothing of the stopped one
        np.testing.assert_array_equal(got, ProjectedPixels().features_of(other_images))
    resumed = ProjectedPixels()
    np.testing.assert_array_equal(
        resumable.image_features(resumed, images, "clean", BATCH), whole)
    assert resumed.batches == 3  # batches 5, 6 and 7 only
    assert not (tmp_path / "evaluation_progress").exists()  # removed once complete


def test_saved_features_are_not_reused_for_another_state_or_setting(
        tmp_path, small_chunks, gan_and_state):
    gan, state = gan_and_state
    with pytest.raises(Stopped):
        generated_features(gan, state, COUNT, ProjectedPixels(stop_after=4), gan.config.eval,
                           tmp_path / "progress")
    other_seed = dataclasses.replace(gan.config.eval, seed=1)
    trained = state.replace(g_params=jax.tree.map(lambda x: x + 1e-3, state.g_params))
    trained_weights = dataclasses.replace(gan.config.eval, generator="trained")
    for other_state, config in ((state, other_seed), (trained, gan.config.eval),
                                (state, trained_weights)):
        extractor = ProjectedPixels()
        expected = generated_features(gan, other_state, COUNT, ProjectedPixels(), config)
        got = generated_features(gan, other_state, COUNT, extractor, config,
                                 tmp_path / "progress")
        assert extractor.batches == 7  # all of them: nothing of the stopped one was taken
        np.testing.assert_array_equal(got, expected)


def test_unreadable_or_out_of_order_chunks_are_left_unused(tmp_path, small_chunks):
    chunks = resumable.FeatureChunks(tmp_path, "key", batch=BATCH, count=COUNT)
    first = np.ones((12, FEATURE_DIM), np.float32)
    list(chunks.saving([first[:6], first[6:]], start=0))
    (tmp_path / "key" / "00000012.npy").write_bytes(b"half a file")
    np.testing.assert_array_equal(chunks.load(), first)  # the broken chunk and all after it
    (tmp_path / "key" / "00000012.npy").unlink()
    np.save(tmp_path / "key" / "00000024.npy", first)  # a gap: 12-23 missing
    np.testing.assert_array_equal(chunks.load(), first)
    np.save(tmp_path / "key" / "00000012.npy", first[:5])  # not whole batches
    np.testing.assert_array_equal(chunks.load(), first)


def test_the_key_covers_every_leaf_and_setting():
    state = {"w": np.zeros(3, np.float32), "key": jax.random.key(0)}
    key = resumable.evaluation_key(state, {"resize": "clean"})
    assert key == resumable.evaluation_key(dict(state), {"resize": "clean"})
    assert key != resumable.evaluation_key(state, {"resize": "tf_legacy"})
    assert key != resumable.evaluation_key({**state, "w": np.array([0, 0, 1e-30], np.float32)},
                                           {"resize": "clean"})
    assert key != resumable.evaluation_key({**state, "key": jax.random.key(1)},
                                           {"resize": "clean"})
    assert key != resumable.evaluation_key({**state, "w": np.zeros(3, np.float64)},
                                           {"resize": "clean"})


def test_an_unwritable_folder_evaluates_without_saving(tmp_path, small_chunks, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    chunks = resumable.FeatureChunks(blocked, "key", batch=BATCH, count=COUNT)
    features = [np.ones((6, FEATURE_DIM), np.float32)] * 4
    assert len(list(chunks.saving(features, start=0))) == 4
    assert capsys.readouterr().err.count("cannot save the evaluation's progress") == 1
    assert len(chunks.load()) == 0

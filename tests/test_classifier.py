"""The augmentation study's pieces: subsets, the classifier step, GAN-made data and the mixing."""

import json

import chex
import jax
import numpy as np
import pytest

from experiments import augmentation_study
from gan_jax import classifier, data, sharding, synthetic
from gan_jax.data import Dataset
from gan_jax.errors import UserError
from gan_jax.sampling import generate_uint8, sample_latents
from gan_jax.train import build_gan, init_state
from tests.conftest import requires_fashion_mnist
from tests.helpers import tiny_config


def coded_dataset(per_class: int, classes: int = 10, offset: int = 0,
                  spacing: int = 10) -> Dataset:
    """Images whose every pixel is spacing * label + offset: a label can be read off its image."""
    labels = np.repeat(np.arange(classes, dtype=np.int32), per_class)
    images = np.broadcast_to((spacing * labels + offset).astype(np.uint8)[:, None, None, None],
                             (len(labels), 8, 8, 1)).copy()
    return Dataset(images, labels, classes)


def test_balanced_subset_is_balanced_seeded_and_right():
    dataset = Dataset(np.arange(240, dtype=np.uint8).reshape(240, 1, 1, 1),
                      np.random.default_rng(0).integers(0, 3, 240).astype(np.int32), 3)
    subset = data.balanced_subset(dataset, 20, seed=1)
    assert np.bincount(subset.labels).tolist() == [20, 20, 20]
    rows = subset.images[:, 0, 0, 0].astype(int)  # each image is its row number
    np.testing.assert_array_equal(dataset.labels[rows], subset.labels)
    assert len(set(rows)) == 60
    again, other = data.balanced_subset(dataset, 20, 1), data.balanced_subset(dataset, 20, 2)
    np.testing.assert_array_equal(again.images, subset.images)
    assert not np.array_equal(other.images, subset.images)
    with pytest.raises(UserError, match=r"data.per_class=200 but class 0 has only \d+ images"):
        data.balanced_subset(dataset, 200, 0)


def test_standard_augment_is_a_shift_and_maybe_a_flip():
    images = np.random.default_rng(0).uniform(-1, 1, (16, 6, 6, 1)).astype(np.float32)
    out = np.asarray(classifier.standard_augment(images, jax.random.key(3), shift=2, flip=True))
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    flipped = 0
    for image, pad, got in zip(images, padded, out, strict=True):
        candidates = [(pad[y:y + 6, x:x + 6], False) for y in range(5) for x in range(5)]
        candidates += [(c[:, ::-1], True) for c, _ in candidates]
        matches = [f for c, f in candidates if np.array_equal(c, got)]
        assert matches, "not a shifted (and flipped) copy of its input"
        flipped += all(matches)
    assert 0 < flipped < 16  # flips are random, not all or none
    same = classifier.standard_augment(images, jax.random.key(3), shift=0, flip=False)
    np.testing.assert_array_equal(np.asarray(same), images)


@pytest.mark.slow  # 15 s of training
def test_classifier_learns():
    train_set = coded_dataset(per_class=16, classes=4, spacing=80)
    clf = classifier.make_classifier(num_classes=4, width=8, learning_rate=1e-2)
    state = classifier.train_classifier(clf, train_set.images, train_set.labels, steps=40,
                                        batch_size=16, seed=0, augment=False)
    assert classifier.accuracy(clf, state.params, train_set.images, train_set.labels) == 1.0


@pytest.mark.slow
def test_classifier_on_eight_devices_equals_one_device():
    train_set = coded_dataset(per_class=16, classes=4, spacing=80)
    clf = classifier.make_classifier(num_classes=4, width=8, learning_rate=1e-2)
    one = classifier.train_classifier(clf, train_set.images, train_set.labels, steps=2,
                                      batch_size=16, seed=0, augment=True,
                                      mesh=sharding.make_mesh(jax.devices()[:1]))
    eight = classifier.train_classifier(clf, train_set.images, train_set.labels, steps=2,
                                        batch_size=16, seed=0, augment=True)
    chex.assert_trees_all_close(jax.device_get(one), jax.device_get(eight), rtol=1e-5,
                                atol=1e-6)


def test_mix_keeps_every_label_with_its_image():
    real, generated = coded_dataset(per_class=4, offset=1), coded_dataset(per_class=10, offset=2)
    mixed = synthetic.mix(real, generated, ratio=1.5)
    assert len(mixed.labels) == 40 + 60
    np.testing.assert_array_equal(mixed.images[:40], real.images)  # the real ones, all of them
    np.testing.assert_array_equal(mixed.images[:, 0, 0, 0] // 10, mixed.labels)
    assert np.bincount(mixed.labels[40:]).tolist() == [6] * 10
    assert set(mixed.images[40:, 0, 0, 0] % 10) == {2}  # all generated
    with pytest.raises(UserError, match="needs 40 generated images of class 0 but there are 10"):
        synthetic.mix(real, generated, ratio=10)


def test_labelled_samples_are_the_generator_output_for_their_labels():
    gan = build_gan(tiny_config(model__conditioning="projection", model__spectral_norm="d",
                                model__d_norm="none"))
    state = init_state(gan, jax.random.key(0))
    samples = synthetic.labelled_samples(gan, state, 3, jax.random.key(1), truncation=0.5,
                                         batch_size=7)
    assert samples.labels.tolist() == [c for c in range(10) for _ in range(3)]
    z = sample_latents(jax.random.key(1), 30, gan.latent_dim, 0.5)
    assert float(np.abs(z).max()) <= 0.5
    expected = generate_uint8(gan, state, z, samples.labels)
    np.testing.assert_array_equal(samples.images, np.asarray(expected))
    with pytest.raises(UserError, match="need a class-conditional generator"):
        unconditional = build_gan(tiny_config())
        synthetic.labelled_samples(unconditional, init_state(unconditional, jax.random.key(0)),
                                   3, jax.random.key(1))


@pytest.mark.slow
@requires_fashion_mnist
def test_tiny_study_runs_every_arm_and_reports(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--gan-config",
            f"{augmentation_study.GAN_CONFIG}:test", "--per-class", "8", "--seeds", "0",
            "--ratios", "1", "--classifier-steps", "2", "--batch-size", "16",
            "--classifier-width", "4", "--test-limit", "100",
            "--fid-metric", "", "--no-progress"]
    assert augmentation_study.main(["run", *argv]) == 0
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["train_images"]) for r in rows] == [
        ("real", 80), ("real+aug", 80), ("real+gan:1", 160), ("real+aug+gan:1", 160),
        ("gan", 80), ("full", 60000)]
    assert all(0 <= r["accuracy"] <= 1 and r["test_images"] == 100 for r in rows)
    assert augmentation_study.main(["run", *argv]) == 0  # a finished seed is skipped
    assert "seed 0: done before, skipped" in capsys.readouterr().out
    assert augmentation_study.main(["report", *argv]) == 0
    assert "| real+gan:1 | 160 |" in capsys.readouterr().out


def test_unconditional_gan_config_is_refused(capsys):
    argv = ["run", "--gan-config", f"{augmentation_study.GAN_CONFIG}:test",
            "model.conditioning=none"]
    assert augmentation_study.main(argv) == 2
    assert "trains an unconditional GAN" in capsys.readouterr().err

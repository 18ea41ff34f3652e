"""A small CNN image classifier, trained in the GAN's functional style.

    clf = make_classifier(num_classes=10)
    state = init_classifier(clf, key, image_shape=(28, 28, 1))
    step = sharding.jit_train_step(classifier_step_for(clf, augment=True), mesh)
    state, metrics = step(state, {"image": uint8_images, "label": labels}, key)

The step is pure (the key is folded with the step number, as in the GAN step) and runs under
the same data-parallel shardings. It is the measuring instrument of the GAN-data augmentation
study (experiments/augmentation_study.py): the network is deliberately ordinary (two VGG-style
blocks, dropout, Adam) so that what changes between arms is the data, not the model.

`augment=True` adds the standard augmentation baseline: a random translation of up to `shift`
pixels (zero padding, then a random crop) and, where the classes allow it, a horizontal flip.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from gan_jax import data, sharding
from gan_jax.train import images_to_float


class SmallCNN(nn.Module):
    num_classes: int = 10
    width: int = 32
    dropout: float = 0.3

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
        x = images
        for features in (self.width, 2 * self.width):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.Dense(4 * self.width)(x.reshape(x.shape[0], -1)))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)


class Classifier(NamedTuple):
    module: nn.Module
    tx: optax.GradientTransformation
    shift: int  # augmentation: largest translation in pixels
    flip: bool  # augmentation: random horizontal flips


@struct.dataclass
class ClassifierState:
    step: jax.Array
    params: Any
    opt_state: Any


def make_classifier(num_classes: int = 10, width: int = 32, learning_rate: float = 1e-3,
                    shift: int = 2, flip: bool = True) -> Classifier:
    return Classifier(SmallCNN(num_classes, width), optax.adam(learning_rate), shift, flip)


def init_classifier(clf: Classifier, key: jax.Array,
                    image_shape: tuple[int, int, int]) -> ClassifierState:
    params = clf.module.init(key, jnp.zeros((1, *image_shape)), train=False)["params"]
    return ClassifierState(jnp.zeros((), jnp.int32), params, clf.tx.init(params))


def standard_augment(images: jax.Array, key: jax.Array, shift: int, flip: bool) -> jax.Array:
    """Per image: a random translation by up to `shift` pixels each way (the image is padded
    with the background value -1 and cropped back) and, with `flip`, a flip with probability
    1/2."""
    n, h, w, _ = images.shape
    shift_key, flip_key = jax.random.split(key)
    offsets = jax.random.randint(shift_key, (n, 2), 0, 2 * shift + 1)
    padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)),
                     constant_values=-1.0)
    crop = lambda image, offset: jax.lax.dynamic_slice(
        image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))
    images = jax.vmap(crop)(padded, offsets)
    if flip:
        flips = jax.random.bernoulli(flip_key, 0.5, (n, 1, 1, 1))
        images = jnp.where(flips, images[:, :, ::-1, :], images)
    return images


def classifier_step_for(clf: Classifier, augment: bool
                        ) -> Callable[[ClassifierState, dict, jax.Array],
                                      tuple[ClassifierState, dict]]:
    def step(state: ClassifierState, batch: dict, key: jax.Array):
        augment_key, dropout_key = jax.random.split(jax.random.fold_in(key, state.step))
        images = images_to_float(batch["image"])
        if augment:
            images = standard_augment(images, augment_key, clf.shift, clf.flip)

        def loss_fn(params):
            logits = clf.module.apply({"params": params}, images, train=True,
                                      rngs={"dropout": dropout_key})
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
            return loss.mean(), jnp.mean(jnp.argmax(logits, -1) == batch["label"])

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = clf.tx.update(grads, state.opt_state, state.params)
        state = ClassifierState(state.step + 1, optax.apply_updates(state.params, updates),
                                opt_state)
        return state, {"loss": loss, "train_accuracy": accuracy}

    return step


def predict(clf: Classifier, params: Any, images: np.ndarray,
            batch_size: int = 1000) -> np.ndarray:
    """Predicted classes of uint8 (or [-1, 1] float) images, in inference mode."""
    classes_of = _jitted_prediction(clf)
    return np.concatenate([np.asarray(classes_of(params, images[i:i + batch_size]))
                           for i in range(0, len(images), batch_size)])


# Compiled once per classifier (and mesh): a study trains and tests the same network many times.
@functools.cache
def _jitted_prediction(clf: Classifier) -> Callable:
    return jax.jit(lambda params, images: jnp.argmax(
        clf.module.apply({"params": params}, images_to_float(images), train=False), -1))


@functools.cache
def _jitted_init(clf: Classifier, image_shape: tuple[int, ...],
                 mesh: jax.sharding.Mesh) -> Callable:
    return jax.jit(lambda key: init_classifier(clf, key, image_shape),
                   out_shardings=sharding.replicated(mesh))


@functools.cache
def _jitted_step(clf: Classifier, augment: bool, mesh: jax.sharding.Mesh) -> Callable:
    return sharding.jit_train_step(classifier_step_for(clf, augment), mesh)


def accuracy(clf: Classifier, params: Any, images: np.ndarray, labels: np.ndarray,
             batch_size: int = 1000) -> float:
    return float(np.mean(predict(clf, params, images, batch_size) == labels))


def train_classifier(clf: Classifier, images: np.ndarray, labels: np.ndarray, *, steps: int,
                     batch_size: int, seed: int, augment: bool,
                     mesh: jax.sharding.Mesh | None = None) -> ClassifierState:
    """`steps` updates on batches drawn like the GAN's (seeded per-epoch permutations, gathered
    on the devices); the initialisation, batch order, dropout and augmentation follow `seed`."""
    mesh = mesh or sharding.make_mesh()
    init_key, step_key = jax.random.split(jax.random.key(seed))
    state = _jitted_init(clf, images.shape[1:], mesh)(init_key)
    step = _jitted_step(clf, augment, mesh)
    batches = data.resident_batches(images, labels, batch_size, seed, mesh)
    for _ in range(steps):
        state, _ = step(state, next(batches), step_key)
    return state

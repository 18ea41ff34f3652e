"""Loss terms against float64 NumPy versions of their papers' formulas, and their wiring."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import terms
from gan_jax.train import build_gan, init_state, train_step_for
from tests.helpers import random_batch, tiny_config


def _view(real_logits, fake_logits, slots, **reg):
    """A stand-in for terms.View with fixed D outputs: what a term reads, nothing else."""
    output = lambda logits: types.SimpleNamespace(logits=jnp.asarray(logits, jnp.float32))
    view = types.SimpleNamespace(
        real=lambda: output(real_logits), fake=lambda: output(fake_logits),
        state=types.SimpleNamespace(slots=slots), kept={},
        config=types.SimpleNamespace(reg=types.SimpleNamespace(**reg)))
    view.keep = view.kept.__setitem__
    return view


def _lecam_reference(real, fake, anchor_real, anchor_fake):
    relu = lambda x: np.maximum(x, 0.0)
    return (np.mean(relu(real - anchor_fake) ** 2) + np.mean(relu(anchor_real - fake) ** 2))


def test_lecam_matches_its_formula_with_moving_anchors():
    rng = np.random.default_rng(0)
    slots = terms.initial_slots(tiny_config(reg__lecam_weight=0.3))
    anchors = None
    for _ in range(3):
        real, fake = rng.normal(0.5, 1.0, 16), rng.normal(-0.5, 1.0, 16)
        view = _view(real, fake, slots, lecam_decay=0.9)
        value, aux = terms.d_lecam(view)
        # Moving averages of the batch means, this batch included, from the first batch's.
        means = np.array([real.mean(), fake.mean()])
        anchors = means if anchors is None else 0.9 * anchors + 0.1 * means
        np.testing.assert_allclose(float(value), _lecam_reference(real, fake, *anchors),
                                   rtol=1e-5)
        np.testing.assert_allclose([float(aux["lecam_anchor_real"]),
                                    float(aux["lecam_anchor_fake"])], anchors, rtol=1e-5)
        slots = {"lecam": view.kept["lecam"]}
    assert int(slots["lecam"]["updates"]) == 3


def test_lecam_in_the_step_keeps_its_anchors_and_adds_its_weighted_value_to_d_loss():
    config = tiny_config(reg__lecam_weight=0.3, reg__lecam_decay=0.99)
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    assert sorted(state.slots) == ["lecam"]
    assert "lecam" not in init_state(build_gan(tiny_config()), jax.random.key(0)).slots
    step = jax.jit(train_step_for(gan))
    means = []
    for i in range(2):
        state, metrics = step(state, random_batch(config, seed=i), jax.random.key(1))
        metrics = jax.device_get(metrics)
        means.append(metrics["d_real_logit"])
        assert metrics["d_loss"] == pytest.approx(
            metrics["d_loss_real"] + metrics["d_loss_fake"] + 0.3 * metrics["lecam"],
            rel=1e-5)
    lecam = jax.device_get(state.slots["lecam"])
    assert int(lecam["updates"]) == 2
    assert float(lecam["real"]) == pytest.approx(0.99 * means[0] + 0.01 * means[1], rel=1e-5)

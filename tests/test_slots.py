"""The state's slots: one per configured stateful part, each moved after its own network's
update and by nothing else (the step's use of them is in test_step_options.py)."""

import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.slots import AfterUpdate, initial_slots, updated_slots
from tests.helpers import tiny_config

G, D = {"w": jnp.ones(3)}, {"v": jnp.full(2, 2.0)}


def _every_part():
    return tiny_config(optim__ema_kimg=1.0, reg__historical_averaging=0.1,
                       augment__policy="translation", augment__ada_target=0.6,
                       augment__p=0.25, reg__lecam_weight=0.3)


def test_only_configured_parts_have_a_slot():
    assert initial_slots(tiny_config(), G, D) == {}
    slots = initial_slots(_every_part(), G, D)
    assert sorted(slots) == ["augment_p", "averages", "ema", "lecam"]
    assert float(slots["augment_p"]) == 0.25
    np.testing.assert_array_equal(slots["averages"]["d"]["v"], D["v"])
    # copies: the step donates the parameters' buffers
    assert slots["ema"]["w"] is not G["w"]


def test_each_slot_moves_after_its_own_networks_update_only():
    config = _every_part()
    slots = initial_slots(config, G, D)
    new_g, new_d = {"w": jnp.zeros(3)}, {"v": jnp.zeros(2)}
    # D sure of every real: ADA's probability rises, nothing else moves.
    after_d = updated_slots(slots, "d", AfterUpdate(config, jnp.int32(0), new_g, new_d,
                                                    real_logits=jnp.full(8, 5.0)))
    assert float(after_d["augment_p"]) > 0.25
    assert after_d["ema"] is slots["ema"] and after_d["averages"] is slots["averages"]
    after_g = updated_slots(slots, "g", AfterUpdate(config, jnp.int32(0), new_g, new_d,
                                                    images_seen=jnp.int32(64_000),
                                                    images_per_step=64))
    assert after_g["augment_p"] is slots["augment_p"] and after_g["lecam"] is slots["lecam"]
    # the mean of the initial parameters and those after step 0
    np.testing.assert_allclose(after_g["averages"]["g"]["w"], 0.5 * G["w"])
    np.testing.assert_allclose(after_g["averages"]["d"]["v"], 0.5 * D["v"])
    # a 1 kimg half-life and 64 images per step
    beta = 0.5 ** (64 / 1000)
    np.testing.assert_allclose(after_g["ema"]["w"], beta * G["w"], rtol=1e-6)


@pytest.mark.parametrize("network", ["d", "g"])
def test_nothing_configured_leaves_the_slots_empty(network):
    config = tiny_config()
    assert updated_slots({}, network, AfterUpdate(config, jnp.int32(3), G, D)) == {}

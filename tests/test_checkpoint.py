"""Checkpoints: round trip, keep-last-N, exact resume, and never saving a diverged state."""

import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import config as config_lib
from gan_jax.checkpoint import Checkpointer
from gan_jax.config import with_overrides
from gan_jax.errors import UserError
from gan_jax import loop, sharding
from gan_jax.batching import steps_for_kimg
from gan_jax.loop import TrainingDiverged, train
from gan_jax.metric_writers import read_metrics
from gan_jax.train import build_gan, init_state
from tests.conftest import DCGAN_CONFIG, requires_fashion_mnist
from tests.helpers import leaves, snapshot, tiny_config


def _tiny_run_config(steps: int, **overrides):
    config = config_lib.load_config(f"{DCGAN_CONFIG}:test")
    batch = config.train.batch_size
    return with_overrides(config, {"train.total_kimg": steps * batch / 1000,
                                   "train.checkpoint_every_kimg": 2 * batch / 1000} | overrides)


def test_round_trip_and_keep_last_n(tmp_path):
    config = tiny_config()
    state = init_state(build_gan(config), jax.random.key(0))
    checkpointer = Checkpointer(tmp_path, keep=2)
    assert checkpointer.restore_latest(like=state) is None
    for step in (1, 2, 3):
        checkpointer.save(state.replace(step=np.int32(step)))
    checkpointer.close()
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [2, 3]
    restored = Checkpointer(tmp_path).restore_latest(like=state)
    assert int(restored.step) == 3
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    chex.assert_trees_all_equal(jax.device_get(restored.replace(step=state.step)),
                                jax.device_get(state), strict=True)


def test_a_state_replicated_over_8_cpu_devices_saves_without_compiling(tmp_path, caplog):
    """Orbax's replica-parallel writes would slice every array once per device, each slice an
    XLA program compiled per shape and device (88 for a small GAN, ~0.5 s each on the CPU)."""
    state = init_state(build_gan(tiny_config()), jax.random.key(0))
    replicated = sharding.replicate(state, sharding.make_mesh())
    assert len(replicated.g_params["Dense_0"]["kernel"].sharding.device_set) == 8
    checkpointer = Checkpointer(tmp_path)
    # Slices an earlier test in this process compiled would be reused silently, not logged.
    jax.clear_caches()
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        checkpointer.save(replicated.replace(step=np.int32(1)))
        checkpointer.wait()
    assert [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()] == []
    restored = Checkpointer(tmp_path).restore_latest(like=replicated)
    chex.assert_trees_all_equal(jax.device_get(restored.replace(step=state.step)),
                                jax.device_get(state), strict=True)


def test_a_checkpoint_of_the_earlier_state_layout_restores_into_slots(tmp_path):
    """Until 2026-12 the EMA, the historical averages and ADA's p had fields of their own
    ({} when unused, augment_p always); such a checkpoint restores into today's `slots`."""
    import orbax.checkpoint as ocp
    from flax import struct

    @struct.dataclass
    class EarlierTrainState:  # the fields, in their order, as the earlier gan_jax saved them
        step: jax.Array
        g_params: dict
        d_params: dict
        g_model_state: dict
        d_model_state: dict
        g_opt_state: object
        d_opt_state: object
        ema_params: dict
        param_averages: dict
        augment_p: jax.Array
        lr_multiplier: jax.Array

    config = tiny_config(optim__ema_kimg=1.0, augment__policy="translation",
                         augment__ada_target=0.6)
    state = init_state(build_gan(config), jax.random.key(0))
    ema = jax.tree.map(lambda x: x + 1.0, state.g_params)
    earlier = EarlierTrainState(
        step=jnp.int32(4), g_params=state.g_params, d_params=state.d_params,
        g_model_state=state.g_model_state, d_model_state=state.d_model_state,
        g_opt_state=state.g_opt_state, d_opt_state=state.d_opt_state, ema_params=ema,
        param_averages={}, augment_p=jnp.float32(0.3), lr_multiplier=jnp.float32(0.5))
    manager = ocp.CheckpointManager(tmp_path)
    manager.save(4, args=ocp.args.StandardSave(earlier))
    manager.close()
    restored = Checkpointer(tmp_path).restore_latest(like=state)
    assert int(restored.step) == 4 and float(restored.lr_multiplier) == 0.5
    assert sorted(restored.slots) == ["augment_p", "ema"]
    assert float(restored.slots["augment_p"]) == pytest.approx(0.3)
    chex.assert_trees_all_equal(jax.device_get(restored.slots["ema"]), jax.device_get(ema))
    chex.assert_trees_all_equal(jax.device_get(restored.g_opt_state),
                                jax.device_get(state.g_opt_state))
    # A checkpoint that fits neither layout is still refused by name.
    other = init_state(build_gan(tiny_config(model__g_width=16)), jax.random.key(0))
    with pytest.raises(UserError, match="does not fit this model"):
        Checkpointer(tmp_path).restore_latest(like=other)


def test_another_models_checkpoint_is_refused_from_its_metadata_naming_the_array(
        tmp_path, monkeypatch):
    """The tree and shapes are compared before any array is read (a read failing part-way
    leaves orbax's pending reads behind), and the refusal names the first array that differs."""
    state = init_state(build_gan(tiny_config()), jax.random.key(0))
    checkpointer = Checkpointer(tmp_path)
    checkpointer.save(state)
    checkpointer.close()
    other = init_state(build_gan(tiny_config(model__g_width=16)), jax.random.key(0))
    reads = []
    monkeypatch.setattr(Checkpointer, "_restore", lambda self, *args: reads.append(args))
    with pytest.raises(UserError, match=r"does not fit this model \(ValueError: \S+ is "
                       r"\(\d+(, \d+)*,?\) in the checkpoint, \(\d+(, \d+)*,?\) in the model\)"):
        Checkpointer(tmp_path).restore_latest(like=other)
    assert reads == []


# Slow (28 s on 2 cores): the SIGKILL tests of test_preemption.py check the same exact resume
# in the default suite; this one adds switching the data placement on resume.
@pytest.mark.slow
@requires_fashion_mnist
def test_resume_equals_uninterrupted_run(tmp_path):
    # The input pipeline may change on resume: both placements give the same batches.
    host, device = {"data.placement": "host"}, {"data.placement": "device"}
    uninterrupted = train(_tiny_run_config(steps=5, **host), tmp_path / "a", progress=False)
    train(_tiny_run_config(steps=2, **device), tmp_path / "b", progress=False)  # "stopped"
    resumed = train(_tiny_run_config(steps=5, **host), tmp_path / "b", progress=False)
    assert int(resumed.step) == int(uninterrupted.step) == 5
    chex.assert_trees_all_equal(jax.device_get(resumed), jax.device_get(uninterrupted),
                                strict=True)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5  # steps 1-2 from the first run, 3-5 from the second


@requires_fashion_mnist
def test_resume_with_a_different_model_is_refused_and_touches_nothing(tmp_path):
    train(_tiny_run_config(steps=2), tmp_path, progress=False)
    before = snapshot(tmp_path)
    changed = _tiny_run_config(steps=4, **{"model.g_width": 16})
    with pytest.raises(UserError, match=r"model.g_width=8 but this config has model.g_width=16"):
        train(changed, tmp_path, progress=False)
    assert snapshot(tmp_path) == before


@requires_fashion_mnist
def test_divergence_stops_the_run_without_saving_the_bad_state(tmp_path):
    # A learning rate this large overflows the parameters within a few steps.
    config = _tiny_run_config(steps=8, **{"optim.g_lr": 1e38, "optim.d_lr": 1e38,
                                          "train.checkpoint_every_kimg": 0.016})
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+ \(non-finite .*\)"):
        train(config, tmp_path, progress=False)
    restored = Checkpointer(tmp_path / "checkpoints").restore_latest(
        like=init_state(build_gan(config), jax.random.key(0)))
    if restored is not None:
        assert all(np.all(np.isfinite(x)) for x in leaves(restored))


def test_schedule_in_kimg():
    assert steps_for_kimg(1.2, 64) == 19  # 19 steps show 1216 >= 1200 images
    assert steps_for_kimg(0.001, 64) == 1
    # The schedule is in images: twice the batch, half the steps, the same images seen.
    assert steps_for_kimg(1.28, 64) == 2 * steps_for_kimg(1.28, 128) == 20


def _poisoned_at(step: int, only_at_full_rate: bool):
    """A train_step_for whose metrics turn non-finite at `step` (only while lr_multiplier is 1,
    if asked): divergence exactly where a test wants it, as a rollback needs to meet it."""
    real = loop.train_step_for

    def factory(gan):
        step_fn = real(gan)

        def poisoned(state, batch, key):
            new_state, metrics = step_fn(state, batch, key)
            bad = new_state.step == step
            if only_at_full_rate:
                bad &= state.lr_multiplier == 1.0
            return new_state, metrics | {"d_loss": jnp.where(bad, jnp.nan, metrics["d_loss"]),
                                         "finite": metrics["finite"] & ~bad}
        return poisoned
    return factory


@requires_fashion_mnist
def test_divergence_rolls_back_to_the_last_checkpoint_with_lower_rates(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "train_step_for", _poisoned_at(5, only_at_full_rate=True))
    config = _tiny_run_config(steps=8, **{"train.rollback_tries": 2,
                                          "train.rollback_lr_factor": 0.5})
    state = train(config, tmp_path, progress=False)  # checkpoints at 2, 4, 6, 8
    assert int(state.step) == 8 and float(state.lr_multiplier) == 0.5
    rows = read_metrics(tmp_path)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 4, 5, 6, 7, 8]
    assert rows[4]["rollback"] == 1 and rows[4]["lr_multiplier"] == 0.5
    assert [row["lr_scale"] for row in rows[5:]] == [0.5] * 4  # trained on at half the rates
    saved = Checkpointer(tmp_path / "checkpoints").restore_latest(like=state)
    assert float(saved.lr_multiplier) == 0.5  # a resumed run keeps the lowered rates


@requires_fashion_mnist
@pytest.mark.slow  # 18 s; one rollback is tested in the default suite above
def test_rollbacks_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "train_step_for", _poisoned_at(5, only_at_full_rate=False))
    config = _tiny_run_config(steps=8, **{"train.rollback_tries": 2})
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5 \(non-finite d_loss\); the "
                       r"last good checkpoint is step 4; .* \(after 2 rollbacks\)"):
        train(config, tmp_path, progress=False)
    assert [row.get("rollback", 0) for row in read_metrics(tmp_path)].count(1) == 2

"""ProGAN (Karras et al. 2018): its layers against float64 NumPy, the fade-in's two ends, the
schedule against the official code's formula, and growing on the one pure step: stage
changes mid-run, exact resume across a stage boundary, 8 devices equal to 1."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import sample as sample_cli
from experiments.configs import progan as progan_recipes
from gan_jax import batching, data, sharding
from gan_jax.checkpoint import Checkpointer, ocp_layout
from gan_jax.config import Config, ProGANSettings, with_overrides
from gan_jax.errors import UserError
from gan_jax.loop import stage_postfix, total_steps, train
from gan_jax.metric_writers import read_metrics
from gan_jax.models import layers, progan, run_batching, schedule_values
from gan_jax.optim import optimizer_updates
from gan_jax.terms import d_drift
from gan_jax.train import (build_gan, enter_stage, images_before_step, init_state, level_of_step,
                           level_train_steps, reals_for_d, scheduled, train_step_for,
                           with_schedule)
from tests.conftest import requires_fashion_mnist
from tests.helpers import leaves, random_batch

# 4x4 -> 8x8, 16 images per step: two stable steps, one at alpha 0.5, then stable at 8x8.
TINY = {"model.arch": "progan", "model.resolution": 8, "model.latent_dim": 16,
        "model.minibatch_std": 4, "model.progan.fmap_base": 64, "model.progan.fmap_max": 16,
        "model.progan.start_resolution": 4, "model.progan.stable_kimg": 0.016,
        "model.progan.fade_kimg": 0.032, "train.batch_size": 16, "train.loss": "wasserstein",
        "reg.penalty": "wgan_gp",
        "reg.drift": 0.001, "optim.b1": 0.0, "optim.b2": 0.99, "optim.g_lr": 1e-3,
        "optim.d_lr": 1e-3, "data.fit": "pad"}


def tiny(**overrides):
    return with_overrides(progan_recipes.get_config("fashion_mnist.test"),
                          {**TINY, **{k.replace("__", "."): v for k, v in overrides.items()}})


# --- layers -------------------------------------------------------------------------------


def _conv_same_float64(x, kernel):
    """A stride-1 'same' cross-correlation of NHWC x with an HWIO kernel, in float64."""
    k = kernel.shape[0]
    padded = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    h, w = x.shape[1:3]
    return sum(np.einsum("nhwc,cd->nhwd", padded[:, i:i + h, j:j + w], kernel[i, j])
               for i in range(k) for j in range(k))


@pytest.mark.parametrize("implementation", ["matmul", "taps", "xla"])
def test_equalized_layers_scale_unit_weights_by_he_constant(implementation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 5)).astype(np.float32)
    conv = layers.EqualizedConv(7, 3, gain=math.sqrt(2), conv_implementation=implementation)
    variables = conv.init(jax.random.key(0), x)
    kernel = np.asarray(variables["params"]["conv"]["kernel"], np.float64)
    assert abs(kernel.std() - 1.0) < 0.15 and not variables["params"]["bias"].any()
    bias = rng.normal(size=7)
    variables = {"params": {"conv": {"kernel": kernel.astype(np.float32)},
                            "bias": bias.astype(np.float32)}}
    expected = _conv_same_float64(x.astype(np.float64),
                                  kernel * math.sqrt(2) / math.sqrt(3 * 3 * 5)) + bias
    np.testing.assert_allclose(conv.apply(variables, x), expected, rtol=1e-5, atol=1e-5)

    dense = layers.EqualizedDense(4, gain=0.5)
    features = rng.normal(size=(3, 9)).astype(np.float32)
    params = dense.init(jax.random.key(1), features)["params"]
    expected = (features.astype(np.float64) @ (np.asarray(params["kernel"], np.float64)
                                               * 0.5 / 3.0))
    np.testing.assert_allclose(dense.apply({"params": params}, features), expected,
                               rtol=1e-5, atol=1e-6)


def test_pixel_norm_matches_float64_numpy():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 8)) * 5
    expected = x / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(layers.pixel_norm(jnp.asarray(x, jnp.float32)), expected,
                               rtol=1e-5)


def test_feature_maps_follow_the_official_nf():
    # nf(stage) = min(int(fmap_base / 2 ** stage), fmap_max), stage = log2(side) - 1
    assert [progan.feature_maps(s, 8192, 512) for s in (4, 8, 16, 32, 64, 128, 256)] == [
        512, 512, 512, 512, 256, 128, 64]
    assert progan.feature_maps(4, 8192, 512, down=2) == 512  # nf(0), D's last dense
    assert progan.level_sides(32) == (4, 8, 16, 32)


# --- growing ------------------------------------------------------------------------------


class Networks:
    """A tiny ProGAN's state and its G and D, each compiled once for every level and alpha
    (both are values of the state)."""

    def __init__(self, config):
        self.gan = gan = build_gan(config)
        self.state = jax.jit(lambda key: init_state(gan, key))(jax.random.key(0))
        self._g = jax.jit(lambda state, z: gan.generator.apply(
            {"params": state.g_params, **state.g_model_state}, z, train=False))
        self._d = jax.jit(lambda state, images: gan.discriminator.apply(
            {"params": state.d_params, **state.d_model_state}, images, train=False).logits)

    def at(self, level, alpha):
        return with_schedule(self.state, {"level": jnp.int32(level), "stage": jnp.int32(0),
                                          "alpha": jnp.float32(alpha),
                                          "resolution": jnp.int32(0)})

    def g(self, state, z):
        return np.asarray(self._g(state, z), np.float64)

    def d(self, state, images):
        return np.asarray(self._d(state, images), np.float64)


def _with_noise(params, names, key):
    """params with every leaf under the top-level modules `names` replaced by noise."""
    return {name: (jax.tree.map(lambda p: jax.random.normal(key, p.shape), value)
                   if name in names else value) for name, value in params.items()}


@pytest.fixture(scope="module")
def networks():
    return Networks(tiny(model__resolution=16))


# Level 2 (a block between two others) in the slow suite: 11 s more on 2 cores.
@pytest.mark.parametrize("level", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_fade_in_at_alpha_0_and_1_is_the_smaller_and_the_larger_network(networks, level):
    n = networks
    z = jax.random.normal(jax.random.key(1), (8, 16))
    images = jax.random.uniform(jax.random.key(2), (8, 16, 16, 1), minval=-1, maxval=1)

    smaller, start, end = n.at(level - 1, 1.0), n.at(level, 0.0), n.at(level, 1.0)
    np.testing.assert_array_equal(n.g(start, z), n.g(smaller, z))
    np.testing.assert_allclose(n.d(start, images), n.d(smaller, images), rtol=1e-5, atol=1e-6)
    # Halfway, G's image is the mean of the two ends (the blend is linear in alpha).
    np.testing.assert_allclose(n.g(n.at(level, 0.5), z), (n.g(start, z) + n.g(end, z)) / 2,
                               rtol=1e-5, atol=1e-6)
    # Faded in, the larger network no longer reads the previous level's toRGB / fromRGB ...
    key = jax.random.key(3)
    g_changed = end.replace(g_params=_with_noise(end.g_params, {f"to_rgb_{level - 1}"}, key))
    np.testing.assert_array_equal(n.g(g_changed, z), n.g(end, z))
    d_params = dict(end.d_params)
    d_params["body"] = _with_noise(d_params["body"], {f"from_rgb_{level - 1}"}, key)
    np.testing.assert_array_equal(n.d(end.replace(d_params=d_params), images), n.d(end, images))
    # ... and at alpha 0 it reads nothing of its own new layers.
    g_changed = start.replace(g_params=_with_noise(start.g_params, {f"blocks_{level}",
                                                                    f"to_rgb_{level}"}, key))
    np.testing.assert_array_equal(n.g(g_changed, z), n.g(start, z))


def test_images_are_at_the_level_side_upscaled_to_the_final_one(networks):
    images = networks.g(networks.at(1, 1.0), jax.random.normal(jax.random.key(1), (4, 16)))
    blocks = images.reshape(4, 8, 2, 8, 2, 1)  # an 8x8 image, each pixel a 2x2 block
    np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[:, :, :1, :, :1],
                                                          blocks.shape))


def _official_schedule(kimg, stable, fade, start, final):
    """tkarras/progressive_growing_of_gans train.py TrainingSchedule, in float64: the level
    index (0 = 4x4) and alpha."""
    phase_dur = stable + fade
    phase_idx = int(np.floor(kimg / phase_dur))
    phase_kimg = kimg - phase_idx * phase_dur
    lod = np.log2(final) - np.floor(np.log2(start)) - phase_idx
    if fade > 0:
        lod -= max(phase_kimg - stable, 0.0) / fade
    lod = max(lod, 0.0)
    resolution = 2 ** (int(np.log2(final)) - int(np.floor(lod)))
    return int(np.log2(resolution)) - 2, 1.0 - (lod - np.floor(lod))


@pytest.mark.parametrize("start,stable,fade", [(4, 600, 600), (8, 100, 50), (4, 30, 0)])
def test_growth_matches_the_official_training_schedule(start, stable, fade):
    settings = ProGANSettings(start_resolution=start, stable_kimg=stable, fade_kimg=fade)
    images = np.unique(np.concatenate([np.linspace(0, 9000e3, 997).astype(np.int64),
                                       [stable * 1000, stable * 1000 + 16,
                                        (stable + fade) * 1000]]))
    ours = jax.vmap(lambda n: progan.growth(settings, 128, n))(jnp.asarray(images, jnp.int32))
    for i, n in enumerate(images):
        level, alpha = _official_schedule(n / 1000, stable, fade, start, 128)
        assert int(ours["level"][i]) == level, n
        assert int(ours["resolution"][i]) == 4 * 2 ** level
        np.testing.assert_allclose(float(ours["alpha"][i]), alpha, atol=1e-6, err_msg=str(n))
        on_host = progan.growth(settings, 128, n, np)  # the loop's choice of a level's step
        assert int(on_host["level"]) == level and int(on_host["stage"]) == int(ours["stage"][i])
    # The stage counts every change of level or of fading, and stops at the last.
    stages = np.asarray(ours["stage"])
    assert (np.diff(stages) >= 0).all() and stages[-1] == 2 * (7 - int(np.log2(start)))


@pytest.mark.parametrize("start,stable,fade,sizes,base,n_critic", [
    (4, 0.1, 0.05, "4:16,8:8,16:4", 12, 1),  # every level its own batch
    (8, 0.03, 0.0, "16:3", 8, 2),  # no fading; 8x8 at train.batch_size, two critic batches
    (4, 0.0, 0.04, "8:32,16:32", 4, 1),  # no stable stage; a batch larger than a stage
])
def test_per_resolution_batches_follow_the_official_minibatch_schedule(
        start, stable, fade, sizes, base, n_critic):
    """The official loop: each minibatch sized by the schedule of the images shown so far."""
    config = tiny(model__resolution=16, model__progan__start_resolution=start,
                  model__progan__stable_kimg=stable, model__progan__fade_kimg=fade,
                  model__progan__batch_sizes=sizes, train__batch_size=base,
                  train__n_critic=n_critic)
    clock = run_batching(config)
    by_side = {int(side): int(size) for side, size in (p.split(":") for p in sizes.split(","))}
    shown, rows = 0, []
    for step in range(120):
        level, _ = _official_schedule(shown / 1000, stable, fade, start, 16)
        per_step = by_side.get(4 * 2 ** level, base) * n_critic
        assert int(batching.images_before(clock, step)) == shown, step
        assert batching.stage_of_step(clock, step).per_step == per_step, step
        assert level_of_step(config, step, clock) == level, step
        rows.append(data.batch_indices(step, clock, 50, seed=3))
        shown += per_step
    assert batching.steps_to_show(clock, shown) == 120
    # Every level listed at one batch other than train.batch_size: that batch throughout.
    same = tiny(model__progan__batch_sizes="4:8,8:8")
    assert run_batching(same) == batching.constant(8)
    # The batches read the data in order: each example once per epoch, as with one batch size.
    order = np.concatenate(rows)
    for epoch in range(len(order) // 50):
        assert sorted(order[50 * epoch:50 * (epoch + 1)]) == list(range(50))


@pytest.mark.parametrize("variant", sorted(v for v in progan_recipes.VARIANTS if v))
def test_every_recipe_builds_and_the_v2_preset_sizes_its_batches_per_resolution(variant):
    config = progan_recipes.get_config(variant)
    build_gan(config)
    clock = run_batching(config)
    # A recipe ends at its final resolution, faded in: a schedule too long for its images
    # would end (and be evaluated) on a smaller network.
    last = schedule_values(config.model, batching.images_before(clock, total_steps(config) - 1),
                           np)
    assert (int(last["resolution"]), float(last["alpha"])) == (config.model.resolution, 1.0)
    if variant == "celeba_v2":  # 128 to the end of 16x16's stable stage, then 64, 32, 16
        assert [stage.per_step for stage in clock] == [128, 64, 32, 16]
        # 32x32 fades in after five stages of 600 kimg: its first step at 23438 x 128 images
        assert clock[1] == batching.BatchStage(23438, 3_000_064, 64)
    else:
        assert len(clock) == 1


def test_the_step_counts_images_and_sets_the_schedule_by_the_clock():
    """What the step computes from the clock (its own compilation in the slow test below)."""
    config = tiny(model__progan__batch_sizes="4:16,8:8")
    clock, batch = run_batching(config), {"image": jnp.zeros((8, 8, 8, 1))}
    schedule = jax.jit(lambda step: schedule_values(
        config.model, images_before_step(clock, step, batch)))
    values = [jax.device_get(schedule(jnp.int32(step))) for step in range(6)]
    assert [int(v["resolution"]) for v in values] == [4, 4, 8, 8, 8, 8]
    np.testing.assert_allclose([v["alpha"] for v in values], [1, 1, 0.5, 0.75, 1, 1])
    # One batch size: the step counts the batch it is given, whatever the config says.
    constant = run_batching(tiny())
    assert int(images_before_step(constant, jnp.int32(3), batch)) == 24


@pytest.mark.slow  # two compilations of the step (15-50 s on 2 cores); the clock in it above
def test_per_resolution_batches_train_each_level_at_its_own_batch():
    # 4x4: two steps of 16; 8x8: 8. Without the penalty's double backward: two compilations
    # of the step, each half as long.
    config = tiny(model__progan__batch_sizes="4:16,8:8", train__loss="non_saturating",
                  reg__penalty="none", reg__drift=0.0)
    gan, clock = build_gan(config), run_batching(config)
    steps = {level: jax.jit(fn) for level, fn in level_train_steps(gan).items()}
    state, history = init_state(gan, jax.random.key(0)), []
    for step in range(6):
        rows = batching.stage_of_step(clock, step).per_step
        batch = random_batch(tiny(train__batch_size=rows), seed=step)
        state, metrics = steps[level_of_step(config, step, clock)](state, batch,
                                                                   jax.random.key(7))
        history.append(jax.device_get(metrics))
    # 32 images at 4x4, then the fade over 32 images at 8 per step, then stable.
    assert [int(h["resolution"]) for h in history] == [4, 4, 8, 8, 8, 8]
    np.testing.assert_allclose([h["alpha"] for h in history], [1, 1, 0.5, 0.75, 1, 1])
    assert all(h["finite"] for h in history)
    with pytest.raises(UserError, match="call each level's own step"):
        train_step_for(gan)


def test_real_images_fade_like_the_official_process_reals():
    x = np.random.default_rng(2).uniform(-1, 1, (3, 16, 16, 2))

    def down(a, f):
        n, s, _, c = a.shape
        return a.reshape(n, s // f, f, s // f, f, c).mean(axis=(2, 4))

    def up(a, f):
        return a.repeat(f, axis=1).repeat(f, axis=2)

    for level, alpha in ((0, 1.0), (1, 0.3), (2, 0.75), (2, 1.0)):
        side = 4 * 2 ** level
        at_level = down(x, 16 // side)
        expected = at_level if level == 0 else (
            at_level + (up(down(at_level, 2), 2) - at_level) * (1 - alpha))
        ours = progan.real_images(jnp.asarray(x, jnp.float32),
                                  {"level": jnp.int32(level), "alpha": jnp.float32(alpha)})
        np.testing.assert_allclose(ours, up(expected, 16 // side), rtol=1e-5, atol=1e-6)


def test_drift_is_the_mean_square_of_the_real_logits():
    logits = np.random.default_rng(3).normal(size=16) * 3

    class View:  # the one thing d_drift reads
        def real(self):
            return type("Out", (), {"logits": jnp.asarray(logits, jnp.float32)})()
    value, aux = d_drift(View())
    np.testing.assert_allclose(float(value), np.mean(logits.astype(np.float64) ** 2),
                               rtol=1e-6)
    assert aux == {"d_drift": value}


# --- on the train step --------------------------------------------------------------------


class Stepper:
    """A tiny ProGAN's train step, compiled once for the data-parallel mesh over `devices`."""

    def __init__(self, config, devices=None):
        self.config, self.gan = config, build_gan(config)
        self.mesh = sharding.make_mesh(devices)
        self.step_fn = sharding.jit_train_step(train_step_for(self.gan), self.mesh)

    def run(self, steps, state=None, first=0):
        """`steps` steps from `state` (a fresh one by default) on batches first, first + 1, ...;
        returns the state and every step's metrics."""
        gan = self.gan
        state = sharding.replicate(
            jax.jit(lambda key: init_state(gan, key))(jax.random.key(0)) if state is None
            else state, self.mesh)
        history = []
        for i in range(first, first + steps):
            batch = sharding.put_process_batch(random_batch(self.config, seed=i), self.mesh)
            state, metrics = self.step_fn(state, batch, jax.random.key(7))
            history.append({k: float(v) for k, v in jax.device_get(metrics).items()}
                           | {"g_updates": int(optimizer_updates(state.g_opt_state))})
        return jax.device_get(state), history


def test_the_step_grows_resets_the_optimizers_and_resumes_exactly(tmp_path):
    stepper = Stepper(tiny(), devices=jax.devices()[:1])
    final, history = stepper.run(5)
    # 16 images per step, 16 stable + 32 fading per level: stable, stable, fading at 0.5, ...
    assert [h["resolution"] for h in history] == [4, 4, 8, 8, 8]
    assert [h["alpha"] for h in history] == [1, 1, 0.5, 1, 1]
    # Adam starts afresh where the stage changes (the official reset_opt_for_new_lod).
    assert [h["g_updates"] for h in history] == [1, 2, 1, 1, 2]
    assert all(h["finite"] for h in history)

    # Stopped mid-fade and restored from a checkpoint, it ends bitwise where it would have.
    stopped, _ = stepper.run(3)
    checkpointer = Checkpointer(tmp_path)
    checkpointer.save(stopped)
    checkpointer.wait()
    restored = checkpointer.restore_latest(like=jax.tree.map(ocp_layout, stopped))
    checkpointer.close()
    resumed, _ = stepper.run(2, state=restored, first=3)
    chex.assert_trees_all_equal(resumed, final, strict=True)


@pytest.mark.slow  # two more compilations of the step (25 s on 2 cores)
def test_eight_devices_grow_as_one_does():
    assert jax.device_count() == 8
    single, history = Stepper(tiny(), devices=jax.devices()[:1]).run(5)
    sharded, sharded_history = Stepper(tiny()).run(5)
    for a, b in zip(sharded_history, history):
        np.testing.assert_allclose(a["d_loss"], b["d_loss"], rtol=1e-4, atol=1e-5)
    for a, b in zip(leaves(sharded), leaves(single), strict=True):
        scale = np.linalg.norm(b.astype(np.float64))
        assert np.linalg.norm((a - b).astype(np.float64)) <= 1e-4 * scale + 1e-5


@pytest.mark.parametrize("reset", [True, False])
def test_a_new_stage_starts_the_optimizers_afresh_unless_told_not_to(networks, reset):
    gan = build_gan(tiny(model__resolution=16, model__progan__reset_optimizer=reset))
    state = networks.state  # stage 0
    moved = state.replace(g_opt_state=jax.tree.map(lambda x: x + 1, state.g_opt_state),
                          d_opt_state=jax.tree.map(lambda x: x + 1, state.d_opt_state))
    values = {"level": jnp.int32(1), "alpha": jnp.float32(0.25), "resolution": jnp.int32(8)}
    same_stage = enter_stage(gan, moved, values | {"stage": jnp.int32(0)})
    chex.assert_trees_all_equal(same_stage.g_opt_state, moved.g_opt_state)
    new_stage = enter_stage(gan, moved, values | {"stage": jnp.int32(1)})
    for opt_state, fresh, kept in ((new_stage.g_opt_state, state.g_opt_state, moved.g_opt_state),
                                   (new_stage.d_opt_state, state.d_opt_state, moved.d_opt_state)):
        chex.assert_trees_all_equal(opt_state, fresh if reset else kept)
    assert float(scheduled(new_stage.d_model_state, "alpha")) == 0.25
    assert int(scheduled(new_stage.g_model_state, "stage")) == 1


def test_mirroring_flips_real_images_left_right_at_random():
    reals = jax.random.uniform(jax.random.key(0), (2, 16, 8, 8, 1))  # (n_critic, B, H, W, C)
    config = tiny(data__mirror=True)
    shown = np.asarray(reals_for_d(config, reals, {}, jax.random.key(1)))
    flipped = np.all(shown == np.asarray(reals)[:, :, :, ::-1], axis=(2, 3, 4))
    kept = np.all(shown == np.asarray(reals), axis=(2, 3, 4))
    assert (flipped ^ kept).all() and 8 < flipped.sum() < 24  # each one or the other, ~half
    np.testing.assert_array_equal(reals_for_d(tiny(), reals, {}, jax.random.key(1)), reals)


@pytest.mark.slow  # two runs of the CLI's loop (100 s on 2 cores); the step's own resume above
@requires_fashion_mnist
@pytest.mark.parametrize("batch_sizes,stopped_at,alphas", [
    # 16 images per step: 16 stable at 16x16, 32x32 fading in over 48, stable from 64.
    ("", 3, [1, 1, 1 / 3, 2 / 3, 1]),
    # The official per-resolution batches: 16 at 16x16 (two steps, to 32 images), then 8.
    ("16:16,32:8", 4, [1, 1, 1 / 3, 1 / 2, 2 / 3, 5 / 6, 1, 1]),
])
def test_a_run_resumed_mid_fade_grows_on_and_ends_bitwise_as_an_uninterrupted_one(
        tmp_path, batch_sizes, stopped_at, alphas):
    config = with_overrides(progan_recipes.get_config("fashion_mnist.test"),  # 16 -> 32
                            {"model.progan.batch_sizes": batch_sizes,
                             "train.log_every_kimg": 0.008})
    uninterrupted = train(config, tmp_path / "a", progress=False)
    stopped = with_overrides(config, {"train.total_kimg": 0.048})  # 48 images: mid-fade
    assert int(train(stopped, tmp_path / "b", progress=False).step) == stopped_at
    resumed = train(config, tmp_path / "b", progress=False)
    chex.assert_trees_all_equal(jax.device_get(resumed), jax.device_get(uninterrupted),
                                strict=True)
    rows = [row for row in read_metrics(tmp_path / "b") if "resolution" in row]
    assert [row["resolution"] for row in rows] == [16, 16] + [32] * (len(alphas) - 2)
    np.testing.assert_allclose([row["alpha"] for row in rows], alphas, rtol=1e-6)
    assert rows[-1]["kimg"] == 0.08
    assert (tmp_path / "b" / "samples" / "latest.png").is_file()
    # The sample CLI draws a finished run's grid at the final side, upscaled.
    sample_cli.main(["--run", str(tmp_path / "b"), "--out", str(tmp_path / "grid.png"),
                     "--upscale", "2"])
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape[0] > 8 * 32 * 2 and grid.std() > 0  # 64 images of 32x32, x2


def test_the_progress_bar_shows_the_stage():
    assert stage_postfix({"resolution": 16.0, "alpha": 0.4166, "d_loss": 1.0}) == {
        "res": "16", "alpha": "0.42"}
    assert stage_postfix({"d_loss": 1.0}) == {}


@pytest.mark.parametrize("overrides,message", [
    ({"model.resolution": 28}, "power of 2"),
    ({"model.progan.start_resolution": 16}, "above model.resolution=8"),
    ({"model.spectral_norm": "d"}, "model.spectral_norm='d'"),
    ({"model.d_norm": "layer"}, "model.d_norm='layer'"),
    ({"model.progan.stable_kimg": 0.0, "model.progan.fade_kimg": 0.0}, "must be positive"),
    ({"model.progan.batch_sizes": "4:16,16:8"}, "needs a side this run trains at \\(4, 8\\)"),
    ({"model.progan.batch_sizes": "4=16"}, "'4=16' is not 'side:batch'"),
    ({"model.progan.batch_sizes": "8:0"}, "a batch of at least 1"),
    ({"model.progan.batch_sizes": "8:6"},
     "minibatch_std=4 groups must divide a batch of model.progan.batch_sizes=6"),
])
def test_bad_progan_settings_are_refused_by_name(overrides, message):
    with pytest.raises(UserError, match=message):
        build_gan(tiny(**{k.replace(".", "__"): v for k, v in overrides.items()}))


def test_progan_settings_for_another_architecture_are_refused():
    with pytest.raises(UserError, match="model.progan.fade_kimg is set but model.arch='dcgan'"):
        build_gan(with_overrides(Config(), {"model.progan.fade_kimg": 1.0}))

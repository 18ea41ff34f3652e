"""The pure train step: it learns, it is deterministic, and sharding does not change it."""

import chex
import jax
import numpy as np
import pytest

from gan_jax import sharding
from gan_jax.train import build_gan, init_state, make_train_step, train_step_for
from tests.helpers import leaves, random_batch, tiny_config


def _run(config, steps, devices=None, seed=0):
    """`steps` jitted steps on the data-parallel mesh over `devices`; returns (state, metrics)."""
    gan = build_gan(config)
    mesh = sharding.make_mesh(devices)
    step_fn = sharding.jit_train_step(train_step_for(gan), mesh)
    state = sharding.replicate(init_state(gan, jax.random.key(seed)), mesh)
    metrics = None
    for i in range(steps):
        batch = sharding.put_process_batch(random_batch(config, seed=i), mesh)
        state, metrics = step_fn(state, batch, jax.random.key(seed + 100))
    return jax.device_get(state), jax.device_get(metrics)


@pytest.mark.parametrize("arch,loss", [("dcgan", "non_saturating"), ("dcgan", "minimax"),
                                       ("mlp", "minimax"), ("dcgan", "least_squares"),
                                       ("dcgan", "hinge")])
def test_one_step_is_finite_and_updates_both_networks(arch, loss):
    config = tiny_config(model__arch=arch, train__loss=loss)
    gan = build_gan(config)
    before = jax.device_get(init_state(gan, jax.random.key(0)))
    after, metrics = _run(config, steps=1)
    assert int(after.step) == 1
    for name in ("d_loss", "g_loss", "g_grad_norm", "d_grad_norm"):
        assert np.isfinite(metrics[name]), name
    assert bool(metrics["finite"])
    for tree in ("g_params", "d_params"):
        old, new = leaves(getattr(before, tree)), leaves(getattr(after, tree))
        assert all(np.all(np.isfinite(x)) for x in new)
        # Adam moves every parameter that has a gradient, and every one here does; except that
        # under the hinge loss D's output bias has none while every logit is inside the margin
        # (d/db = -mean 1[real < 1] + mean 1[fake > -1] = -1 + 1), as at initialisation.
        paths = [jax.tree_util.keystr(p) for p, _ in
                 jax.tree_util.tree_flatten_with_path(getattr(before, tree))[0]]
        unchanged = [path for path, a, b in zip(paths, old, new, strict=True)
                     if np.array_equal(a, b)]
        expected = (["['logit']['bias']"] if (loss, arch, tree) == ("hinge", "dcgan", "d_params")
                    else [])
        assert unchanged == expected, f"{tree}: {unchanged} did not change"
    if arch == "dcgan":  # BatchNorm running statistics live in the state and move
        for tree in ("g_model_state", "d_model_state"):
            old, new = leaves(getattr(before, tree)), leaves(getattr(after, tree))
            assert any(not np.array_equal(a, b) for a, b in zip(old, new, strict=True)), tree


def _small_step():
    """(step function, state, batch, key, a copy of the state) of an 8x8 DCGAN: small enough to
    compile fast and run op by op, with BatchNorm state in D."""
    config = tiny_config(model__resolution=8, train__batch_size=8)
    state = init_state(build_gan(config), jax.random.key(0))
    # Copies, not views: np.asarray of a CPU jax.Array may share its buffer.
    state_before = jax.tree.map(np.array, jax.device_get(state))
    return (make_train_step(config), state, random_batch(config), jax.random.key(1),
            state_before)


def test_make_train_step_is_pure_and_reusable():
    step_fn, state, batch, key, state_before = _small_step()
    batch_before = jax.tree.map(np.array, batch)
    jitted = jax.jit(step_fn)
    first = jax.device_get(jitted(state, batch, key))  # (state, metrics)
    again = jax.device_get(jitted(state, batch, key))  # the cached executable, same inputs
    assert int(first[0].step) == 1  # it stepped: the checks below are not of an identity
    chex.assert_trees_all_equal(again, first, strict=True)
    # Neither call wrote into its inputs (as a donating or in-place step would).
    chex.assert_trees_all_equal(jax.device_get(state), state_before, strict=True)
    chex.assert_trees_all_equal(batch, batch_before, strict=True)
    # No state hidden in the Python function: a fresh trace compiles the same program (and
    # run op by op it agrees: the next test).
    retraced = jax.device_get(jax.jit(lambda *args: step_fn(*args))(state, batch, key))
    chex.assert_trees_all_equal(retraced, first, strict=True)


@pytest.mark.slow  # 15 s of op-by-op dispatch
def test_the_step_run_op_by_op_agrees_with_the_compiled_one():
    step_fn, state, batch, key, state_before = _small_step()
    first = jax.device_get(jax.jit(step_fn)(state, batch, key))
    # Up to XLA's fusion and reduction order (measured: 2e-7 on Adam's first moments, 1e-8 on
    # parameters; a changed update moves them by ~lr = 2e-4).
    eager = jax.device_get(step_fn(state, batch, key))
    chex.assert_trees_all_close(eager, first, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal(jax.device_get(state), state_before, strict=True)


def test_same_seed_gives_bitwise_identical_state():
    config = tiny_config()
    one, one_metrics = _run(config, steps=3)
    two, two_metrics = _run(config, steps=3)
    chex.assert_trees_all_equal((one, one_metrics), (two, two_metrics), strict=True)
    other, _ = _run(config, steps=3, seed=1)
    assert not np.array_equal(leaves(one.g_params)[0], leaves(other.g_params)[0])


def test_the_key_drives_the_latents():
    config = tiny_config()
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    step_fn = jax.jit(train_step_for(gan))
    batch = random_batch(config)
    a, _ = step_fn(state, batch, jax.random.key(1))
    b, _ = step_fn(state, batch, jax.random.key(2))
    assert not np.array_equal(leaves(a.g_params)[0], leaves(b.g_params)[0])


def test_eight_devices_give_the_one_device_state():
    assert jax.device_count() == 8, "tests/conftest.py should provide 8 CPU devices"
    config = tiny_config()
    single, m1 = _run(config, steps=3, devices=jax.devices()[:1])
    sharded, m8 = _run(config, steps=3)
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(m8[name], m1[name], rtol=1e-5)
    assert jax.tree.structure(sharded) == jax.tree.structure(single)
    for a, b in zip(leaves(sharded), leaves(single), strict=True):
        # Relative error of each array as a whole: Adam's first steps are ~lr * sign(grad), so
        # a single near-zero gradient can move with the reduction order; the state cannot.
        # The absolute 1e-6 (0.5% of one Adam step of lr 2e-4) covers one-element arrays
        # such as a bias; a sharding bug (per-device BatchNorm statistics, a gradient summed
        # over one shard) moves parameters by a whole step, ~2e-4.
        scale = np.linalg.norm(b.astype(np.float64))
        assert np.linalg.norm((a - b).astype(np.float64)) <= 1e-5 * scale + 1e-6


def test_batchnorm_statistics_are_global_under_sharding():
    # If BatchNorm normalised per device, a batch whose halves differ wildly would give
    # different outputs sharded and unsharded. Under the mesh the mean is over all 16 images.
    config = tiny_config()
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    images = np.concatenate([np.zeros((8, 28, 28, 1)), np.ones((8, 28, 28, 1))]).astype(
        np.float32)

    def d_logits(state, images):
        out, _ = gan.discriminator.apply({"params": state.d_params, **state.d_model_state},
                                         images, train=True, mutable=["batch_stats"])
        return out.logits

    mesh = sharding.make_mesh()
    sharded = jax.jit(d_logits, in_shardings=(sharding.replicated(mesh),
                                              sharding.batch_sharded(mesh)))(state, images)
    np.testing.assert_allclose(np.asarray(sharded), np.asarray(d_logits(state, images)),
                               rtol=1e-5, atol=1e-6)


def test_the_lr_multiplier_scales_both_learning_rates():
    # A rollback halves lr_multiplier; that must be the step of a config with half the rates.
    halved = tiny_config(optim__g_lr=1e-4, optim__d_lr=1e-4)
    gan, gan_halved = build_gan(tiny_config()), build_gan(halved)
    state = init_state(gan, jax.random.key(0))
    batch, key = random_batch(halved), jax.random.key(1)
    with_multiplier, metrics = jax.jit(train_step_for(gan))(
        state.replace(lr_multiplier=np.float32(0.5)), batch, key)
    reference, _ = jax.jit(train_step_for(gan_halved))(init_state(gan_halved, jax.random.key(0)),
                                                      batch, key)
    assert float(metrics["lr_scale"]) == 0.5
    chex.assert_trees_all_close(
        jax.device_get(with_multiplier.replace(lr_multiplier=np.float32(1))),
        jax.device_get(reference), rtol=1e-6, atol=1e-9)
    # Not vacuous: at the full rates both networks end elsewhere (had neither the multiplier
    # nor the config's rates reached the optimizers, the trees above would agree anyway).
    full_rate, _ = jax.jit(train_step_for(gan))(state, batch, key)
    for tree in ("g_params", "d_params"):
        assert not np.allclose(leaves(getattr(full_rate, tree))[0],
                               leaves(getattr(with_multiplier, tree))[0]), tree

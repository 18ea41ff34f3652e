"""The zoo's choices on the one train step, each against an independent computation of what it
should do: n_critic, clipping, lazy penalties, EMA, historical averaging, feature matching,
DiffAugment/ADA wiring, bfloat16 and learning-rate decay."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.optim import make_optimizer, optimizer_updates
from gan_jax.sampling import generate_images
from gan_jax.slots import ema_beta, ema_update
from gan_jax.train import (build_gan, critic_batches, discriminator_step, images_to_float,
                           init_state, train_step_for)
from tests.helpers import leaves, random_batch, tiny_config

KEY = jax.random.key(7)


def _small(**overrides):
    """A DCGAN at 8x8 without BatchNorm in D: compiles in a few seconds."""
    return tiny_config(**{"model__resolution": 8, "model__d_norm": "none",
                          "train__batch_size": 8, **overrides})


def _steps(config, steps=1):
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    step = jax.jit(train_step_for(gan))
    history = []
    for i in range(steps):
        state, metrics = step(state, random_batch(config, seed=i), KEY)
        history.append(jax.device_get(metrics))
    return gan, state, history


def test_n_critic_five_in_one_step_equals_five_discriminator_steps():
    config = _small(train__n_critic=5)
    gan, state, _ = _steps(config)
    reference = init_state(gan, jax.random.key(0))
    batches = critic_batches(random_batch(config, seed=0), 5)
    keys = jax.random.split(jax.random.fold_in(KEY, 0), 6)
    d_step = jax.jit(lambda s, real, key, i: discriminator_step(gan, s, real, None, key, i))
    for i in range(5):
        reference, _ = d_step(reference, images_to_float(batches["image"][i]), keys[i], i)
    chex.assert_trees_all_close(jax.device_get(state.d_params),
                                jax.device_get(reference.d_params), rtol=2e-5, atol=1e-7)
    assert int(optimizer_updates(state.d_opt_state)) == 5  # Adam stepped five times


def test_fresh_g_latents_leave_d_alone_and_give_g_fakes_of_its_own():
    """train.g_latents: "shared" scores G on the last D update's fakes, "fresh" on G(z') for
    latents z' of its own stream; D's updates are the same either way. G's non-saturating loss
    is recomputed here from the trained D and the initial G on each set of latents."""
    from gan_jax.sampling import sample_latents
    from gan_jax.terms import StepKeys, discriminate, generate
    from gan_jax.train import G_LATENTS
    results = {mode: _steps(_small(train__n_critic=2, train__g_latents=mode))
               for mode in ("shared", "fresh")}
    (gan, shared, [shared_metrics]), (_, fresh, [fresh_metrics]) = results.values()
    chex.assert_trees_all_close(jax.device_get(fresh.d_params),
                                jax.device_get(shared.d_params), rtol=1e-5, atol=1e-7)
    start = init_state(gan, jax.random.key(0))
    keys = jax.random.split(jax.random.fold_in(KEY, 0), 3)  # two D updates, then G's

    def g_loss(key):
        z = sample_latents(StepKeys.of(key).z, 8, gan.latent_dim)
        fake, _ = generate(gan, start.g_params, start.g_model_state, z, None)
        out, _ = discriminate(gan, shared.d_params, shared.d_model_state, fake, None,
                              jax.random.key(0), jnp.float32(0))
        return float(jnp.mean(jax.nn.softplus(-out.logits.astype(jnp.float32))))
    on_d_fakes, on_own = g_loss(keys[1]), g_loss(jax.random.fold_in(keys[2], G_LATENTS))
    # Each loss matches its own recomputation far more closely than the other's (a D two
    # updates old scores both sets of fakes near log 2, 2e-4 apart).
    for logged, own, other in ((shared_metrics["g_loss"], on_d_fakes, on_own),
                               (fresh_metrics["g_loss"], on_own, on_d_fakes)):
        assert abs(logged - own) < abs(logged - other) / 20, (logged, own, other)
    # Adam's first step is +-lr per weight: G's differ where the two gradients' signs do.
    assert any(not np.array_equal(a, b)
               for a, b in zip(leaves(fresh.g_params), leaves(shared.g_params)))


def test_critic_batches_give_each_update_its_own_rows():
    batch = {"image": np.arange(12)[:, None], "label": np.arange(12)}
    split = critic_batches(batch, 3)
    assert split["image"].shape == (3, 4, 1)
    # Every row is used once, and update i gets rows i, i + 3, ... (spread over the devices).
    np.testing.assert_array_equal(split["label"][1], [1, 4, 7, 10])
    assert sorted(np.ravel(split["label"]).tolist()) == list(range(12))


def test_weight_clipping_keeps_every_critic_weight_within_bounds():
    config = _small(train__loss="wasserstein", reg__clip=0.01, model__d_norm="batch",
                    train__n_critic=2)
    _, state, _ = _steps(config)
    values = np.concatenate([x.ravel() for x in leaves(state.d_params)])
    assert np.abs(values).max() <= 0.01
    # N(0, 0.02) initial weights exceed the bound, so clipping was active, not vacuous.
    assert np.isclose(np.abs(values).max(), 0.01)


def test_lazy_penalty_is_a_separate_compensated_update_every_k_steps():
    config = _small(reg__penalty="r1", reg__penalty_every=2, reg__penalty_weight=1.0)
    gan, state, history = _steps(config, steps=2)
    # At the end of each block of two D updates (StyleGAN2's separate phases): main only at
    # step 0, main + regularisation at step 1.
    assert history[0]["penalty"] == 0 and history[1]["penalty"] > 0
    assert int(optimizer_updates(state.d_opt_state)) == 3
    hyper = state.d_opt_state.hyperparams
    ratio = 2 / 3
    assert float(hyper["learning_rate"]) == pytest.approx(config.optim.d_lr * ratio)
    assert float(hyper["b1"]) == pytest.approx(config.optim.b1 ** ratio)
    assert float(hyper["b2"]) == pytest.approx(config.optim.b2 ** ratio)


def test_a_lazy_generator_term_is_its_own_compensated_update_every_k_steps():
    """A term of G's parameters every 2 G updates, added through build_gan(terms=...): the same
    phase machinery as D's lazy penalty."""
    from gan_jax.terms import Term, terms_for

    config = _small()
    l2 = Term("l2", "g", lambda view: (sum(jnp.sum(jnp.square(p)) for p in
                                          jax.tree.leaves(view.params)), {"g_l2": 1.0}),
              weight=1e-3, every=2, of_params=True)
    gan = build_gan(config, terms=(*terms_for(config), l2))
    state = init_state(gan, jax.random.key(0))
    step = jax.jit(train_step_for(gan))
    logged = []
    for i in range(2):
        state, metrics = step(state, random_batch(config, seed=i), KEY)
        logged.append(float(metrics["g_l2"]))
    assert logged == [0.0, 1.0]  # skipped after the first G update, applied after the second
    assert int(optimizer_updates(state.g_opt_state)) == 3
    assert int(optimizer_updates(state.d_opt_state)) == 2
    hyper = state.g_opt_state.hyperparams
    assert float(hyper["learning_rate"]) == pytest.approx(config.optim.g_lr * 2 / 3)
    assert float(hyper["b1"]) == pytest.approx(config.optim.b1 ** (2 / 3))
    assert float(state.d_opt_state.hyperparams["learning_rate"]) == pytest.approx(
        config.optim.d_lr)


def test_eager_penalty_is_added_to_every_d_loss():
    with_penalty = _steps(_small(reg__penalty="wgan_gp", reg__penalty_weight=10.0))[2][0]
    without = _steps(_small())[2][0]
    assert with_penalty["d_loss"] == pytest.approx(without["d_loss"]
                                                   + 10.0 * with_penalty["penalty"], rel=1e-5)


def test_ema_after_n_steps_is_the_closed_form_weighted_average():
    beta = 0.8
    values = [jnp.asarray(float(v)) for v in (3.0, -1.0, 4.0, 2.0)]
    ema = jnp.asarray(10.0)
    for value in values:
        ema = ema_update(ema, value, beta)
    n = len(values)
    closed_form = beta ** n * 10.0 + sum((1 - beta) * beta ** (n - 1 - t) * float(v)
                                         for t, v in enumerate(values))
    assert float(ema) == pytest.approx(closed_form, rel=1e-6)


def test_the_ema_never_changes_training():
    """G, D and both optimizers after three steps are bitwise those of the same run without an
    EMA: so one run evaluated with eval.generator=ema and =trained measures what it adds."""
    _, plain, _ = _steps(_small(), steps=3)
    _, averaged, _ = _steps(_small(optim__ema_kimg=0.1), steps=3)
    assert "ema" in averaged.slots and "ema" not in plain.slots
    for old, new in zip(leaves(plain), leaves(averaged.replace(
            slots={k: v for k, v in averaged.slots.items() if k != "ema"}))):
        np.testing.assert_array_equal(old, new)
    assert np.max(np.abs(leaves(averaged.slots["ema"])[0] - leaves(averaged.g_params)[0])) > 0


def test_ema_half_life_and_rampup():
    # After one half-life of images the old average keeps weight 1/2.
    beta = float(ema_beta(jnp.asarray(64_000), 64, half_life_kimg=6.4, rampup=None))
    assert beta ** (6400 / 64) == pytest.approx(0.5, rel=1e-5)
    # Ramp-up: before any image the EMA is the current weights; after 640 images the half-life
    # is 0.05 * 640 = 32 images.
    assert float(ema_beta(jnp.asarray(0), 64, 10.0, rampup=0.05)) == 0.0
    assert float(ema_beta(jnp.asarray(640), 64, 10.0, rampup=0.05)) == pytest.approx(0.5 ** 2)


def test_ema_start_copies_g_until_it_then_decays_as_without_it():
    # BigGAN-PyTorch's ema_start: 1000 steps of 64 images = 64 kimg.
    before = ema_beta(jnp.asarray(999 * 64), 64, 10.0, None, start_kimg=64.0)
    at, plain = (ema_beta(jnp.asarray(64_000), 64, 10.0, None, start_kimg=s)
                 for s in (64.0, 0))
    assert float(before) == 0.0 and float(at) == float(plain) == pytest.approx(0.5 ** 0.0064)


def test_ema_generator_is_updated_by_the_step_and_used_for_samples():
    config = _small(optim__ema_kimg=0.004)  # half-life of 4 images, batch 8: beta = 1/4
    gan, state, _ = _steps(config)
    initial = init_state(gan, jax.random.key(0))
    for ema, old, new in zip(leaves(state.slots["ema"]), leaves(initial.g_params),
                             leaves(state.g_params), strict=True):
        np.testing.assert_allclose(ema, 0.25 * old + 0.75 * new, rtol=1e-5, atol=1e-7)
    z = jax.random.normal(jax.random.key(1), (4, gan.latent_dim))
    sampled = generate_images(gan, state, z)
    with_ema = gan.generator.apply({"params": state.slots["ema"], **state.g_model_state}, z,
                                   train=False)
    raw = gan.generator.apply({"params": state.g_params, **state.g_model_state}, z, train=False)
    np.testing.assert_array_equal(sampled, with_ema)
    assert not np.allclose(sampled, raw)


def test_historical_averages_are_the_mean_of_all_parameters_so_far():
    config = _small(reg__historical_averaging=0.01)
    gan = build_gan(config)
    state = init_state(gan, jax.random.key(0))
    step = jax.jit(train_step_for(gan))
    snapshots = [jax.device_get(state.g_params)]
    for i in range(3):
        state, _ = step(state, random_batch(config, seed=i), KEY)
        snapshots.append(jax.device_get(state.g_params))
    mean = jax.tree.map(lambda *xs: np.mean(np.stack(xs).astype(np.float64), 0), *snapshots)
    # float32 averages against a float64 mean: values compared, not dtypes.
    chex.assert_trees_all_close(jax.device_get(state.slots["averages"]["g"]), mean, rtol=1e-5,
                                atol=1e-7)


def test_feature_matching_adds_its_weighted_term_to_the_generator_loss():
    plain = _steps(_small())[2][0]
    matched = _steps(_small(reg__feature_matching=0.5))[2][0]
    assert matched["feature_matching"] > 0
    assert matched["g_loss"] == pytest.approx(plain["g_loss"] + 0.5 * matched["feature_matching"],
                                              rel=1e-5)


def test_diffaugment_is_wired_into_the_step_and_p_zero_is_the_identity():
    _, plain, _ = _steps(_small())
    _, off, _ = _steps(_small(augment__policy="color,translation,cutout", augment__p=0.0))
    _, on, _ = _steps(_small(augment__policy="color,translation,cutout"))
    chex.assert_trees_all_equal(jax.device_get(plain.d_params), jax.device_get(off.d_params),
                                strict=True)
    assert any(not np.allclose(a, b) for a, b in zip(leaves(plain.d_params),
                                                     leaves(on.d_params), strict=True))


def test_ada_moves_p_by_one_batch_worth_per_d_update():
    # Target 1: E[sign D(real)] is below it unless every real logit is positive, so p falls by
    # batch / (ada_kimg * 1000) at each of the two D updates.
    config = _small(augment__policy="translation", augment__p=0.5, augment__ada_target=1.0,
                    augment__ada_kimg=1.0, train__n_critic=2)
    _, state, history = _steps(config)
    assert float(state.slots["augment_p"]) == pytest.approx(0.5 - 2 * 8 / 1000, abs=1e-6)
    assert history[0]["augment_p"] == pytest.approx(float(state.slots["augment_p"]))


def test_bfloat16_steps_keep_float32_parameters_and_stay_finite():
    _, state, history = _steps(_small(model__compute_dtype="bfloat16"), steps=2)
    assert all(h["finite"] for h in history)
    for tree in (state.g_params, state.d_params, state.g_opt_state, state.d_opt_state):
        dtypes = {x.dtype for x in leaves(tree) if np.issubdtype(x.dtype, np.floating)}
        assert dtypes == {np.dtype(np.float32)}


def test_linear_decay_reaches_zero_at_decay_kimg():
    # batch 8: 0.016 kimg is two steps; the third step runs at rate 0.
    config = _small(optim__lr_decay="linear", optim__decay_kimg=0.016)
    _, _, history = _steps(config, steps=3)
    assert [float(h["lr_scale"]) for h in history] == pytest.approx([1.0, 0.5, 0.0])


def test_conditional_wgan_gp_draws_fakes_for_the_real_labels():
    """Interpolates between a real and a fake sample must share one class (Gulrajani et al.)."""
    from gan_jax.train import fake_labels_for
    real_labels = jnp.array([3, 1, 4, 1])
    key = jax.random.key(0)
    gp = build_gan(tiny_config(model__conditioning="projection", model__d_norm="layer",
                               reg__penalty="wgan_gp"))
    np.testing.assert_array_equal(fake_labels_for(gp, key, real_labels, 4), real_labels)
    plain = build_gan(tiny_config(model__conditioning="projection"))
    drawn = fake_labels_for(plain, key, real_labels, 4)
    np.testing.assert_array_equal(drawn, jax.random.randint(key, (4,), 0, 10))
    assert fake_labels_for(build_gan(tiny_config()), key, None, 4) is None


def test_phases_group_each_networks_terms_by_interval():
    from gan_jax.errors import UserError
    from gan_jax.terms import Term
    from gan_jax.train import phases_for

    def term(name, network, every=1, of_params=False):
        return Term(name, network, lambda view: (0.0, {}), every=every, of_params=of_params)
    phases = phases_for((term("adv", "d"), term("r1", "d", 4), term("adv", "g"),
                         term("fm", "g"), term("ortho", "g", 2, of_params=True)))
    assert [(p.network, p.every, [t.name for t in p.terms]) for p in phases] == [
        ("d", 1, ["adv"]), ("d", 4, ["r1"]), ("g", 1, ["adv", "fm"]), ("g", 2, ["ortho"])]
    with pytest.raises(UserError, match=r"intervals \[1, 2, 3\]; one lazy interval"):
        phases_for((term("r1", "d", 2), term("r2", "d", 3)))
    with pytest.raises(UserError, match="lazy G term must be a function of G's parameters"):
        phases_for((term("path_length", "g", 4),))


@pytest.mark.parametrize("name", ["adam", "rmsprop"])
def test_optim_eps_is_the_optimizers_epsilon(name):
    import optax
    from gan_jax.config import OptimConfig
    reference = {"adam": optax.adam(1e-3, b1=0.5, b2=0.999, eps=0.1),
                 "rmsprop": optax.rmsprop(1e-3, decay=0.999, eps=0.1, eps_in_sqrt=False)}[name]
    grads = {"w": jnp.array([1.0, -2.0, 0.05])}
    updates = {}
    for eps in (0.1, 1e-8):
        tx = make_optimizer(OptimConfig(optimizer=name, eps=eps), 1e-3)
        updates[eps] = tx.update(grads, tx.init(grads))[0]["w"]
    expected = reference.update(grads, reference.init(grads))[0]["w"]
    np.testing.assert_allclose(updates[0.1], expected, rtol=1e-5)  # float32 hyperparameters
    assert np.max(np.abs(updates[0.1] - updates[1e-8])) > 1e-4  # a larger eps damps the step

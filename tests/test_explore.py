"""Latent interpolation, class grids and nearest neighbours against float64 NumPy references."""

import jax
import numpy as np
import pytest

from gan_jax import explore
from gan_jax.errors import UserError
from gan_jax.sampling import generate_uint8
from gan_jax.train import build_gan, init_state
from tests.helpers import tiny_config


def slerp64(z0, z1, t):
    omega = np.arccos(np.dot(z0, z1) / (np.linalg.norm(z0) * np.linalg.norm(z1)))
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


def test_interpolations_match_their_formulas():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=16), rng.normal(size=16)
    t = np.linspace(0, 1, 7)
    spherical = np.asarray(explore.interpolate(z0, z1, 7, "spherical"))
    np.testing.assert_allclose(spherical, [slerp64(z0, z1, x) for x in t], rtol=1e-5, atol=1e-5)
    linear = np.asarray(explore.interpolate(z0, z1, 7, "linear"))
    np.testing.assert_allclose(linear, [(1 - x) * z0 + x * z1 for x in t], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(spherical[[0, -1]], [z0, z1], atol=1e-5)
    # For equal-norm ends, slerp keeps the norm; the straight line shrinks through the middle.
    z1 = z1 * np.linalg.norm(z0) / np.linalg.norm(z1)
    norms = np.linalg.norm(np.asarray(explore.interpolate(z0, z1, 7)), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(z0), rtol=1e-5)
    parallel = np.asarray(explore.interpolate(z0, 2 * z0, 3))  # the straight-line limit
    np.testing.assert_allclose(parallel[1], 1.5 * z0, rtol=1e-5)
    with pytest.raises(UserError, match="interpolation kind 'cubic' is unknown"):
        explore.interpolate(z0, z1, 3, "cubic")


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(1)
    pool = rng.integers(0, 256, (50, 5, 5, 1), np.uint8)
    queries = np.concatenate([pool[[7, 31]], rng.integers(0, 256, (3, 5, 5, 1), np.uint8)])
    rows, distances = explore.nearest_neighbours(queries, pool, k=3, chunk=16)
    d64 = np.linalg.norm(queries.reshape(5, 1, -1) / 255.0 - pool.reshape(1, 50, -1) / 255.0,
                         axis=2)
    np.testing.assert_array_equal(rows, np.argsort(d64, 1, kind="stable")[:, :3])
    np.testing.assert_allclose(distances, np.sort(d64, 1)[:, :3], rtol=1e-12)
    assert rows[:2, 0].tolist() == [7, 31]  # a copied training image is found at distance 0
    assert distances[:2, 0].tolist() == [0.0, 0.0]


def test_class_grid_rows_are_classes_and_columns_share_latents():
    gan = build_gan(tiny_config(model__conditioning="projection", model__spectral_norm="d",
                                model__d_norm="none"))
    state = init_state(gan, jax.random.key(0))
    grid = explore.class_grid(gan, state, per_class=2, key=jax.random.key(1))
    z = jax.random.normal(jax.random.key(1), (2, gan.latent_dim))
    generate = jax.jit(lambda state, z, labels: generate_uint8(gan, state, z, labels))
    for label in (0, 9):
        expected = generate(state, z, np.full(2, label))
        np.testing.assert_array_equal(grid[2 * label:2 * label + 2], np.asarray(expected))

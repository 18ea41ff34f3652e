"""Tools for looking at a trained generator: latent interpolation, class grids, nearest neighbours.

    z = explore.interpolate(z0, z1, steps=8, kind="spherical")
    images = generate_images(gan, state, z)
    rows, distances = explore.nearest_neighbours(sample_uint8, train_uint8, k=3)

Used by notebooks/explore.ipynb; plain functions of arrays, so they work in any research code.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError
from gan_jax.sampling import generate_uint8
from gan_jax.train import Gan, TrainState

KINDS = ("linear", "spherical")


def interpolate(z0: jax.Array, z1: jax.Array, steps: int, kind: str = "spherical") -> jax.Array:
    """`steps` latents from z0 to z1 (both included), shape (steps, latent_dim).

    "linear" is (1 - t) z0 + t z1. "spherical" is slerp (Shoemake 1985; White 2016 for GANs):
    it follows the great circle between the two, so the norms stay where a Gaussian's samples
    live instead of shrinking through the middle as a straight line's do.
    """
    if kind not in KINDS:
        raise UserError(f"interpolation kind '{kind}' is unknown; choose one of {KINDS}")
    t = jnp.linspace(0.0, 1.0, steps)[:, None]
    if kind == "linear":
        return (1 - t) * z0 + t * z1
    cos = jnp.dot(z0, z1) / (jnp.linalg.norm(z0) * jnp.linalg.norm(z1))
    omega = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
    sin = jnp.sin(omega)
    # Nearly parallel latents: slerp's limit is the straight line.
    safe = jnp.where(sin < 1e-6, 1.0, sin)
    spherical = (jnp.sin((1 - t) * omega) * z0 + jnp.sin(t * omega) * z1) / safe
    return jnp.where(sin < 1e-6, (1 - t) * z0 + t * z1, spherical)


def class_grid(gan: Gan, state: TrainState, per_class: int, key: jax.Array,
               z: jax.Array | None = None) -> np.ndarray:
    """uint8 images (num_classes * per_class, H, W, C): row c holds `per_class` samples of class
    c, the same latents in every row (`z`, default drawn from `key`), so a column shows one
    latent across the classes."""
    if gan.num_classes < 2:
        raise UserError("a class grid needs a class-conditional generator")
    if z is None:
        z = jax.random.normal(key, (per_class, gan.latent_dim))
    z = jnp.tile(z, (gan.num_classes, 1))
    labels = jnp.repeat(jnp.arange(gan.num_classes), per_class)
    return np.asarray(jax.jit(functools.partial(generate_uint8, gan))(state, z, labels))


def nearest_neighbours(queries: np.ndarray, pool: np.ndarray, k: int = 1,
                       chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The `k` images of `pool` closest to each query in pixel space (Euclidean on [0, 1]
    values): (rows (Q, k), distances (Q, k)), nearest first. Shows whether samples copy
    training images. The pool is scanned in chunks so 60k images need little memory."""
    if queries.shape[1:] != pool.shape[1:]:
        raise UserError(f"queries {queries.shape[1:]} and pool {pool.shape[1:]} images differ "
                        "in shape")
    flat = lambda x: jnp.asarray(x, jnp.float32).reshape(len(x), -1) / 255.0
    q = flat(queries)

    @jax.jit
    def squared(q, p):  # |q|^2 - 2 q.p + |p|^2, at HIGHEST precision (no TF32 on a GPU)
        cross = jnp.matmul(q, p.T, precision=jax.lax.Precision.HIGHEST)
        return jnp.maximum(jnp.sum(q * q, 1)[:, None] - 2 * cross + jnp.sum(p * p, 1)[None], 0)

    best_d = np.full((len(q), 0), np.inf)
    best_i = np.zeros((len(q), 0), np.int64)
    for start in range(0, len(pool), chunk):
        d = np.asarray(squared(q, flat(pool[start:start + chunk])))
        rows = np.arange(start, start + d.shape[1])
        best_d = np.concatenate([best_d, d], 1)
        best_i = np.concatenate([best_i, np.broadcast_to(rows, d.shape)], 1)
        keep = np.argsort(best_d, 1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, 1)
        best_i = np.take_along_axis(best_i, keep, 1)
    # The expansion cancels badly near 0 (a copied image came out at 1e-3, not 0): the k
    # found are measured again directly, in float64, and ordered by that.
    as_unit = lambda x: np.asarray(x, np.float64).reshape(*x.shape[:-3], -1) / 255.0
    exact = np.linalg.norm(as_unit(queries)[:, None] - as_unit(pool[best_i]), axis=-1)
    order = np.argsort(exact, 1, kind="stable")
    return np.take_along_axis(best_i, order, 1), np.take_along_axis(exact, order, 1)

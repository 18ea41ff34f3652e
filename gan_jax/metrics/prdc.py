"""Improved precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each sample's neighbourhood is the closed ball around it whose radius is the distance to its
k-th nearest OTHER sample of the same set (radius_r for reals, radius_f for fakes). With N
reals r_i and M fakes f_j:

    precision = (1/M) #{j : exists i, ||f_j - r_i|| <= radius_r[i]}   fakes on the real manifold
    recall    = (1/N) #{i : exists j, ||r_i - f_j|| <= radius_f[j]}   reals on the fake manifold
    density   = 1/(kM) sum_j #{i : ||f_j - r_i|| <= radius_r[i]}      real balls per fake, / k
    coverage  = (1/N) #{i : min_j ||r_i - f_j|| <= radius_r[i]}       real balls holding a fake

The balls are closed (<=) as the papers define them and stylegan2-ada-pytorch computes them;
clovaai/generative-evaluation-prdc uses strict <, which differs only on exact ties (duplicated
samples, lattice-valued features).

Scale: 50k x 50k features of dimension 2048 are handled without the full N x M matrix. Rows are
processed in blocks of `batch_size` against all columns (a batch_size x N float32 block at a
time) inside one jit-compiled lax.scan; the row set is zero-padded to a whole number of blocks
and padded rows are masked, so the last partial block needs no program of its own.

Distances: squared distances |a|^2 + |b|^2 - 2 a.b (float32, HIGHEST matmul precision, clamped
at 0) so the work is one matmul per block. That form loses accuracy when the norms are large
next to the distances (|a|^2 ~ |b|^2 ~ 2 a.b cancel), which is the case for non-negative
Inception/VGG activations that share a large common component. Distances do not change under
a common translation, so both sets are first shifted by the mean real feature: the norms then
are of the size of the distances and the cancellation error drops accordingly (measured on
non-negative d = 2048 features with |x|^2 ~ 9x the squared distances: worst relative error of a
squared distance 2.6e-5 raw, 2e-7 centred). Radii and comparisons stay squared (the square root
is monotone), so no rounding is added after the matmul. Exact ties are honoured where the
arithmetic is exact (small integer coordinates with an exactly representable real mean);
otherwise membership can flip only for a distance within float32 rounding of a radius.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError
from gan_jax.metrics.checks import check_same_dimension, feature_array, is_int_at_least

_HIGHEST = jax.lax.Precision.HIGHEST


class PRDC(NamedTuple):
    """The four fractions and the neighbourhood size k they were computed with."""

    precision: float
    recall: float
    density: float
    coverage: float
    nearest_k: int


def _check_inputs(real: jax.Array, fake: jax.Array, nearest_k, batch_size) -> None:
    """Raise UserError for settings or shapes with which the metrics are undefined."""
    if not is_int_at_least(nearest_k, 1):
        raise UserError(f"PRDC: nearest_k={nearest_k!r}; pass an integer >= 1 (3 and 5 are "
                        "the usual choices)")
    if not is_int_at_least(batch_size, 1):
        raise UserError(f"PRDC: batch_size={batch_size!r}; pass an integer >= 1")
    check_same_dimension("PRDC", real, fake)
    for name, x in (("real_features", real), ("fake_features", fake)):
        if x.shape[0] < nearest_k + 1:
            raise UserError(f"PRDC: {name} has {x.shape[0]} row(s) but nearest_k={nearest_k} "
                            f"needs at least {nearest_k + 1} (a sample is not its own "
                            "neighbour); pass more samples or a smaller nearest_k")


def _squared_distances(a: jax.Array, a_sq: jax.Array, b: jax.Array,
                       b_sq: jax.Array) -> jax.Array:
    """D[i, j] = ||a_i - b_j||^2 = |a_i|^2 + |b_j|^2 - 2 a_i.b_j, clamped at 0 (rounding)."""
    cross = jnp.dot(a, b.T, precision=_HIGHEST)
    return jnp.maximum(a_sq[:, None] + b_sq[None, :] - 2.0 * cross, 0.0)


def _row_blocks(x: jax.Array, block: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """x zero-padded to whole blocks: (blocks, block, d) rows, their |row|^2, global indices."""
    n = x.shape[0]
    num_blocks = -(-n // block)
    padded = jnp.pad(x, ((0, num_blocks * block - n), (0, 0)))
    rows = padded.reshape(num_blocks, block, x.shape[1])
    index = jnp.arange(num_blocks * block).reshape(num_blocks, block)
    return rows, jnp.sum(rows * rows, axis=-1), index


@functools.partial(jax.jit, static_argnames=("k", "block"))
def _kth_neighbour_sq(x: jax.Array, *, k: int, block: int) -> jax.Array:
    """Squared distance from each row of x to its k-th nearest other row, (n,).

    The row itself is excluded by index, not by assuming its distance is the smallest: a
    computed self-distance need not be exactly 0, and an exact duplicate must still count as a
    neighbour at distance 0.
    """
    n = x.shape[0]
    x_sq = jnp.sum(x * x, axis=-1)
    column = jnp.arange(n)

    def one_block(_, blk):
        rows, rows_sq, index = blk
        d2 = _squared_distances(rows, rows_sq, x, x_sq)
        d2 = jnp.where(index[:, None] == column[None, :], jnp.inf, d2)
        smallest_negated, _ = jax.lax.top_k(-d2, k)  # k smallest distances, nearest first
        return None, -smallest_negated[:, -1]

    _, radii = jax.lax.scan(one_block, None, _row_blocks(x, block))
    return radii.reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames=("block",))
def _cross_memberships(real: jax.Array, fake: jax.Array, radii_r: jax.Array,
                       radii_f: jax.Array, *, block: int):
    """One pass over fake blocks x all reals, returning what the four metrics count.

    Returns (real balls holding each fake (M,) int32, reals inside some fake ball (N,) bool,
    real balls holding some fake (N,) bool).
    """
    m = fake.shape[0]
    real_sq = jnp.sum(real * real, axis=-1)
    rows, rows_sq, index = _row_blocks(fake, block)
    radii_f = jnp.pad(radii_f, (0, index.size - m)).reshape(index.shape)

    def one_block(carry, blk):
        in_fake_ball, covered = carry
        f, f_sq, idx, r_f = blk
        valid = (idx < m)[:, None]  # padded fake rows take part in nothing
        d2 = _squared_distances(f, f_sq, real, real_sq)  # (block, N): fake j x real i
        in_real_ball = valid & (d2 <= radii_r[None, :])
        in_fake_ball = in_fake_ball | jnp.any(valid & (d2 <= r_f[:, None]), axis=0)
        covered = covered | jnp.any(in_real_ball, axis=0)
        return (in_fake_ball, covered), jnp.sum(in_real_ball, axis=1, dtype=jnp.int32)

    none = jnp.zeros(real.shape[0], dtype=bool)
    (in_fake_ball, covered), counts = jax.lax.scan(
        one_block, (none, none), (rows, rows_sq, index, radii_f))
    return counts.reshape(-1)[:m], in_fake_ball, covered


def prdc(real_features, fake_features, *, nearest_k: int = 3, batch_size: int = 1024) -> PRDC:
    """Precision, recall, density and coverage of fake features against real features.

    Both arrays are (num_samples, feature_dim) with the same feature_dim and at least
    nearest_k + 1 rows. Distances are computed in blocks of `batch_size` rows against all rows
    of the other set, so peak memory is about batch_size * max(N, M) floats beyond the inputs.
    """
    real = feature_array("PRDC", "real_features", real_features)
    fake = feature_array("PRDC", "fake_features", fake_features)
    _check_inputs(real, fake, nearest_k, batch_size)
    k = int(nearest_k)
    shift = jnp.mean(real, axis=0)  # distances are translation invariant; see module docstring
    real, fake = real - shift, fake - shift
    radii_r = _kth_neighbour_sq(real, k=k, block=min(int(batch_size), real.shape[0]))
    radii_f = _kth_neighbour_sq(fake, k=k, block=min(int(batch_size), fake.shape[0]))
    counts, in_fake_ball, covered = jax.device_get(_cross_memberships(
        real, fake, radii_r, radii_f, block=min(int(batch_size), fake.shape[0])))
    counts = np.asarray(counts, np.int64)
    return PRDC(precision=float(np.mean(counts > 0)),
                recall=float(np.mean(in_fake_ball)),
                density=float(counts.sum() / (k * fake.shape[0])),
                coverage=float(np.mean(covered)),
                nearest_k=k)

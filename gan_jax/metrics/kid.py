"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

KID is the unbiased estimate of the squared maximum mean discrepancy (MMD^2) between the real
and generated feature distributions under the cubic polynomial kernel

    k(x, y) = (x.y / d + 1)^3,        d = feature dimension,

averaged over random subsets, as stylegan2-ada-pytorch `metrics/kernel_inception_distance.py`
computes it. For one subset of m generated rows x and m real rows y, each drawn without
replacement,

    a = K(x, x) + K(y, y),   b = K(x, y),
    t = (sum(a) - trace(a)) / (m - 1) - 2 sum(b) / m,   kid_subset = t / m,

which is sum_{i!=j}[k(x_i,x_j) + k(y_i,y_j)] / (m(m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2.
Every term has expectation MMD^2 between the two distributions, so the estimate can be negative
when the distributions match.

Numerics: KID is a small difference of large sums (kernel values near 1-2, the difference of
their means near 1e-3 or less), so the three m x m Gram matrices are formed in float32 on the
device at HIGHEST matmul precision and reduced there to per-row sums, and the host finishes the
sums in float64. Before the row sums every kernel value of a subset is shifted by one constant
c (the subset's mean cross-kernel value): t is unchanged by that shift, because the a-term loses
2c * m(m-1) / (m-1) = 2cm and the b-term gains 2 * c * m^2 / m = 2cm, but the float32 partial
sums shrink from about m * 1.7 to the spread of the kernel values, so their rounding error no
longer dominates the small difference. What remains is the float32 rounding of the dot products
themselves, a roughly fixed absolute error (about 1e-8 in KID for d = 256..2048, m = 500..1000,
far below the spread of the subset estimates); measured against float64 it is 1e-8 relative at
KID ~ 0.2, 1e-6 at KID ~ 5e-4 and 3e-6 at KID ~ 1e-5 (d = 2048, m = 1000), growing as KID -> 0.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError
from gan_jax.metrics.checks import check_same_dimension, feature_array, is_int_at_least

_HIGHEST = jax.lax.Precision.HIGHEST


class KID(NamedTuple):
    """KID mean and standard deviation over subsets, with the subset size actually used."""

    mean: float
    std: float
    subset_size: int
    num_subsets: int


def _check_inputs(real: jax.Array, fake: jax.Array, num_subsets, subset_size) -> None:
    """Raise UserError for shapes or settings with which KID is undefined."""
    check_same_dimension("KID", real, fake)
    for name, x in (("real_features", real), ("fake_features", fake)):
        if x.shape[0] < 2:
            raise UserError(f"KID: {name} has {x.shape[0]} row(s); the unbiased estimate needs "
                            "at least 2 samples in each set, pass more samples")
    if not is_int_at_least(num_subsets, 1):
        raise UserError(f"KID: num_subsets={num_subsets!r}; pass an integer >= 1")
    if not is_int_at_least(subset_size, 2):
        raise UserError(f"KID: subset_size={subset_size!r}; pass an integer >= 2")


def _draw_subsets(n_real: int, n_fake: int, m: int, num_subsets: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of every subset, (num_subsets, m) each, deterministic in `seed`.

    Per subset the fake rows are drawn first, then the real rows, each without replacement:
    the order of stylegan2-ada-pytorch, with a seeded Generator instead of global state.
    """
    rng = np.random.default_rng(seed)
    fake_idx = np.empty((num_subsets, m), np.int32)
    real_idx = np.empty((num_subsets, m), np.int32)
    for s in range(num_subsets):
        fake_idx[s] = rng.choice(n_fake, m, replace=False)
        real_idx[s] = rng.choice(n_real, m, replace=False)
    return real_idx, fake_idx


def _cubic_kernel(x: jax.Array, y: jax.Array) -> jax.Array:
    """K[i, j] = (x_i . y_j / d + 1)^3 in float32, the matmul at full float32 precision."""
    g = jnp.dot(x, y.T, precision=_HIGHEST) / x.shape[1] + 1.0
    return g * g * g


def _subset_row_sums(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-row sums of the shifted kernels of one subset: off-diagonal K(x,x), K(y,y); all K(x,y).

    The diagonals are zeroed here rather than subtracted later so no large term is left to
    cancel on the host.
    """
    kxy = _cubic_kernel(x, y)
    c = jnp.mean(kxy)  # any constant works (see the module docstring); this one centres b
    off_diagonal = ~jnp.eye(x.shape[0], dtype=bool)
    kxx = jnp.where(off_diagonal, _cubic_kernel(x, x) - c, 0.0)
    kyy = jnp.where(off_diagonal, _cubic_kernel(y, y) - c, 0.0)
    return kxx.sum(axis=1), kyy.sum(axis=1), (kxy - c).sum(axis=1)


@jax.jit
def _all_row_sums(real: jax.Array, fake: jax.Array, real_idx: jax.Array,
                  fake_idx: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """_subset_row_sums for every subset, (num_subsets, m) each.

    lax.map runs the subsets one after another inside one compiled program: each subset's
    three m x m matmuls already fill an accelerator, and gathering all subsets at once would
    need num_subsets * m * d floats per set.
    """
    def one(indices):
        r, f = indices
        return _subset_row_sums(fake[f], real[r])
    return jax.lax.map(one, (real_idx, fake_idx))


def _subset_kids(row_xx: np.ndarray, row_yy: np.ndarray, row_xy: np.ndarray) -> np.ndarray:
    """kid per subset from the per-row sums, in float64: t / m with t as in the docstring."""
    m = row_xx.shape[1]
    row_xx, row_yy, row_xy = (np.asarray(r, np.float64) for r in (row_xx, row_yy, row_xy))
    t = (row_xx.sum(1) + row_yy.sum(1)) / (m - 1) - 2.0 * row_xy.sum(1) / m
    return t / m


def kernel_inception_distance(real_features, fake_features, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> KID:
    """KID between two (n, d) feature arrays: mean and standard deviation over random subsets.

    Each subset holds m = min(subset_size, n_real, n_fake) rows of each set, drawn without
    replacement with np.random.default_rng(seed), so the result is deterministic. `std` is the
    population standard deviation (ddof=0) of the per-subset estimates, as in Binkowski et al.'s
    code and torch-fidelity; it measures the spread of the subset estimates, not the standard
    error of `mean` (divide by sqrt(num_subsets) for that, ignoring the overlap of subsets).
    """
    real = feature_array("KID", "real_features", real_features)
    fake = feature_array("KID", "fake_features", fake_features)
    _check_inputs(real, fake, num_subsets, subset_size)
    m = int(min(subset_size, real.shape[0], fake.shape[0]))
    real_idx, fake_idx = _draw_subsets(real.shape[0], fake.shape[0], m, int(num_subsets), seed)
    sums = jax.device_get(_all_row_sums(real, fake, jnp.asarray(real_idx),
                                        jnp.asarray(fake_idx)))
    kids = _subset_kids(*sums)
    return KID(mean=float(kids.mean()), std=float(kids.std()), subset_size=m,
               num_subsets=int(num_subsets))

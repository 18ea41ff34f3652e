"""Input checks shared by the feature-space metrics (KID, PRDC): one clear line per mistake."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import UserError


def feature_array(metric: str, name: str, x) -> jax.Array:
    """`x` as a float32 (n, d) device array, or a UserError saying what is wrong with it."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):  # lists, scalars: NumPy decides
        x = np.asarray(x)
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise UserError(f"{metric}: {name} has dtype {x.dtype}; pass a real-valued (float) "
                        "feature array of shape (num_samples, feature_dim)")
    if len(x.shape) != 2:
        raise UserError(f"{metric}: {name} has shape {tuple(x.shape)}; pass a 2-D array of shape "
                        "(num_samples, feature_dim), one feature vector per row")
    with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
        x = jnp.asarray(x, jnp.float32)
    # Checked after the cast, so float64 values beyond float32 range are caught too.
    if not bool(jnp.all(jnp.isfinite(x))):
        raise UserError(f"{metric}: {name} contains NaN, infinite or beyond-float32 "
                        f"(|x| > 3.4e38) values; remove or fix those rows before computing "
                        f"{metric}")
    return x


def check_same_dimension(metric: str, real: jax.Array, fake: jax.Array) -> None:
    if real.shape[1] != fake.shape[1]:
        raise UserError(f"{metric}: real features have dimension {real.shape[1]} but fake "
                        f"features have {fake.shape[1]}; extract both with the same network")


def check_choice(kind: str, value: str, choices) -> None:
    """`value` must be one of `choices` (e.g. a resize mode), or a UserError listing them."""
    if value not in choices:
        raise UserError(f"unknown {kind} {value!r}: choose one of {', '.join(choices)}")


def is_int_at_least(value, low: int) -> bool:
    return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            and value >= low)

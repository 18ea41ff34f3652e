"""Helpers of the tests that compare a Flax network with its PyTorch transcription."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch

# Compiling without XLA's expensive optimisations halves the time of these tiny networks.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def fast_jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` compiled for its arguments at each call, without XLA's expensive passes."""
    def call(*args: Any) -> Any:
        return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)

    return call


def perturb(tree: Any, seed: int, scale: float = 0.3) -> Any:
    """Adds noise to every leaf, so zero biases and unit gains cannot hide a wiring mistake."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: x + jnp.asarray(scale * rng.normal(size=x.shape), x.dtype),
                        tree)


def set_param(param: torch.Tensor, value: Any) -> None:
    """Copies a Flax array into a torch parameter or buffer of the same shape."""
    value = torch.from_numpy(np.array(value, dtype=np.float32))
    assert param.shape == value.shape, (param.shape, value.shape)
    param.data.copy_(value)


def nchw(x: jax.Array) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def assert_close(actual: Any, expected: Any, rtol: float = 1e-5) -> None:
    """Max absolute error relative to the largest expected magnitude below `rtol`."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = np.max(np.abs(expected))
    assert scale > 0
    err = np.max(np.abs(actual - expected)) / scale
    assert err < rtol, f"max relative error {err:.2e}"

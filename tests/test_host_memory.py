"""gan_jax.host_memory: a compiled program's temporary buffer is reused between calls instead of
mapped and page-faulted anew (measured in a fresh interpreter, where the setting is made before
JAX starts its threads, as the entry points make it)."""

import json
import os
import subprocess
import sys

import pytest

from gan_jax import host_memory

pytestmark = pytest.mark.skipif(not host_memory.on_glibc(),
                                reason="the setting is glibc's malloc")

# A 64 MiB intermediate (4096 x 4096 float32) that XLA must keep in its temporary buffer, then
# the page faults per call once the calls have warmed up.
FAULTS_PER_CALL = """
import json, resource
import gan_jax
import jax, jax.numpy as jnp
f = jax.jit(lambda x, w, v: jnp.sum(jnp.tanh(x @ w) @ v))
x, w, v = jnp.ones((4096, 256)), jnp.ones((256, 4096)) / 256, jnp.ones((4096, 8))
for _ in range(3):
    f(x, w, v).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    f(x, w, v).block_until_ready()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5))
"""
BUFFER_PAGES = 4096 * 4096 * 4 // 4096


def faults_per_call(**env: str) -> float:
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_CALL], capture_output=True,
                            text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu",
                                                        "XLA_FLAGS": "", **env})
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_temporary_buffer_is_reused_not_faulted_in_again_on_every_call():
    reused = faults_per_call()
    system = faults_per_call(GAN_JAX_MALLOC="system")
    # glibc's own policy maps the 64 MiB buffer afresh each call: every page faults again.
    assert system > 0.9 * BUFFER_PAGES, system
    assert reused < 0.05 * BUFFER_PAGES, (reused, system)


def test_the_opt_out_keeps_glibcs_defaults(monkeypatch):
    monkeypatch.setenv(host_memory.OPT_OUT, "system")
    assert host_memory.reuse_freed_memory() is False

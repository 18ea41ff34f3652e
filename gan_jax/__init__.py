"""gan_jax: a functional JAX/Flax codebase for generative adversarial networks."""

from gan_jax import host_memory

# Before JAX starts its CPU backend: XLA:CPU's per-call buffers are then reused, not mapped
# and page-faulted anew on every call (gan_jax.host_memory; GAN_JAX_MALLOC=system opts out).
host_memory.reuse_freed_memory()

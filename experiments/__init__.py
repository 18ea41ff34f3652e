# Every entry point here (`python -m experiments.*`) imports gan_jax before jax, so that its host
# memory setting (gan_jax.host_memory) is in place before any of jax's threads allocate.
import gan_jax  # noqa: F401

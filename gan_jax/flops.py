"""Analytic FLOP counts of the networks and of the train step, for TFLOP/s and % of peak.

Counts come from layer shapes, not from the compiler: XLA's `cost_analysis` on GPU leaves out
the convolutions it hands to cuDNN, so it cannot be used for a conv net's throughput. A layer
costs 2 FLOPs per multiply-add of its matrix arithmetic:
  Dense            rows x in x out
  Conv             output positions x kernel taps x in / groups x out
  ConvTranspose    input positions x kernel taps x in x out (each input scatters a full kernel)
  SelfAttention    its two attention products, HW x HW/4 x (C/8 + C/2) per image (its 1x1
                   projections are Dense layers, counted as such)
Normalisations, activations, the losses and the optimizer update are elementwise and left out
(under 1% of a DCGAN step).

A train step's count follows from the forward counts with the usual rule that the backward pass
costs twice the forward (input gradients + weight gradients). With G and D the forward FLOPs per
image, B the batch of one D update and n D updates per step (`train.n_critic`):
  each D update    3 x D x 2B  (real and fake: forward + backward)  +  G x B  (its fakes)
  the G update     D x B (forward on the fakes) + D x B (input gradients only)
                   + 2 x G x B (G's backward; its forward is shared with the last D update,
                   or, under train.g_latents="fresh", one more: + G x B)
  step             n x (6B x D + B x G) + 2B x D + 2B x G
Terms that run D on more batches add their passes: bCR's transformed reals and fakes 3B x D
each per D update (forward + backward), and a relativistic loss's D forward on the real batch
in the G update, B x D.
A growing model (ProGAN) is counted at its final level, the full networks, with that level's
batch (model.progan.batch_sizes may give it its own): the step the end of its training runs.
The input gradient of D's first layer is counted in the D update although nothing needs it, as
is conventional. Gradient penalties and DiffAugment add work this does not count; the benchmark
cases have neither. Embedding lookups (gathers) count 0, and so does a projection head's
inner product with the class embedding (C multiply-adds per image).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models import run_batching
from gan_jax.models.layers import SelfAttention


def layer_macs(module: nn.Module, inputs: Any, outputs: Any) -> int:
    """Multiply-adds of one call of a Dense, Conv, ConvTranspose or SelfAttention layer (its
    two products; its projections are Dense layers of their own); 0 for anything else."""
    if isinstance(module, nn.Dense):
        return math.prod(inputs.shape[:-1]) * inputs.shape[-1] * module.features
    if isinstance(module, nn.ConvTranspose):
        return (math.prod(inputs.shape[:-1]) * math.prod(module.kernel_size)
                * inputs.shape[-1] * module.features)
    if isinstance(module, nn.Conv):
        return (math.prod(outputs.shape[:-1]) * math.prod(module.kernel_size)
                * inputs.shape[-1] // module.feature_group_count * module.features)
    if isinstance(module, SelfAttention):
        n, height, width, channels = inputs.shape
        positions = height * width
        return n * positions * (positions // 4) * (channels // 8 + channels // 2)
    return 0


def count_macs(fn: Callable[..., Any], *args: Any) -> int:
    """Multiply-adds of every layer call `layer_macs` counts that `fn(*args)` makes, found by
    tracing it abstractly (`jax.eval_shape`: no arithmetic runs and no memory is allocated;
    `args` may be `jax.ShapeDtypeStruct`s)."""
    total = 0
    calling: set[int] = set()  # layers inside their own __call__

    def count(next_fun, args, kwargs, context):
        nonlocal total
        module = id(context.module)
        # A layer that hands its call to Flax's own (gan_jax.models.convolution's Conv falls
        # back to super().__call__) is one layer call, counted once.
        if module in calling or context.method_name != "__call__" or not args:
            return next_fun(*args, **kwargs)
        calling.add(module)
        try:
            outputs = next_fun(*args, **kwargs)
        finally:
            calling.discard(module)
        total += layer_macs(context.module, args[0], outputs)
        return outputs

    with nn.intercept_methods(count):
        jax.eval_shape(fn, *args)
    return total


@dataclasses.dataclass(frozen=True)
class StepFlops:
    generator: float  # forward FLOPs of G per image
    discriminator: float  # forward FLOPs of D per image
    per_step: float  # one train step: n_critic D updates and one G update
    real_images_per_step: int  # batch_size x n_critic

    @property
    def per_real_image(self) -> float:
        return self.per_step / self.real_images_per_step


def network_flops(gan: Any, batch_size: int = 2) -> tuple[float, float]:
    """Forward FLOPs per image of (G, D) of a `gan_jax.train.Gan`."""
    key = jax.random.key(0)
    z = jnp.zeros((batch_size, gan.latent_dim))
    labels = jnp.zeros((batch_size,), jnp.int32) if gan.num_classes else None
    images = jnp.zeros((batch_size, *gan.image_shape))
    per_image = []
    for network, inputs in ((gan.generator, z), (gan.discriminator, images)):
        # Counted on `apply`, not `init`: initialisation may call a layer more than once
        # (spectral norm stores the raw weights first).
        variables = jax.eval_shape(lambda: network.init(key, inputs, labels, train=False))
        macs = count_macs(lambda v: network.apply(v, inputs, labels, train=False), variables)
        per_image.append(2 * macs / batch_size)
    return per_image[0], per_image[1]


def train_step_flops(gan: Any) -> StepFlops:
    """FLOPs of one `train_step_for(gan)` call (a growing model's final-level step); see the
    module docstring for the rule."""
    n = gan.config.train.n_critic
    b = run_batching(gan.config)[-1].per_step // n  # D's batch in the last stage of the clock
    g, d = network_flops(gan)
    r = gan.config.reg
    extra_d_passes = sum(3 for weight in (r.consistency_real, r.consistency_fake) if weight)
    per_step = (n * ((6 + extra_d_passes) * b * d + b * g) + 2 * b * d + 2 * b * g
                + (b * d if gan.loss.g_sees_real else 0)
                + (b * g if gan.config.train.g_latents == "fresh" else 0))
    return StepFlops(g, d, per_step, b * n)

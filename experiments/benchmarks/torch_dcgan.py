"""The DCGAN train step in PyTorch: the baseline of the speed benchmark.

The same work as gan_jax's DCGAN step (`model.arch=dcgan`, BCE non-saturating loss, Adam 2e-4 /
(0.5, 0.999)), layer for layer:
  G  z -> base x base x (ngf * 2^(k-1)) (a transposed conv from 1x1, no bias) -> BN -> ReLU,
     then stride-2 4x4 transposed convs halving the channels (no bias) -> BN -> ReLU,
     and a last stride-2 transposed conv to the image channels (with bias) -> tanh.
  D  stride-2 4x4 convs doubling from ndf (the first with a bias and no BN, the others BN
     without bias) -> LeakyReLU 0.2, then a base x base valid conv to one logit (with bias).
One step: fakes from G, one D update on a real and a detached fake batch (two separate D calls,
each with its own BatchNorm statistics), then one G update through D(fake). Both implementations
have the same parameter count (checked in tests/test_benchmarks.py).

Modes: "eager"; "compile" (torch.compile of G and D, default mode); "reduce-overhead"
(torch.compile with CUDA graphs). Precisions: "float32" (TF32 allowed for convolutions and
matmuls, as XLA uses by default on the GPU) and "bfloat16" (autocast). Adam is `fused=True` on
CUDA, the fastest optimizer PyTorch has. torch is needed by this benchmark only.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn

MODES = ("eager", "compile", "reduce-overhead")
PRECISIONS = ("float32", "bfloat16")
LOSSES = ("non_saturating", "minimax", "hinge")


def _plan(resolution: int) -> tuple[int, int]:
    from gan_jax.models.dcgan import upsampling_plan
    return upsampling_plan(resolution)


def generator(resolution: int, channels: int, width: int, latent_dim: int) -> nn.Module:
    base, n_up = _plan(resolution)
    features = width * 2 ** (n_up - 1)
    layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, features, base, 1, 0, bias=False),
                               nn.BatchNorm2d(features), nn.ReLU(True)]
    for _ in range(n_up - 1):
        layers += [nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(features // 2), nn.ReLU(True)]
        features //= 2
    layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(resolution: int, channels: int, width: int) -> nn.Module:
    base, n_down = _plan(resolution)
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    features = width
    for _ in range(n_down - 1):
        layers += [nn.Conv2d(features, features * 2, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(features * 2), nn.LeakyReLU(0.2, True)]
        features *= 2
    layers += [nn.Conv2d(features, 1, base, 1, 0), nn.Flatten(0)]
    return nn.Sequential(*layers)


def _init_weights(module: nn.Module) -> None:
    # DCGAN's N(0, 0.02) weights and N(1, 0.02) BatchNorm gains, as gan_jax.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class GANStep:
    """Networks, optimizers and one train step, set up for a mode and a precision.

    One step: `n_critic` D updates, each on its own real batch and fresh fakes (detached), then
    one G update through D applied to the last D update's fakes (gan_jax shares them the same
    way), differentiated with respect to G's parameters only (no D weight gradients, unlike
    `loss.backward()`, and no graph for the earlier fakes: the same work as gan_jax's step).
    Losses: "non_saturating" and "minimax" (BCE on logits) and "hinge".
    """

    def __init__(self, g: nn.Module, d: nn.Module, latent_shape: tuple[int, ...],
                 batch_size: int, mode: str, precision: str, device: str, *,
                 loss: str = "non_saturating", n_critic: int = 1, lr: float = 2e-4,
                 betas: tuple[float, float] = (0.5, 0.999)):
        if mode not in MODES or precision not in PRECISIONS or loss not in LOSSES:
            raise ValueError(f"mode {mode!r} / precision {precision!r} / loss {loss!r}; choose "
                             f"from {MODES} / {PRECISIONS} / {LOSSES}")
        self.device, self.mode, self.batch_size = device, mode, batch_size
        self.latent_shape, self.loss_name, self.n_critic = latent_shape, loss, n_critic
        self.g, self.d = g.to(device), d.to(device)
        fused = {"fused": True} if device.startswith("cuda") else {}
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr, betas=betas, **fused)
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr, betas=betas, **fused)
        self.g_call, self.d_call = self.g, self.d
        if mode != "eager":
            compile_mode = None if mode == "compile" else mode
            self.g_call = torch.compile(self.g, mode=compile_mode)
            self.d_call = torch.compile(self.d, mode=compile_mode)
        self.autocast = (torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
                         if precision == "bfloat16" else contextlib.nullcontext())
        self.bce = nn.BCEWithLogitsLoss()
        self.ones = torch.ones(batch_size, device=device)
        self.zeros = torch.zeros(batch_size, device=device)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "hinge":
            return (torch.relu(1 - real_logits).mean() + torch.relu(1 + fake_logits).mean())
        return self.bce(real_logits, self.ones) + self.bce(fake_logits, self.zeros)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "hinge":
            return -fake_logits.mean()
        if self.loss_name == "minimax":
            return -self.bce(fake_logits, self.zeros)  # minimise log(1 - D(G(z)))
        return self.bce(fake_logits, self.ones)

    def step(self, real: torch.Tensor) -> None:
        """`real` holds n_critic batches, one per D update."""
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        batches = real.split(self.batch_size)
        for i, batch in enumerate(batches):
            z = torch.randn(self.batch_size, *self.latent_shape, device=self.device)
            last = i == len(batches) - 1  # only the last fakes are needed with G's graph
            with self.autocast, torch.set_grad_enabled(last):
                fake = self.g_call(z)
            with self.autocast:
                d_loss = self.d_loss(self.d_call(batch).float(),
                                     self.d_call(fake.detach()).float())
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_opt.step()
        with self.autocast:
            g_loss = self.g_loss(self.d_call(fake).float())
        # G's gradients only, as gan_jax's step: D's weight gradients are never formed.
        g_params = list(self.g.parameters())
        for param, grad in zip(g_params, torch.autograd.grad(g_loss, g_params), strict=True):
            param.grad = grad
        self.g_opt.step()


class DCGANStep(GANStep):
    """The DCGAN step: BCE non-saturating loss, Adam 2e-4 / (0.5, 0.999)."""

    def __init__(self, resolution: int, channels: int, width: int, latent_dim: int,
                 batch_size: int, mode: str, precision: str, device: str):
        g = generator(resolution, channels, width, latent_dim)
        d = discriminator(resolution, channels, width)
        g.apply(_init_weights)
        d.apply(_init_weights)
        super().__init__(g, d, (latent_dim, 1, 1), batch_size, mode, precision, device)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prepare(make_step: Callable[[str], GANStep], real_shape: tuple[int, ...]
            ) -> tuple[GANStep, torch.Tensor, Callable[[], None], str]:
    """`make_step(device)` on CUDA when there is one (with cuDNN autotuning and TF32, the
    settings PyTorch's GPU figures are quoted with) or the CPU, seeded; a fixed real batch of
    `real_shape` (NCHW, all of a step's D batches); the device's sync; the device."""
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    step = make_step(device)
    real = torch.rand(*real_shape, device=device) * 2 - 1
    return step, real, torch.cuda.synchronize if cuda else (lambda: None), device


def benchmark(make_step: Callable[[str], GANStep], real_shape: tuple[int, ...], steps: int,
              repeats: int, warmup: int) -> dict[str, Any]:
    """Median seconds per step of `make_step(device)` over `repeats` runs of `steps` steps,
    after `warmup` steps (compilation and CUDA-graph recording happen there), on a fixed real
    batch of `real_shape` (NCHW, all of a step's D batches), and the peak memory allocated."""
    step, real, sync, device = prepare(make_step, real_shape)
    cuda = device == "cuda"
    for _ in range(warmup):
        step.step(real)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step.step(real)
        sync()
        times.append((time.perf_counter() - start) / steps)
    return {"seconds_per_step": statistics.median(times),
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "torch": torch.__version__}

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
from typing import Any

import torch
from torch import nn

MODES = ("eager", "compile", "reduce-overhead")
PRECISIONS = ("float32", "bfloat16")


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


class DCGANStep:
    """Networks, optimizers and one train step, set up for a mode and a precision."""

    def __init__(self, resolution: int, channels: int, width: int, latent_dim: int,
                 batch_size: int, mode: str, precision: str, device: str):
        if mode not in MODES or precision not in PRECISIONS:
            raise ValueError(f"mode {mode!r} / precision {precision!r}; choose from "
                             f"{MODES} / {PRECISIONS}")
        self.device, self.mode, self.batch_size, self.latent_dim = (device, mode, batch_size,
                                                                    latent_dim)
        self.g = generator(resolution, channels, width, latent_dim).to(device)
        self.d = discriminator(resolution, channels, width).to(device)
        self.g.apply(_init_weights)
        self.d.apply(_init_weights)
        fused = {"fused": True} if device.startswith("cuda") else {}
        self.g_opt = torch.optim.Adam(self.g.parameters(), 2e-4, betas=(0.5, 0.999), **fused)
        self.d_opt = torch.optim.Adam(self.d.parameters(), 2e-4, betas=(0.5, 0.999), **fused)
        self.g_call, self.d_call = self.g, self.d
        if mode != "eager":
            compile_mode = None if mode == "compile" else mode
            self.g_call = torch.compile(self.g, mode=compile_mode)
            self.d_call = torch.compile(self.d, mode=compile_mode)
        self.autocast = (torch.autocast(device.split(":")[0], dtype=torch.bfloat16)
                         if precision == "bfloat16" else contextlib.nullcontext())
        self.loss = nn.BCEWithLogitsLoss()
        self.ones = torch.ones(batch_size, device=device)
        self.zeros = torch.zeros(batch_size, device=device)

    def step(self, real: torch.Tensor) -> None:
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        z = torch.randn(self.batch_size, self.latent_dim, 1, 1, device=self.device)
        with self.autocast:
            fake = self.g_call(z)
            d_loss = (self.loss(self.d_call(real).float(), self.ones)
                      + self.loss(self.d_call(fake.detach()).float(), self.zeros))
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        with self.autocast:
            g_loss = self.loss(self.d_call(fake).float(), self.ones)
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_opt.step()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def benchmark(resolution: int, channels: int, width: int, latent_dim: int, batch_size: int,
              mode: str, precision: str, steps: int, repeats: int, warmup: int) -> dict[str, Any]:
    """Median seconds per step over `repeats` runs of `steps` steps, after `warmup` steps
    (compilation and CUDA-graph recording happen there), and the peak memory allocated."""
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    step = DCGANStep(resolution, channels, width, latent_dim, batch_size, mode, precision, device)
    real = torch.rand(batch_size, channels, resolution, resolution, device=device) * 2 - 1
    sync = torch.cuda.synchronize if cuda else (lambda: None)
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

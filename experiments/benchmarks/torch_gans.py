"""PyTorch transcriptions of the ResNet (SNGAN) and MLP (Goodfellow et al.) GANs, for the speed
benchmark's baselines and the parity tests.

ResNet (Miyato et al. 2018's CIFAR networks, as gan_jax.models.resnet builds them at 32x32):
G dense to 4x4 x ngf, three up-blocks (BN-ReLU-nearest 2x-conv3-BN-ReLU-conv3, 1x1 shortcut),
BN-ReLU-conv3-tanh; D an optimised first block, a down-block and two plain blocks of ndf
channels (norm-ReLU-conv3 twice, average pooling), ReLU and a sum over space. The step
(`sngan_step`) is gan_jax's `sngan_resnet` recipe: spectral norm on every layer of D and its
head, hinge loss, Adam 2e-4 (0, 0.9), 5 D updates per G update.

MLP (`mlp_networks`): G ReLU hidden layers and a tanh output; D maxout layers (units x pieces)
with dropout, then FC 1; the step is gan_jax's `mlp_gan_fashion_mnist` recipe (minimax loss,
Adam 2e-4 / 0.5, batch 100).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn as tnn
from torch.nn.utils.parametrizations import spectral_norm


class TorchGBlock(tnn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn1, self.bn2 = tnn.BatchNorm2d(cin), tnn.BatchNorm2d(cout)
        self.conv1 = tnn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = tnn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class TorchGenerator32(tnn.Module):
    def __init__(self, nz: int, ngf: int, channels: int = 3):
        super().__init__()
        self.ngf = ngf
        self.dense = tnn.Linear(nz, 4 * 4 * ngf)
        self.blocks = tnn.ModuleList([TorchGBlock(ngf, ngf) for _ in range(3)])
        self.bn_out = tnn.BatchNorm2d(ngf)
        self.conv_out = tnn.Conv2d(ngf, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.dense(z).view(-1, self.ngf, 4, 4)
        for block in self.blocks:
            h = block(h)
        return torch.tanh(self.conv_out(F.relu(self.bn_out(h))))


class SampleLayerNorm(tnn.GroupNorm):
    """WGAN-GP's layer norm: over each sample's (C, H, W), with a per-channel gain and bias."""

    def __init__(self, channels: int, eps: float):
        super().__init__(1, channels, eps=eps)


def _torch_norm(kind: str, c: int) -> tnn.Module:
    return {"none": tnn.Identity, "batch": lambda: tnn.BatchNorm2d(c),
            "layer": lambda: SampleLayerNorm(c, eps=1e-6)}[kind]()


class TorchDBlockFirst(tnn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = tnn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class TorchDBlock(tnn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, norm: str):
        super().__init__()
        self.downsample = downsample
        self.norm1, self.norm2 = _torch_norm(norm, cin), _torch_norm(norm, cin)
        self.conv1 = tnn.Conv2d(cin, cin, 3, 1, 1)
        self.conv2 = tnn.Conv2d(cin, cout, 3, 1, 1)
        self.shortcut = (tnn.Conv2d(cin, cout, 1, 1, 0) if downsample or cin != cout
                         else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        h = self.conv2(F.relu(self.norm2(h)))
        sc = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, sc = F.avg_pool2d(h, 2), F.avg_pool2d(sc, 2)
        return h + sc


class TorchDiscriminatorBody32(tnn.Module):
    def __init__(self, ndf: int, norm: str = "none", channels: int = 3):
        super().__init__()
        self.blocks = tnn.ModuleList([
            TorchDBlockFirst(channels, ndf), TorchDBlock(ndf, ndf, True, norm),
            TorchDBlock(ndf, ndf, False, norm), TorchDBlock(ndf, ndf, False, norm)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return torch.sum(F.relu(x), dim=(2, 3))


class TorchDiscriminator(tnn.Module):
    """A body and gan_jax's shared head: one logit, a linear function of the body's features."""

    def __init__(self, body: tnn.Module, features: int):
        super().__init__()
        self.body, self.logit = body, tnn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.body(x))[:, 0]


def with_spectral_norm(module: tnn.Module) -> tnn.Module:
    """Spectral norm (one power iteration per training call) on every conv and linear layer."""
    for name, child in module.named_children():
        if isinstance(child, (tnn.Conv2d, tnn.Linear)):
            setattr(module, name, spectral_norm(child))
        else:
            with_spectral_norm(child)
    return module


def sngan_networks(ngf: int, ndf: int, latent_dim: int, channels: int = 3
                   ) -> tuple[tnn.Module, tnn.Module]:
    """The 32x32 SNGAN ResNet pair of the `sngan_resnet` recipe, D spectrally normalised."""
    discriminator = TorchDiscriminator(TorchDiscriminatorBody32(ndf, "none", channels), ndf)
    return TorchGenerator32(latent_dim, ngf, channels), with_spectral_norm(discriminator)


class Maxout(tnn.Module):
    def __init__(self, cin: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = tnn.Linear(cin, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gan_jax reshapes (units * pieces) to (units, pieces): piece is the fast axis.
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(-1)


def mlp_networks(resolution: int, channels: int, g_width: int, d_width: int, latent_dim: int,
                 layers: int = 2, pieces: int = 5, dropout: float = 0.5
                 ) -> tuple[tnn.Module, tnn.Module]:
    pixels = resolution * resolution * channels
    g_layers: list[tnn.Module] = []
    for i in range(layers):
        g_layers += [tnn.Linear(latent_dim if i == 0 else g_width, g_width), tnn.ReLU()]
    g_layers += [tnn.Linear(g_width, pixels), tnn.Tanh(),
                 tnn.Unflatten(1, (channels, resolution, resolution))]
    d_layers: list[tnn.Module] = [tnn.Flatten()]
    for i in range(layers):
        d_layers += [Maxout(pixels if i == 0 else d_width, d_width, pieces),
                     tnn.Dropout(dropout)]
    return (tnn.Sequential(*g_layers),
            TorchDiscriminator(tnn.Sequential(*d_layers), d_width))

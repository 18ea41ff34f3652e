"""A PyTorch transcription of BigGAN's G and D (Brock et al. 2019), for the parity tests.

Written from BigGAN-PyTorch's description of its networks (BigGAN.py's G_arch / D_arch tables,
layers.py's GBlock, DBlock, ccbn, bn and Attention), NCHW, without spectral norm (its own tests
cover it): the same wiring gan_jax.models.biggan builds, in the other framework, so that a
mis-wired block, a misplaced ReLU, a shortcut that pools on the wrong side of its 1x1, a z chunk
sent to the wrong block or a channels-last reshape fails the comparison.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn as tnn

G_MULTIPLIERS = {32: (4, 4, 4, 4), 64: (16, 16, 8, 4, 2), 128: (16, 16, 8, 4, 2, 1)}
D_MULTIPLIERS = {32: ((4, True), (4, True), (4, False), (4, False)),
                 64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
                 128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False))}


class ConditionalBatchNorm(tnn.Module):
    """ccbn: BN without affine, then (1 + gain(c)) and bias(c); a plain affine BN for c None."""

    def __init__(self, features: int, condition: int):
        super().__init__()
        self.bn = tnn.BatchNorm2d(features, eps=1e-5, momentum=0.1, affine=not condition)
        if condition:
            self.gain = tnn.Linear(condition, features, bias=False)
            self.bias = tnn.Linear(condition, features, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        out = self.bn(x)
        if c is None:
            return out
        return out * (1 + self.gain(c))[:, :, None, None] + self.bias(c)[:, :, None, None]


class Attention(tnn.Module):
    def __init__(self, ch: int):
        super().__init__()
        conv = lambda cin, cout: tnn.Conv2d(cin, cout, 1, bias=False)  # noqa: E731
        self.theta, self.phi = conv(ch, ch // 8), conv(ch, ch // 8)
        self.g, self.o = conv(ch, ch // 2), conv(ch // 2, ch)
        self.gamma = tnn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        theta = self.theta(x).view(n, ch // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(n, ch // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(n, ch // 2, h * w // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
        return self.gamma * self.o(torch.bmm(g, beta.transpose(1, 2)).view(n, ch // 2, h, w)) + x


class GBlock(tnn.Module):
    def __init__(self, cin: int, cout: int, condition: int):
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(cin, condition), ConditionalBatchNorm(cout,
                                                                                      condition)
        self.conv1, self.conv2 = tnn.Conv2d(cin, cout, 3, padding=1), tnn.Conv2d(cout, cout, 3,
                                                                                 padding=1)
        self.shortcut = tnn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2)
        x = F.interpolate(x, scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.shortcut(x)


class DBlock(tnn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.conv1, self.conv2 = tnn.Conv2d(cin, cout, 3, padding=1), tnn.Conv2d(cout, cout, 3,
                                                                                 padding=1)
        self.shortcut = tnn.Conv2d(cin, cout, 1) if downsample or cin != cout else None
        self.downsample, self.preactivation = downsample, preactivation

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x) if self.preactivation else x)
        h = self._pool(self.conv2(F.relu(h)))
        if self.shortcut is None:
            return h + x
        if self.preactivation:
            return h + self._pool(self.shortcut(x))
        return h + self.shortcut(self._pool(x))


class Generator(tnn.Module):
    def __init__(self, resolution: int, ch: int, latent_dim: int, channels: int = 3,
                 num_classes: int = 0, shared_dim: int = 128, hierarchical: bool = True,
                 attention: int = 0):
        super().__init__()
        widths = [ch * m for m in G_MULTIPLIERS[resolution]]
        blocks = len(widths) - 1
        self.chunk = latent_dim // (blocks + 1) if hierarchical else 0
        self.shared = tnn.Embedding(num_classes, shared_dim) if num_classes else None
        condition = (shared_dim if num_classes else 0) + self.chunk
        self.linear = tnn.Linear(self.chunk or latent_dim, widths[0] * 16)
        self.blocks = tnn.ModuleList(GBlock(a, b, condition) for a, b in zip(widths, widths[1:]))
        sides = [8 * 2 ** i for i in range(blocks)]
        self.attention_after = sides.index(attention) if attention else -1
        self.attention = Attention(widths[sides.index(attention) + 1]) if attention else None
        self.output_bn = ConditionalBatchNorm(widths[-1], 0)
        self.output = tnn.Conv2d(widths[-1], channels, 3, padding=1)
        self.widths = widths

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.shared(labels) if self.shared is not None else None
        if self.chunk:
            first, *chunks = torch.split(z, self.chunk, 1)
        else:
            first, chunks = z, [None] * len(self.blocks)
        h = self.linear(first).view(z.shape[0], -1, 4, 4)
        for index, (block, chunk) in enumerate(zip(self.blocks, chunks)):
            parts = [p for p in (embedding, chunk) if p is not None]
            h = block(h, torch.cat(parts, 1) if parts else None)
            if index == self.attention_after:
                h = self.attention(h)
        return torch.tanh(self.output(F.relu(self.output_bn(h, None))))


class Discriminator(tnn.Module):
    def __init__(self, resolution: int, ch: int, channels: int = 3, num_classes: int = 0,
                 attention: int = 0):
        super().__init__()
        plan = [(ch * m, down) for m, down in D_MULTIPLIERS[resolution]]
        blocks, cin, side, sides = [], channels, resolution, []
        for index, (cout, down) in enumerate(plan):
            blocks.append(DBlock(cin, cout, down, preactivation=index > 0))
            side //= 2 if down else 1
            cin = cout
            sides.append(side)
        self.blocks = tnn.ModuleList(blocks)
        self.attention_after = sides.index(attention) if attention else -1
        self.attention = Attention(plan[self.attention_after][0]) if attention else None
        self.linear = tnn.Linear(cin, 1)
        self.embed = tnn.Embedding(num_classes, cin) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index == self.attention_after:
                h = self.attention(h)
        h = torch.sum(F.relu(h), [2, 3])
        out = self.linear(h)[:, 0]
        if self.embed is not None:
            out = out + torch.sum(self.embed(labels) * h, 1)
        return out

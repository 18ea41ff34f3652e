"""The FID InceptionV3 (TF "inception-2015-12-05", pool3 features) as a Flax module.

This is the network FID is defined with, not torchvision's InceptionV3: BatchNorm without scale
(eps 1e-3), average pools that exclude padding, and in the last block a *max* pool where the
paper's network averages (a quirk of the 2015 graph that pytorch-fid also reproduces). Module and
parameter names follow the TorchScript file the weights come from, so `params_from_weights` is a
rename plus a transpose. BatchNorm is folded into each convolution's kernel and bias in float64.

Input: NHWC float at 299x299 in the network's range (see `resize.to_inception_input`).
Output: (N, 2048) float32 features.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.models.convolution import Conv as Conv2d
from gan_jax.models.convolution import default_implementation

BN_EPS = 1e-3  # TF's BatchNorm epsilon in the 2015 graph.
INPUT_SIZE = 299
FEATURE_DIM = 2048


class Conv(NamedTuple):
    """One conv + folded BN + ReLU: output channels, kernel (h, w), stride, padding (h, w)."""
    features: int
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int] = (0, 0)


def _same(kh: int, kw: int) -> tuple[int, int]:
    return (kh // 2, kw // 2)


CONV_FORMS = ("auto", "matmul", "xla")
THIN_FEATURES = 32  # at most this many output channels: a thin layer (see conv_implementation)


def conv_implementation(spec: Conv, forms: str, backend: str | None = None) -> str:
    """How one layer is computed: `forms` itself unless "auto". Auto is lax's convolution
    (cuDNN) off the CPU. On the CPU, where only the forward pass runs, lax's direct convolution
    is the faster form of a stride-1 spatial kernel (3x3, 5x5, 1x7, 7x1: im2col would copy the
    input once per tap) and patches times a matrix the faster one of the 1x1 and strided layers
    (the benchmark's per-layer table in the CPU speed results). A stride-1 3x3 layer as thin
    as 32 channels (the stem's 149x149x32 -> 32) runs on 2x2 pixel blocks instead
    (`conv_space_to_depth`: 4x the channels for XLA's kernels; the whole network 5.9 -> 6.8
    img/s on a 2-core AVX-512 CPU)."""
    if forms != "auto":
        return forms
    if default_implementation(backend) == "xla":  # off the CPU
        return "xla"
    if spec.kernel == (3, 3) and spec.stride == 1 and spec.features <= THIN_FEATURES:
        return "space_to_depth"
    return "xla" if spec.kernel != (1, 1) and spec.stride == 1 else "matmul"


class ConvBNReLU(nn.Module):
    spec: Conv
    dtype: Any = jnp.float32
    precision: Any = jax.lax.Precision.HIGHEST
    conv_forms: str = "auto"

    @nn.compact
    def __call__(self, x):
        (ph, pw), s = self.spec.padding, self.spec.stride
        y = Conv2d(self.spec.features, self.spec.kernel, strides=(s, s),
                   padding=((ph, ph), (pw, pw)), dtype=self.dtype, param_dtype=jnp.float32,
                   precision=self.precision,
                   implementation=conv_implementation(self.spec, self.conv_forms), name="conv")(x)
        return nn.relu(y)


def _avg_pool_3x3(x):
    # TF's SAME average pool divides by the number of real (unpadded) pixels.
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                       count_include_pad=False)


def _max_pool_3x3(x, stride: int, padding: int = 0):
    pad = ((padding, padding), (padding, padding))
    return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=pad)


class Tower(nn.Module):
    """A chain of convs named conv, conv_1, ... (as torch.nn.Sequential names them)."""
    convs: tuple[Conv, ...]
    pool_first: bool = False
    dtype: Any = jnp.float32
    precision: Any = jax.lax.Precision.HIGHEST
    conv_forms: str = "auto"

    @nn.compact
    def __call__(self, x):
        if self.pool_first:
            x = _avg_pool_3x3(x)
        for i, spec in enumerate(self.convs):
            name = "conv" if i == 0 else f"conv_{i}"
            x = ConvBNReLU(spec, self.dtype, self.precision, self.conv_forms, name=name)(x)
        return x


class _Block(nn.Module):
    dtype: Any = jnp.float32
    precision: Any = jax.lax.Precision.HIGHEST
    conv_forms: str = "auto"  # CONV_FORMS: how the convolutions are computed

    def conv(self, spec: Conv, name: str):
        return ConvBNReLU(spec, self.dtype, self.precision, self.conv_forms, name=name)

    def tower(self, *convs: Conv, name: str, pool_first: bool = False):
        return Tower(convs, pool_first, self.dtype, self.precision, self.conv_forms, name=name)


class InceptionA(_Block):
    pool_features: int = 32

    @nn.compact
    def __call__(self, x):
        return jnp.concatenate([
            self.conv(Conv(64), "conv")(x),
            self.tower(Conv(48), Conv(64, (5, 5), padding=(2, 2)), name="tower")(x),
            self.tower(Conv(64), Conv(96, (3, 3), padding=(1, 1)), Conv(96, (3, 3), padding=(1, 1)),
                       name="tower_1")(x),
            self.tower(Conv(self.pool_features), name="tower_2", pool_first=True)(x),
        ], axis=-1)


class InceptionB(_Block):
    @nn.compact
    def __call__(self, x):
        return jnp.concatenate([
            self.conv(Conv(384, (3, 3), stride=2), "conv")(x),
            self.tower(Conv(64), Conv(96, (3, 3), padding=(1, 1)), Conv(96, (3, 3), stride=2),
                       name="tower")(x),
            _max_pool_3x3(x, stride=2),
        ], axis=-1)


class InceptionC(_Block):
    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x):
        c = self.channels_7x7
        row, col = (1, 7), (7, 1)
        rows = lambda n: Conv(n, row, padding=_same(*row))  # noqa: E731
        cols = lambda n: Conv(n, col, padding=_same(*col))  # noqa: E731
        return jnp.concatenate([
            self.conv(Conv(192), "conv")(x),
            self.tower(Conv(c), rows(c), cols(192), name="tower")(x),
            self.tower(Conv(c), cols(c), rows(c), cols(c), rows(192), name="tower_1")(x),
            self.tower(Conv(192), name="tower_2", pool_first=True)(x),
        ], axis=-1)


class InceptionD(_Block):
    @nn.compact
    def __call__(self, x):
        row, col = (1, 7), (7, 1)
        return jnp.concatenate([
            self.tower(Conv(192), Conv(320, (3, 3), stride=2), name="tower")(x),
            self.tower(Conv(192), Conv(192, row, padding=_same(*row)),
                       Conv(192, col, padding=_same(*col)), Conv(192, (3, 3), stride=2),
                       name="tower_1")(x),
            _max_pool_3x3(x, stride=2),
        ], axis=-1)


class InceptionE(_Block):
    max_pool: bool = False  # The last block of the 2015 graph max-pools its pool branch.

    @nn.compact
    def __call__(self, x):
        row, col = (1, 3), (3, 1)
        a = self.conv(Conv(384), "tower_conv")(x)
        b = self.conv(Conv(448), "tower_1_conv")(x)
        b = self.conv(Conv(384, (3, 3), padding=(1, 1)), "tower_1_conv_1")(b)
        pooled = _max_pool_3x3(x, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        return jnp.concatenate([
            self.conv(Conv(320), "conv")(x),
            self.conv(Conv(384, row, padding=_same(*row)), "tower_mixed_conv")(a),
            self.conv(Conv(384, col, padding=_same(*col)), "tower_mixed_conv_1")(a),
            self.conv(Conv(384, row, padding=_same(*row)), "tower_1_mixed_conv")(b),
            self.conv(Conv(384, col, padding=_same(*col)), "tower_1_mixed_conv_1")(b),
            self.conv(Conv(192), "tower_2_conv")(pooled),
        ], axis=-1)


class InceptionV3(_Block):
    """FID Inception: (N, 299, 299, 3) in [-1, 1] -> (N, 2048) pool3 features."""

    @nn.compact
    def __call__(self, x):
        if x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"FID Inception expects (N, 299, 299, 3) input, got {x.shape}")
        x = x.astype(self.dtype)
        x = self.conv(Conv(32, (3, 3), stride=2), "conv")(x)
        x = self.conv(Conv(32, (3, 3)), "conv_1")(x)
        x = self.conv(Conv(64, (3, 3), padding=(1, 1)), "conv_2")(x)
        x = _max_pool_3x3(x, stride=2)
        x = self.conv(Conv(80), "conv_3")(x)
        x = self.conv(Conv(192, (3, 3)), "conv_4")(x)
        x = _max_pool_3x3(x, stride=2)
        blocks = dict(dtype=self.dtype, precision=self.precision, conv_forms=self.conv_forms)
        for i, pool_features in enumerate((32, 64, 64)):
            x = InceptionA(pool_features=pool_features, name=_mixed(i), **blocks)(x)
        x = InceptionB(name="mixed_3", **blocks)(x)
        for i, channels in enumerate((128, 160, 160, 192)):
            x = InceptionC(channels_7x7=channels, name=_mixed(4 + i), **blocks)(x)
        x = InceptionD(name="mixed_8", **blocks)(x)
        x = InceptionE(max_pool=False, name="mixed_9", **blocks)(x)
        x = InceptionE(max_pool=True, name="mixed_10", **blocks)(x)
        # pool3: the 8x8 average pool over the whole final map, in float32.
        return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def _mixed(i: int) -> str:
    return "mixed" if i == 0 else f"mixed_{i}"


def params_from_weights(weights: dict[str, np.ndarray]) -> dict:
    """Flax params from the TorchScript tensors, BatchNorm folded into kernel and bias.

    conv(x) then (. - mean) / sqrt(var + eps) + beta equals conv with kernel * s and bias
    beta - mean * s, s = 1 / sqrt(var + eps); folding in float64 keeps it exact to float32.
    """
    params: dict = {}
    for prefix in sorted({name.rsplit(".", 1)[0] for name in weights}):
        get = lambda field: np.asarray(weights[f"{prefix}.{field}"], np.float64)  # noqa: E731
        scale = 1.0 / np.sqrt(get("var") + BN_EPS)
        kernel = get("weight").transpose(2, 3, 1, 0) * scale  # OIHW -> HWIO
        node = params
        for part in prefix.split("."):
            node = node.setdefault(part, {})
        node["conv"] = {"kernel": kernel.astype(np.float32),
                        "bias": (get("beta") - get("mean") * scale).astype(np.float32)}
    return {"params": params}

"""Experiment configuration: typed, frozen dataclasses with dotted-key overrides.

A config is a `Config` of seven sections (model, data, optim, train, reg, augment, eval); the
settings only one architecture reads sit in a section of their own inside model (model.mlp,
model.biggan, model.progan). Experiment files in `experiments/configs/` build one with
`get_config(variant)`; the CLI applies `section.key=value` overrides on top. Every override is
checked against the field's declared type, and an unknown key is named in the error, so a typo
can never silently train the wrong model.

Schedules are measured in thousands of real images shown to the discriminator (kimg), as in
StyleGAN2-ADA, so changing the batch size does not change how long a run is.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

from gan_jax.errors import UserError
from gan_jax.files import write_text_atomically

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# The choices of the string settings: an override or a config built in Python with another
# value is refused by name. Each equals its component's registry (tested): the losses of
# gan_jax.losses, the penalties of gan_jax.penalties, the architectures of gan_jax.models...
Arch = Literal["biggan", "dcgan", "infogan", "mlp", "progan", "resnet"]
BigGANInit = Literal["ortho", "n02", "glorot"]
DNorm = Literal["default", "batch", "layer", "none"]
SpectralNorm = Literal["none", "d", "g_and_d"]
Conditioning = Literal["none", "projection", "acgan"]
ComputeDtype = Literal["float32", "bfloat16"]
ConvImplementation = Literal["auto", "matmul", "taps", "xla"]
GLatents = Literal["shared", "fresh"]
DataSource = Literal["local", "tfds", "folder"]
Fit = Literal["resize", "pad", "center_crop"]
Placement = Literal["auto", "device", "host"]
Optimizer = Literal["adam", "rmsprop"]
LrDecay = Literal["constant", "linear"]
Loss = Literal["minimax", "non_saturating", "least_squares", "hinge", "wasserstein",
               "relativistic_pairing"]
Penalty = Literal["none", "wgan_gp", "dragan", "r1", "r2", "r1_r2"]
Resize = Literal["clean", "tf_legacy", "pytorch"]
WeightStorage = Literal["float32", "float16"]
InceptionCompute = Literal["float32", "tf32", "bfloat16"]
SampledWeights = Literal["ema", "trained"]


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The values a numeric field accepts: low and high, each inclusive unless open."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float) -> bool:
        return ((self.low is None or (value > self.low if self.low_open else value >= self.low))
                and (self.high is None
                     or (value < self.high if self.high_open else value <= self.high)))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return (f"in {'(' if self.low_open else '['}{self.low}, "
                f"{self.high}{')' if self.high_open else ']'}")


def _bounded(default: Any, bounds: Bounds) -> Any:
    return dataclasses.field(default=default, metadata={"bounds": bounds})


def at_least(default: Any, low: float) -> Any:
    """A field >= low (counts: at_least(64, 1); None stays allowed where the type has it)."""
    return _bounded(default, Bounds(low))


def positive(default: Any) -> Any:
    """A field > 0 (rates, intervals in kimg)."""
    return _bounded(default, Bounds(0, low_open=True))


def fraction(default: Any, *, low_open: bool = False, high_open: bool = False) -> Any:
    """A field in [0, 1], either end open."""
    return _bounded(default, Bounds(0, 1, low_open, high_open))


def check_bounds(key: str, field: dataclasses.Field, value: Any) -> None:
    """A numeric setting outside its field's declared bounds is a UserError naming both."""
    bounds = field.metadata.get("bounds")
    if bounds is not None and value is not None and not bounds.admits(value):
        default = (" or None" if field.default is None
                   else f" (its default is {field.default})")
        raise UserError(f"{key}={value} must be {bounds}{default}")


def choices_of(field_type: Any) -> tuple[str, ...] | None:
    """The values a Literal-typed field (or an optional one) admits; None for other types."""
    for candidate in (field_type, *typing.get_args(field_type)):
        if typing.get_origin(candidate) is Literal:
            return typing.get_args(candidate)
    return None


def check_choice(key: str, field_type: Any, value: Any) -> None:
    """A choice setting outside its field's Literal is a UserError naming the choices."""
    choices = choices_of(field_type)
    if choices is not None and value is not None:
        check_key_choice(key, value, choices)


def leaf_settings(name: str, section: Any):
    """(dotted key, field, declared type, value) of every setting of `section` (e.g. "model",
    a ModelConfig), an architecture's nested section (model.mlp.layers) included."""
    hints = typing.get_type_hints(type(section))
    for field in dataclasses.fields(section):
        key, value = f"{name}.{field.name}", getattr(section, field.name)
        if dataclasses.is_dataclass(value):
            yield from leaf_settings(key, value)
        else:
            yield key, field, hints[field.name], value


def check_section_bounds(name: str, section: Any) -> None:
    """Every setting of one section (e.g. "eval", an EvalConfig) within its bounds and, for a
    choice, among its choices."""
    for key, field, field_type, value in leaf_settings(name, section):
        check_choice(key, field_type, value)
        check_bounds(key, field, value)


def check_all_bounds(config: "Config") -> None:
    """Every field of every section within its bounds (configs built in Python, not only
    overrides, go through this: build_gan calls it)."""
    for section_field in dataclasses.fields(config):
        check_section_bounds(section_field.name, getattr(config, section_field.name))


@dataclasses.dataclass(frozen=True)
class MLPSettings:
    """model.mlp: the MLP GAN's own settings (Goodfellow et al. 2014: maxout D with dropout)."""
    layers: int = at_least(2, 1)  # hidden layers of the generator and of the discriminator
    maxout_pieces: int = at_least(5, 1)  # linear pieces per maxout unit of D
    d_dropout: float = fraction(0.5, high_open=True)  # dropout rate on D's hidden layers


@dataclasses.dataclass(frozen=True)
class BigGANSettings:
    """model.biggan: BigGAN's own settings (Brock et al. 2019; BigGAN-PyTorch's flags)."""
    # channels of G's shared class embedding (--shared_dim); 0: model.latent_dim
    shared_dim: int = at_least(128, 0)
    # a chunk of z to every G block, beside the class embedding (--hier); else all of z
    # to the first layer and the embedding alone to every block
    hierarchical: bool = True
    # weights of every convolution, linear layer and embedding (--G_init / --D_init):
    # "ortho" (the paper's), "n02" (N(0, 0.02)) or "glorot" (Xavier uniform)
    init: BigGANInit = "ortho"


@dataclasses.dataclass(frozen=True)
class ProGANSettings:
    """model.progan: progressive growing (Karras et al. 2018; the defaults are its official
    code's, tkarras/progressive_growing_of_gans)."""
    start_resolution: int = at_least(4, 4)  # the side of the first stage (a power of 2)
    # real images shown at each resolution before the next one fades in (lod_training_kimg;
    # the paper's runs: 800)
    stable_kimg: float = at_least(600.0, 0)
    # real images over which each new resolution fades in, alpha 0 -> 1 (lod_transition_kimg;
    # the paper's runs: 800)
    fade_kimg: float = at_least(600.0, 0)
    # channels of the maps of side 2^r: min(fmap_base / 2^(r - 1), fmap_max)
    fmap_base: int = at_least(8192, 1)
    fmap_max: int = at_least(512, 1)
    # a fresh optimizer state (moments and step count) for G and D at every stage boundary,
    # the official code's reset_opt_for_new_lod
    reset_optimizer: bool = True
    # D's batch per resolution, "side:batch" pairs (the official minibatch_dict, e.g. its later
    # preset "4:128,8:128,16:128,32:64,64:32,128:16"); sides not listed: train.batch_size
    batch_sizes: str = ""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    # "dcgan", "infogan" (Lucic et al.'s), "resnet", "biggan", "progan" or "mlp"
    # (gan_jax.models.ARCHITECTURES)
    arch: Arch = "dcgan"
    # output side length; DCGAN needs 4*2^k or 7*2^k, ResNet 32 or 64, BigGAN 32, 64 or 128,
    # ProGAN a power of 2
    resolution: int = at_least(28, 1)
    channels: int = at_least(1, 1)  # must match the dataset's channels
    latent_dim: int = at_least(100, 1)
    # The base width of each network; each architecture's module docstring says which layers
    # it scales. G: DCGAN ngf (channels of the last block); InfoGAN w (FC 16w, 2w maps, w;
    # 64 as published); ResNet 32 every block (SNGAN: 256), ResNet 64 the last (Mimicry: 64);
    # BigGAN ch (--G_ch: 4ch at 32x32, 16ch ... ch at 128x128); MLP hidden units.
    g_width: int = at_least(64, 1)
    # D: DCGAN ndf (channels of the first block); InfoGAN w (w, 2w maps, FC 16w); ResNet 32
    # every block (SNGAN: 128), ResNet 64 the first; BigGAN ch (--D_ch); MLP maxout units.
    d_width: int = at_least(64, 1)
    # running-average decay of BatchNorm statistics (PyTorch's 0.1)
    bn_momentum: float = fraction(0.9)
    # D normalisation: batch, layer, none; default: batch for DCGAN and InfoGAN, else none
    d_norm: DNorm = "default"
    spectral_norm: SpectralNorm = "none"  # "none", "d" (SNGAN) or "g_and_d" (SAGAN, BigGAN)
    conditioning: Conditioning = "none"  # "none", "projection" (cGAN, Miyato & Koyama) or "acgan"
    # classes of a conditional model (must match the dataset's labels)
    num_classes: int = at_least(10, 1)
    minibatch_std: int = at_least(0, 0)  # ProGAN minibatch-stddev group size in D; 0 = off
    minibatch_discrimination: int = at_least(0, 0)  # Salimans et al. kernels in D's head; 0 = off
    # SAGAN self-attention (Zhang et al. 2019) on G's and D's hidden maps of this side, DCGAN
    # and ResNet (BigGAN: 64 at 128x128); 0 = off
    attention_resolution: int = at_least(0, 0)
    # "bfloat16": bf16 arithmetic, float32 parameters and Adam
    compute_dtype: ComputeDtype = "float32"
    # (Transposed) convolutions: "matmul" (patch x matrix, fast gradients on the CPU), "taps"
    # (lax forward, gradients as forward convolutions and per-tap products), "xla" (lax,
    # cuDNN); "auto": the architecture's choice for the platform. Same values to float
    # rounding, same parameters.
    conv_implementation: ConvImplementation = "auto"
    # Settings only one architecture reads, in a section of its own (model.mlp.layers=3)
    mlp: MLPSettings = MLPSettings()
    biggan: BigGANSettings = BigGANSettings()
    progan: ProGANSettings = ProGANSettings()


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion_mnist"  # a tensorflow-datasets name, or fashion_mnist/mnist locally
    source: DataSource = "local"  # "local": idx files in `dir`; "tfds": tensorflow-datasets;
    #                        "folder": image files in `dir` (classes from subfolders, if any)
    dir: str = FASHION_MNIST_DIR  # folder of the four idx .gz files, or of the image files
    split: str = "train"
    tfds_data_dir: str | None = None  # tensorflow-datasets' data_dir (None: its default)
    # to reach model.resolution: "resize" (bilinear), "pad" (zeros) or "center_crop" (the
    # largest centred square, resized: CelebA)
    fit: Fit = "resize"
    # "top,left,side": a square cut from every image before it is fitted (ProGAN's CelebA
    # crop: "57,25,128", the 128x128 square centred on (121, 89)); None: the whole image
    crop: str | None = None
    # real images flipped left-right at random, each time D sees one (ProGAN's mirror_augment)
    mirror: bool = False
    # train on a balanced subset: this many images of each class
    per_class: int | None = at_least(None, 1)
    subset_seed: int = at_least(0, 0)  # which images that subset holds (a seeded draw per class)
    placement: Placement = "auto"  # "device": the dataset in each device's memory, batches gathered
    #                          there; "host": prefetched from host memory; "auto": device up to
    #                          1 GiB of images (the batches are the same either way)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    optimizer: Optimizer = "adam"  # "adam" or "rmsprop" (WGAN), both from optax
    # separate rates for G and D: TTUR (Heusel et al. 2017) when they differ
    g_lr: float = positive(2e-4)
    d_lr: float = positive(2e-4)
    b1: float = fraction(0.5, high_open=True)  # Adam's betas; RMSprop uses b2 as its decay
    b2: float = fraction(0.999, high_open=True)
    # added to the denominator of Adam's and RMSprop's step (optax's and PyTorch's 1e-8;
    # BigGAN-PyTorch's ImageNet runs: 1e-6)
    eps: float = positive(1e-8)
    lr_decay: LrDecay = "constant"  # "constant" or "linear" (to zero at decay_kimg; WGAN-GP, SNGAN)
    # where a linear decay reaches zero; None: train.total_kimg
    decay_kimg: float | None = positive(None)
    # generator EMA half-life in kimg (StyleGAN2: 10); None: off
    ema_kimg: float | None = positive(None)
    # half-life at most rampup * kimg so far (StyleGAN2: 0.05)
    ema_rampup: float | None = positive(None)
    # the EMA copies G until this many kimg (BigGAN-PyTorch's --ema_start: 1000 steps)
    ema_start_kimg: float = at_least(0.0, 0)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # minimax, non_saturating, least_squares, hinge, wasserstein, relativistic_pairing (RpGAN)
    loss: Loss = "non_saturating"
    # discriminator updates per generator update, each on its own real batch
    n_critic: int = at_least(1, 1)
    # G's update: "shared" pulls back through the last D update's fakes (PyTorch's detach
    # idiom: one G forward pass per D update); "fresh" draws its own latents and classes, as
    # BigGAN-PyTorch, StudioGAN, StyleGAN2-ADA and the official ProGAN do (one more G forward)
    g_latents: GLatents = "shared"
    batch_size: int = at_least(64, 1)  # global batch, split over all devices
    # real images shown to D, in thousands (1200 = 20 epochs of 60k)
    total_kimg: float = positive(1200.0)
    seed: int = at_least(0, 0)
    log_every_kimg: float = positive(6.4)
    sample_every_kimg: float = positive(60.0)
    checkpoint_every_kimg: float = positive(60.0)
    keep_checkpoints: int = at_least(3, 1)
    grid_size: int = at_least(64, 1)  # images in each saved sample grid (a fixed latent batch)
    # on non-finite values: restore the last checkpoint and go on with both learning rates x
    # rollback_lr_factor, at most this many times
    rollback_tries: int = at_least(0, 0)
    rollback_lr_factor: float = fraction(0.5, low_open=True)


@dataclasses.dataclass(frozen=True)
class RegConfig:
    """Regularisers and the "Improved Techniques" tricks; every one composes with every loss."""
    # none, wgan_gp, dragan, r1 (real), r2 (fake), r1_r2 (both, R3GAN): gan_jax.penalties
    penalty: Penalty = "none"
    # lambda of WGAN-GP/DRAGAN; R1/R2 add weight/2 * E||grad||^2
    penalty_weight: float = at_least(10.0, 0)
    # k > 1: lazy regularisation every k D updates (StyleGAN2); its logged value is 0 on steps
    # without it
    penalty_every: int = at_least(1, 1)
    # WGAN weight clipping of every D parameter to [-clip, clip]
    clip: float | None = positive(None)
    # one-sided: real targets 1 - s (BCE losses only)
    label_smoothing: float = fraction(0.0, high_open=True)
    # weight of ||E f(real) - E f(fake)||^2 added to G's adversarial loss (Salimans et al.
    # replace it instead)
    feature_matching: float = at_least(0.0, 0)
    # weight of ||theta - mean of past theta||^2, G and D
    historical_averaging: float = at_least(0.0, 0)
    class_weight: float = at_least(1.0, 0)  # ACGAN: weight of the auxiliary classification losses
    # LeCam regularisation of D (Tseng et al. 2021; their BigGAN CIFAR runs: 0.1-0.3); 0 = off
    lecam_weight: float = at_least(0.0, 0)
    lecam_decay: float = fraction(0.99, high_open=True)  # of LeCam's anchors (moving averages)
    # Balanced consistency regularisation of D (bCR, Zhao et al. 2021: 10 and 10); 0 = off.
    # With the real side alone it is CR-GAN's (Zhang et al. 2020).
    consistency_real: float = at_least(0.0, 0)
    consistency_fake: float = at_least(0.0, 0)
    # ProGAN's drift term, weight * E D(real)^2, which keeps a Wasserstein critic's outputs
    # near zero (Karras et al. 2018: epsilon_drift 0.001); 0 = off
    drift: float = at_least(0.0, 0)
    # BigGAN's orthogonal regularisation of G's weights (Brock et al. 2019: 1e-4); 0 = off
    g_orthogonal: float = at_least(0.0, 0)
    # Top-k training of G (Sinha et al. 2020): G's loss on the k fakes D scores highest, k
    # from the batch down to this fraction of it (the paper: 0.5-0.75); None = off
    top_k_min: float | None = fraction(None, low_open=True)
    top_k_decay: float = fraction(0.99, low_open=True)  # k's factor per epoch (the paper: 0.99)
    top_k_epoch_kimg: float = positive(60.0)  # images per epoch, in kimg (Fashion-MNIST: 60)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """DiffAugment on every image D sees (real and fake), optionally ADA-adaptive."""
    policy: str = ""  # comma-separated: color, translation, cutout; "" = off
    # probability each op is applied to a sample (the start value when adaptive)
    p: float = fraction(1.0)
    # adapt p so E[sign D(real)] stays here (ADA: 0.6); None: fixed
    ada_target: float | None = fraction(None)
    ada_kimg: float = positive(100.0)  # images (in kimg) for p to move by 1 (ADA's speed)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Metrics computed during training (gan_jax.metrics; never changes the training itself)."""
    metrics: str = ""  # comma-separated names, e.g. "fid10k,kid10k,prdc10k"; "" = none
    every_kimg: float | None = positive(None)  # also every this many kimg; None: only at the end
    reference: str | None = None  # real images "dataset:split"; None: data.dataset's test split
    # gan_jax.metrics.resize.RESIZE_MODES; FIDs compare only at equal resize
    resize: Resize = "clean"
    # images per Inception batch (and per generator batch); None: 32 on the CPU (the fastest
    # there), 200 on accelerators (gan_jax.metrics.features.default_batch_size)
    batch_size: int | None = at_least(None, 1)
    weights: str | None = None  # Inception weights file; None: the user cache (filled via pip)
    storage: WeightStorage = "float32"  # weights storage: float32 or float16
    compute: InceptionCompute = "float32"  # Inception arithmetic: float32, tf32 or bfloat16
    # latents of the evaluated images (the same every evaluation) and subsets
    seed: int = at_least(0, 0)
    # The truncation trick (Brock et al. 2019): evaluated and sampled latents drawn from the
    # normal truncated to [-t, t] (resampled beyond it); None: the full normal. Training
    # never truncates.
    truncation: float | None = positive(None)
    # BigGAN's standing statistics: G's BatchNorm statistics for evaluation and sample grids
    # recomputed as the mean over this many train.batch_size batches, for the weights sampled
    # (the EMA when there is one; BigGAN-PyTorch: 16); 0: the training's running averages
    standing_stats: int = at_least(0, 0)
    # G's weights for evaluation and sample grids: "ema", the EMA when the run keeps one
    # (optim.ema_kimg), else the trained weights; "trained", the trained weights always.
    # The EMA never feeds back into training, so one run evaluated both ways measures what
    # the EMA contributes (with standing_stats=0, as a run without the EMA is evaluated).
    generator: SampledWeights = "ema"


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    reg: RegConfig = RegConfig()
    augment: AugmentConfig = AugmentConfig()
    eval: EvalConfig = EvalConfig()


# --- overrides -----------------------------------------------------------------------------


def with_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """Returns `config` with dotted keys replaced, e.g. {"train.batch_size": 128} or, in an
    architecture's own section, {"model.mlp.layers": 3}.

    String values are parsed as Python literals when the field is not a string, so the same
    function serves config files (typed values) and the command line ("128").
    """
    for dotted, value in overrides.items():
        names = dotted.split(".")
        if len(names) < 2 or not dataclasses.is_dataclass(_field_value(config, names[0],
                                                                        dotted)):
            raise UserError(f"config key '{dotted}' is not of the form section.key; "
                            f"sections are {', '.join(_field_names(config))}")
        config = _with_setting(config, names, value, dotted)
    return config


def _with_setting(section: Any, names: list[str], value: Any, dotted: str) -> Any:
    """`section` with the setting at the path `names` (inside it) checked and replaced."""
    name, rest = names[0], names[1:]
    current = _field_value(section, name, dotted)
    if rest:
        if not dataclasses.is_dataclass(current):
            raise UserError(f"config key '{dotted}': '{name}' is a setting, not a section")
        return dataclasses.replace(section, **{name: _with_setting(current, rest, value,
                                                                   dotted)})
    if dataclasses.is_dataclass(current):
        raise UserError(f"config key '{dotted}' is a section; set one of its keys: "
                        f"{', '.join(f'{dotted}.{key}' for key in _field_names(current))}")
    field_type = typing.get_type_hints(type(section))[name]
    checked = _coerce(value, field_type, dotted)
    check_choice(dotted, field_type, checked)
    check_bounds(dotted, type(section).__dataclass_fields__[name], checked)
    return dataclasses.replace(section, **{name: checked})


def refuse_without(key: str, is_set_alone: bool, needs: str) -> None:
    """A setting that only means something with another one: refused rather than ignored."""
    if is_set_alone:
        raise UserError(f"{key} is set but has no effect without {needs}; set that too or "
                        f"leave {key} at its default")


def check_key_choice(key: str, value: Any, allowed) -> None:
    """A string setting `key` (e.g. "model.arch") must be one of `allowed`; the error names
    the key, the value and the choices."""
    if value not in allowed:
        raise UserError(f"{key}='{value}' is unknown; choose one of {', '.join(allowed)}")


def parse_override(text: str) -> tuple[str, str]:
    """Splits a command-line `section.key=value` into its key and (unparsed) value."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"override '{text}' is not of the form section.key=value")
    return key.strip(), value.strip()


def _field_names(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def _field_value(obj: Any, name: str, dotted: str) -> Any:
    if name not in _field_names(obj):
        where = ("config" if isinstance(obj, Config)
                 else f"section '{dotted[:dotted.rindex('.' + name)]}'")
        raise UserError(f"unknown config key '{dotted}': {where} has no '{name}'; "
                        f"known: {', '.join(_field_names(obj))}")
    return getattr(obj, name)


def _coerce(value: Any, field_type: Any, dotted: str) -> Any:
    """Checks (and, from strings, parses) a value for a field of type `field_type`."""
    allowed = _allowed_types(field_type)
    if isinstance(value, str) and type(None) in allowed and value.lower() in ("none", "null"):
        return None
    if isinstance(value, str) and str not in allowed:
        value = _parse_literal(value, dotted)
    if value is None and type(None) in allowed:
        return None
    if isinstance(value, bool):  # bool is an int subclass; accept it only where declared
        if bool in allowed:
            return value
    elif isinstance(value, int) and int in allowed:
        return value
    elif isinstance(value, (int, float)) and float in allowed:
        return float(value)
    elif isinstance(value, str) and str in allowed:
        return value
    names = " or ".join(t.__name__ if t is not type(None) else "None" for t in allowed)
    raise UserError(f"config key '{dotted}' expects {names}, got {value!r} "
                    f"({type(value).__name__})")


def _allowed_types(field_type: Any) -> tuple[type, ...]:
    """The Python types a field accepts; a Literal of strings accepts str (then its choices
    are checked)."""
    if typing.get_origin(field_type) in (typing.Union, types.UnionType):
        return tuple(t for arg in typing.get_args(field_type) for t in _allowed_types(arg))
    if typing.get_origin(field_type) is Literal:
        return tuple(dict.fromkeys(type(choice) for choice in typing.get_args(field_type)))
    return (field_type,)


def _parse_literal(text: str, dotted: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # left as a string; _coerce then reports the type mismatch


# --- loading and saving --------------------------------------------------------------------


def load_config(spec: str) -> Config:
    """Loads `path/to/config.py[:variant]` by calling its `get_config(variant)`."""
    path_text, _, variant = spec.partition(":")
    path = Path(path_text)
    if not path.is_file():
        raise UserError(f"config file '{path}' not found; pass the path of a file in "
                        "experiments/configs/, e.g. experiments/configs/dcgan_fashion_mnist.py")
    module_spec = importlib.util.spec_from_file_location(f"_gan_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    if get_config is None:
        raise UserError(f"config file '{path}' defines no get_config(variant) function")
    config = get_config(variant or None)
    if not isinstance(config, Config):
        raise UserError(f"get_config in '{path}' returned {type(config).__name__}, not Config")
    return config


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)


# Keys of configs saved by earlier versions, and where those settings live now: a run
# directory's config.json from before keeps loading (and resuming).
MOVED_KEYS = {"model.mlp_layers": "model.mlp.layers",
              "model.maxout_pieces": "model.mlp.maxout_pieces",
              "model.d_dropout": "model.mlp.d_dropout"}


def from_dict(values: Mapping[str, Any]) -> Config:
    flat = {MOVED_KEYS.get(key, key): value for key, value in _flatten(values).items()}
    return with_overrides(Config(), flat)


def save_config(config: Config, path: Path) -> None:
    # Atomic: a run killed while rewriting it on resume must not leave a truncated config.
    write_text_atomically(path, json.dumps(to_dict(config), indent=2) + "\n")


def read_config(path: Path) -> Config:
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error}); restore it or use a new "
                        "--workdir") from None
    return from_dict(values)


def differences_of(section: Any, reference: Any) -> list[str]:
    """The fields of one section (a dataclass) whose values differ from `reference`'s."""
    return [f.name for f in dataclasses.fields(section)
            if getattr(section, f.name) != getattr(reference, f.name)]


def differences(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, with (old, new) values."""
    old_flat, new_flat = _flatten(to_dict(old)), _flatten(to_dict(new))
    return {k: (old_flat.get(k), new_flat.get(k)) for k in sorted(old_flat.keys() | new_flat.keys())
            if old_flat.get(k) != new_flat.get(k)}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys: {"model": {"mlp": {"layers": 2}}} -> model.mlp.layers."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# --- experiment variants -------------------------------------------------------------------

# A few steps of whatever model, with every periodic action (log, samples, checkpoint) firing:
# the `:test` variant of each experiment config.
TEST_SCHEDULE = {"train.batch_size": 16, "train.total_kimg": 0.048,
                 "train.log_every_kimg": 0.016, "train.sample_every_kimg": 0.032,
                 "train.checkpoint_every_kimg": 0.032, "train.grid_size": 16}


def variant_config(experiment: str, variants: Mapping[str | None, Mapping[str, Any]],
                   variant: str | None, base: Mapping[str, Any] | None = None) -> Config:
    """The config of an experiment file: defaults, then `base`, then the variant's overrides."""
    if variant not in variants:
        raise UserError(f"unknown variant '{variant}' of {experiment}; choose one of "
                        f"{', '.join(v for v in variants if v)}")
    return with_overrides(Config(), {**(base or {}), **variants[variant]})

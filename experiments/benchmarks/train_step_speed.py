"""Train-step speed: gan_jax's jitted step against the same DCGAN work in PyTorch.

    python -m experiments.benchmarks.train_step_speed --out runs/bench_step

Times the compiled train step (`sharding.jit_train_step(train_step_for(gan))`, the one the
training loop runs) on a device-resident batch: `--warmup` calls (compilation, autotuning),
then the median over `--repeats` of `--steps` calls each, ended by `block_until_ready`.
Reports img/s (real images shown to D per second), ms/step, TFLOP/s from the analytic count of
`gan_jax.flops`, that as a percent of the bf16 matrix peak (measured here with a large bf16
matmul, and of the datasheet's dense figure when the device is known) and peak device memory.

Cases (3-channel, like the published PyTorch figures, but the MLP's Fashion-MNIST shape):
  dcgan64_b128, dcgan64_b512, dcgan32_b64   DCGAN, ngf = ndf = 64, BCE non-saturating, Adam
  sngan32_b64_n5                            the gan_zoo sngan_resnet recipe, 5 D updates/step
  mlp28_b100                                the original GAN's MLPs (mlp_gan_fashion_mnist)
each in float32 (XLA's default GPU precision: TF32 convolutions) and bfloat16
(`model.compute_dtype`). Every case is also run in PyTorch when torch is installed
(experiments/benchmarks/torch_dcgan.py's step on the transcriptions there and in torch_gans.py;
eager, torch.compile and torch.compile with CUDA graphs, float32 and bf16 autocast). Each case runs in its own subprocess so peak memory is its
own and the two frameworks never share the GPU. Prints a table last; writes results.json
(every row, the command, device, date and versions) under --out.

`--interleave` builds gan_jax's and PyTorch's steps of a case in one process and lets their
timed repeats take turns (medians of each; `repeats_s` keeps every repeat), for shared CPUs
whose speed drifts within minutes: on one 2-core machine PyTorch's own DCGAN 64x64 step took
4.6 s and, 90 minutes later, 8.6 s, so cases measured minutes apart do not make a ratio.

`--scale tiny` shrinks every case (widths 8, batch 8) to check the script on a CPU.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from experiments.benchmarks.turns import time_in_turns
from experiments.provenance import cpu_model, git_commit, usable_cores

CASES: dict[str, dict[str, Any]] = {
    "dcgan64_b128": {"model.resolution": 64, "train.batch_size": 128},
    "dcgan64_b512": {"model.resolution": 64, "train.batch_size": 512},
    "dcgan32_b64": {"model.resolution": 32, "train.batch_size": 64},
    "sngan32_b64_n5": {"recipe": "sngan_resnet", "train.batch_size": 64},
    # gan_zoo.py:biggan's Fashion-MNIST size (ch 8, 2 D updates); no PyTorch transcription
    # of its step here: run it with --torch-modes ''
    "biggan32_fashion_b64_n2": {"variant": "biggan", "train.batch_size": 64},
    # progan.py:fashion_mnist's step at its final level (32x32), as the loop trains it
    "progan32_fashion_b64": {"experiment": "progan", "train.batch_size": 64},
    "mlp28_b100": {"experiment": "mlp_gan_fashion_mnist"},
    # The "Are GANs Created Equal?" networks (InfoGAN-style, 28x28x1) with the NS GAN recipe,
    # as the Fashion-MNIST FID table trains them; no PyTorch transcription of its step here
    "infogan28_fashion_b64": {"experiment": "lucic_fashion_mnist:ns_gan"},
}
DCGAN = {"model.arch": "dcgan", "model.channels": 3, "model.g_width": 64, "model.d_width": 64,
         "model.latent_dim": 100, "train.loss": "non_saturating", "optim.g_lr": 2e-4,
         "optim.d_lr": 2e-4, "optim.b1": 0.5, "optim.b2": 0.999}
TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8}
DTYPES = ("float32", "bfloat16")
# Dense bf16 matrix peaks from the datasheets (TFLOP/s, without sparsity), by device_kind.
DATASHEET_BF16_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.4, "NVIDIA H100 PCIe": 756.0,
                         "NVIDIA H200": 989.4, "NVIDIA A100-SXM4-80GB": 312.0,
                         "NVIDIA A100-SXM4-40GB": 312.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--torch-modes", default="eager,compile,reduce-overhead",
                        help="PyTorch modes to run ('' for none); CUDA graphs need a GPU")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--scale", choices=("full", "tiny"), default="full")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per case")
    parser.add_argument("--conv-implementations", default="auto",
                        help="model.conv_implementation values to time gan_jax's step with")
    parser.add_argument("--interleave", action="store_true",
                        help="one process per case, the frameworks' timed repeats taking turns")
    parser.add_argument("--profile", action="store_true",
                        help="also write a jax.profiler trace of each JAX case under --out")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_step"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one case, in a subprocess
    return parser.parse_args(argv)


# --- one case, in its own process ----------------------------------------------------------


def case_config(case: str, dtype: str, scale: str):
    from experiments.configs import gan_zoo
    from gan_jax.config import Config, with_overrides
    overrides = dict(CASES[case])
    recipe, experiment = overrides.pop("recipe", None), overrides.pop("experiment", None)
    variant = overrides.pop("variant", None)
    if experiment:  # the experiment's own data shape (the MLP GAN: 28x28x1), "file:variant"
        module, _, experiment_variant = experiment.partition(":")
        base = importlib.import_module(f"experiments.configs.{module}").get_config(
            experiment_variant or None)
    elif variant:  # a zoo recipe at its Fashion-MNIST size
        base = gan_zoo.get_config(variant)
    elif recipe:
        base = with_overrides(Config(), {**gan_zoo.RECIPES[recipe], "model.channels": 3})
    else:
        base = with_overrides(Config(), DCGAN)
    values = {**overrides, "model.compute_dtype": dtype, **(TINY if scale == "tiny" else {})}
    return with_overrides(base, values)


def warm_up(step, state, batch, key, calls: int):
    """`state` after `calls` calls of `state, _ = step(state, batch, key)`, finished."""
    import jax
    for _ in range(calls):
        state, _ = step(state, batch, key)
    return jax.block_until_ready(state)


def time_steps(step, state, batch, key, steps: int, repeats: int, warmup: int):
    """Median seconds per call of `state, _ = step(state, batch, key)` and the final state."""
    import jax
    state = warm_up(step, state, batch, key, warmup)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state, _ = step(state, batch, key)
        jax.block_until_ready(state)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times), state


class PreparedStep(NamedTuple):
    """A config's compiled, sharded train step with a state and a device-resident batch."""

    step: Any  # the jitted step: (state, batch, key) -> (state, metrics)
    compiled: Any  # its compiled executable (HLO text, memory analysis)
    state: Any
    batch: Any
    flops: Any  # gan_jax.flops.StepFlops


def prepare_train_step(config) -> PreparedStep:
    """`config`'s jitted, sharded train step as the training loop runs it (a growing model: its
    final level's step and batch), compiled, with a fresh state and a random uint8 batch."""
    import jax
    import numpy as np

    from gan_jax import sharding
    from gan_jax.flops import train_step_flops
    from gan_jax.train import build_gan, init_state, level_train_steps, train_step_for
    gan = build_gan(config)
    step_flops = train_step_flops(gan)  # a growing model: its final level's step and batch
    levels = level_train_steps(gan)  # a growing model: its final level's step, as trained
    mesh = sharding.make_mesh()
    state = jax.jit(lambda k: init_state(gan, k), out_shardings=sharding.replicated(mesh))(
        jax.random.key(0))
    m = config.model
    rows = step_flops.real_images_per_step
    rng = np.random.default_rng(0)
    batch = sharding.put_process_batch(
        {"image": rng.integers(0, 256, (rows, m.resolution, m.resolution, m.channels), np.uint8),
         "label": rng.integers(0, m.num_classes, (rows,), np.int32)}, mesh)
    step = sharding.jit_train_step(levels[max(levels)] if levels else train_step_for(gan), mesh)
    compiled = step.lower(state, batch, jax.random.key(1)).compile()
    return PreparedStep(step, compiled, state, batch, step_flops)


def time_train_step(config, steps: int, repeats: int, warmup: int,
                    profile_dir: str | None = None) -> dict[str, Any]:
    """Step-only timing of `config`'s jitted, sharded train step on a device-resident batch;
    with `profile_dir`, then a `jax.profiler` trace of 10 more steps (for TensorBoard/XProf or
    Perfetto; `step_profile` sums it per operation) where to look when a target is missed."""
    import jax
    prepared = prepare_train_step(config)
    step, batch, key = prepared.step, prepared.batch, jax.random.key(1)
    state = warm_up(step, prepared.state, batch, key, warmup)
    # Faults and system time of the timed calls only: the warm-up's first calls map memory
    # that later calls reuse (gan_jax.host_memory).
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds, state = time_steps(step, state, batch, key, steps, repeats, 0)
    after, calls = resource.getrusage(resource.RUSAGE_SELF), steps * repeats
    if profile_dir:
        with jax.profiler.trace(profile_dir):
            time_steps(step, state, batch, key, 10, 1, 0)
    stats = jax.devices()[0].memory_stats() or {}
    memory = prepared.compiled.memory_analysis()
    return {"framework": "jax", "mode": "jit", "seconds_per_step": seconds,
            "real_images_per_step": prepared.flops.real_images_per_step,
            "flops_per_step": prepared.flops.per_step,
            "peak_memory_bytes": stats.get("peak_bytes_in_use"),
            "xla_temp_bytes": getattr(memory, "temp_size_in_bytes", None),
            # a temporary buffer mapped anew each call shows here (gan_jax.host_memory)
            "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / calls,
            "system_seconds_per_step": (after.ru_stime - before.ru_stime) / calls,
            "device": jax.devices()[0].device_kind, "devices": jax.device_count(),
            "jax": jax.__version__}


def run_jax_case(case: str, dtype: str, conv: str, args: argparse.Namespace) -> dict[str, Any]:
    from gan_jax.config import with_overrides
    profile = str(args.out / "profiles" / f"{case}_{dtype}") if args.profile else None
    config = with_overrides(case_config(case, dtype, args.scale),
                            {"model.conv_implementation": conv})
    return time_train_step(config, args.steps, args.repeats, args.warmup, profile)


def torch_step_factory(config, mode: str, dtype: str):
    """`device -> GANStep`: the PyTorch transcription of `config`'s networks and step."""
    from experiments.benchmarks import torch_dcgan, torch_gans
    m, t, o = config.model, config.train, config.optim
    if m.arch == "dcgan":
        return lambda device: torch_dcgan.DCGANStep(m.resolution, m.channels, m.g_width,
                                                    m.latent_dim, t.batch_size, mode, dtype,
                                                    device)
    if m.arch not in ("dcgan", "resnet", "mlp"):
        raise ValueError(f"no PyTorch transcription of the {m.arch} step")
    if m.arch == "resnet":
        networks = lambda: torch_gans.sngan_networks(m.g_width, m.d_width, m.latent_dim,  # noqa: E731
                                                     m.channels)
    else:
        networks = lambda: torch_gans.mlp_networks(  # noqa: E731
            m.resolution, m.channels, m.g_width, m.d_width, m.latent_dim, m.mlp.layers,
            m.mlp.maxout_pieces, m.mlp.d_dropout)
    return lambda device: torch_dcgan.GANStep(
        *networks(), (m.latent_dim,), t.batch_size, mode, dtype, device, loss=t.loss,
        n_critic=t.n_critic, lr=o.d_lr, betas=(o.b1, o.b2))


def run_torch_case(case: str, dtype: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from experiments.benchmarks import torch_dcgan
    from gan_jax.flops import train_step_flops
    from gan_jax.train import build_gan
    config = case_config(case, dtype, args.scale)
    m, t = config.model, config.train
    rows = t.batch_size * t.n_critic
    result = torch_dcgan.benchmark(torch_step_factory(config, mode, dtype),
                                   (rows, m.channels, m.resolution, m.resolution), args.steps,
                                   args.repeats, args.warmup)
    return {"framework": "torch", "mode": mode, "real_images_per_step": rows,
            "flops_per_step": train_step_flops(build_gan(config)).per_step, **result}


def interleaved_steps(config, torch_modes: list[str]
                      ) -> tuple[dict[tuple[str, str], Any], Any]:
    """(framework, mode) -> `run(n)`: n steps of that framework's step for `config`, ended by
    a sync, every one built in this process; and the step's FLOP count (gan_jax.flops)."""
    import jax
    runners = {}
    prepared = prepare_train_step(config)
    held = {"state": prepared.state}

    def run_jax(n):
        for _ in range(n):
            held["state"], _ = prepared.step(held["state"], prepared.batch, jax.random.key(1))
        jax.block_until_ready(held["state"])

    runners[("jax", config.model.conv_implementation)] = run_jax
    m, t = config.model, config.train
    if torch_modes:
        from experiments.benchmarks import torch_dcgan  # needs torch
    for mode in torch_modes:
        step, real, sync, _ = torch_dcgan.prepare(
            torch_step_factory(config, mode, m.compute_dtype),
            (t.batch_size * t.n_critic, m.channels, m.resolution, m.resolution))

        def run_torch(n, step=step, real=real, sync=sync):
            for _ in range(n):
                step.step(real)
            sync()

        runners[("torch", mode)] = run_torch
    return runners, prepared.flops


def run_interleaved_case(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every framework's step for one case in one process, their timed repeats taking turns:
    a shared CPU's speed can drift by 2x within minutes, which separate runs read as a change
    of ratio; taking turns slows every framework alike."""
    import jax

    from gan_jax.config import with_overrides
    config = with_overrides(case_config(spec["case"], spec["dtype"], args.scale),
                            {"model.conv_implementation": spec["conv_implementation"]})
    runners, flops = interleaved_steps(config, spec["torch_modes"])
    for run in runners.values():
        run(args.warmup)
    times = time_in_turns({key: functools.partial(run, args.steps)
                           for key, run in runners.items()}, args.repeats, warmup=0)
    rows = []
    for (framework, mode), repeats in times.items():
        seconds = [s / args.steps for s in repeats]
        # The JAX row names the device, as the sequential run's does (results.json's device).
        kind = ({"conv_implementation": mode, "device": jax.devices()[0].device_kind}
                if framework == "jax" else {"mode": mode})
        rows.append({"kind": "step", "framework": framework, "case": spec["case"],
                     "dtype": spec["dtype"], **kind, "interleaved": True,
                     "seconds_per_step": statistics.median(seconds), "repeats_s": seconds,
                     "real_images_per_step": flops.real_images_per_step,
                     "flops_per_step": flops.per_step, "peak_memory_bytes": None})
    return {"rows": rows}


def matmul_peak_tflops(dtype: str = "bfloat16", repeats: int = 10) -> float:
    """Measured matrix throughput of one large square matmul (the achievable peak). 8192^3 on
    an accelerator; 1024^3 on a CPU, where bf16 is slow and the figure is only a check."""
    import jax
    n = 1024 if jax.default_backend() == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    matmul = jax.jit(lambda a: a @ a)
    seconds, _ = time_steps(lambda s, b, k: (matmul(b), None), None, a, None, repeats, 3, 2)
    return 2 * n ** 3 / seconds / 1e12


def worker(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    if spec["kind"] == "peak":
        return {"measured_bf16_tflops": matmul_peak_tflops()}
    if spec["kind"] == "interleaved":
        return run_interleaved_case(spec, args)
    if spec["framework"] == "jax":
        return run_jax_case(spec["case"], spec["dtype"], spec.get("conv_implementation", "auto"),
                            args)
    return run_torch_case(spec["case"], spec["dtype"], spec["mode"], args)


# --- the driver ----------------------------------------------------------------------------


def run_in_subprocess(spec: dict[str, Any], argv: list[str], timeout: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "experiments.benchmarks.train_step_speed", *argv,
               "--worker", json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return {**spec, **json.loads(line[len("RESULT "):])}
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {**spec, "error": f"exit {done.returncode}: {tail[:300]}"}


def specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    torch_modes = [m for m in args.torch_modes.split(",") if m]
    out = []
    for case in args.cases.split(","):
        for dtype in args.dtypes.split(","):
            if args.interleave:  # one process per conv implementation, with every torch mode
                out += [{"kind": "interleaved", "framework": "jax+torch", "case": case,
                         "dtype": dtype, "conv_implementation": conv, "torch_modes": torch_modes}
                        for conv in args.conv_implementations.split(",")]
                continue
            out += [{"kind": "step", "framework": "jax", "case": case, "dtype": dtype,
                     "conv_implementation": conv}
                    for conv in args.conv_implementations.split(",")]
            out += [{"kind": "step", "framework": "torch", "case": case, "dtype": dtype,
                     "mode": mode} for mode in torch_modes]
    return out


def derived(row: dict[str, Any], peak: float | None, datasheet: float | None) -> dict[str, Any]:
    if "error" in row or row.get("kind") != "step":
        return row
    tflops = row["flops_per_step"] / row["seconds_per_step"] / 1e12
    return {**row, "img_per_sec": row["real_images_per_step"] / row["seconds_per_step"],
            "ms_per_step": 1000 * row["seconds_per_step"], "tflops": tflops,
            "pct_measured_bf16_peak": 100 * tflops / peak if peak else None,
            "pct_datasheet_bf16_peak": 100 * tflops / datasheet if datasheet else None}


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'case':<24}{'dtype':<10}{'framework':<22}{'img/s':>10}{'ms/step':>10}"
              f"{'TFLOP/s':>9}{'%peak':>7}{'%sheet':>7}{'peak MiB':>10}")
    lines = [header, "-" * len(header)]
    number = lambda v, f: format(v, f) if v is not None else "-"
    for r in rows:
        name = r["framework"] + (f" {r.get('conv_implementation', 'auto')}"
                                 if r["framework"] == "jax" else f" {r.get('mode', '')}")
        if "error" in r:
            lines.append(f"{r['case']:<24}{r['dtype']:<10}{name:<22}  failed: {r['error']}")
            continue
        memory = r.get("peak_memory_bytes")
        lines.append(
            f"{r['case']:<24}{r['dtype']:<10}{name:<22}{r['img_per_sec']:>10,.0f}"
            f"{r['ms_per_step']:>10.3f}{r['tflops']:>9.2f}"
            f"{number(r['pct_measured_bf16_peak'], '.1f'):>7}"
            f"{number(r['pct_datasheet_bf16_peak'], '.1f'):>7}"
            f"{number(memory / 2**20 if memory else None, ',.0f'):>10}")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import flax
    import jax
    import optax
    found = {"python": platform.python_version(), "jax": jax.__version__,
             "flax": flax.__version__, "optax": optax.__version__}
    try:
        import torch
        found["torch"] = torch.__version__
    except ImportError:
        found["torch"] = "not installed"
    return found


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    git_commit()  # now, so that the results name the code that ran, not a later commit
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker), args)), flush=True)
        return []
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    started = datetime.datetime.now(datetime.timezone.utc)
    peak = run_in_subprocess({"kind": "peak"}, argv, args.timeout).get("measured_bf16_tflops")
    rows = []
    for spec in specs(args):
        result = run_in_subprocess(spec, argv, args.timeout)
        for row in result.get("rows", [result]):
            rows.append(row)
            print(f"{row['framework']:>5} {row['case']} {row['dtype']} "
                  f"{row.get('mode', row.get('conv_implementation'))}: "
                  f"{row.get('error') or format(row['seconds_per_step'] * 1e3, '.3f')} ms",
                  flush=True)
    device = next((r["device"] for r in rows if r.get("framework") == "jax" and "device" in r),
                  None)
    datasheet = DATASHEET_BF16_TFLOPS.get(device)
    rows = [derived(r, peak, datasheet) for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": "python -m experiments.benchmarks.train_step_speed " + " ".join(argv),
              "date": started.isoformat(timespec="seconds"), "device": device,
              "host": platform.node(), "cpu": cpu_model(), "cpu_cores": usable_cores(),
              "commit": git_commit(), "versions": versions(),
              "measured_bf16_tflops": peak, "datasheet_bf16_tflops": datasheet,
              "settings": {k: v for k, v in vars(args).items() if k != "out" and k != "worker"},
              "rows": rows}
    (args.out / "results.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"\ndevice: {device}; bf16 matmul peak measured {peak or 0:.1f} TFLOP/s, datasheet "
          f"{datasheet or '-'}; {record['date']}")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()

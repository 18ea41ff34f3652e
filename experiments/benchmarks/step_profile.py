"""Where a train step's time goes: per-operation times of the compiled step, summed from a trace.

    python -m experiments.benchmarks.step_profile --case dcgan32_b64 --out runs/profile_dcgan32

Traces `--steps` calls of the compiled, sharded step that `train_step_speed` times (after
`--warmup` calls) with `jax.profiler`, sums the duration of every XLA thunk per HLO instruction,
and maps each instruction to the JAX operation it came from (the `op_name` metadata of the
optimized HLO). It prints the largest groups in ms per step, a group being network, pass
(forward or backward: `transpose(jvp(...))` in the name), layer and primitive, e.g.
`Discriminator backward body/Conv_1 dot_general`, and the matrix products' time, FLOPs (from
the HLO's shapes) and rate apart from everything else's time. It writes profile.json (every
group and instruction, the command, date, CPU and versions) and the optimized HLO under --out.

Times are summed over threads, so on a CPU two instructions running side by side add up to
more than their wall time; the sum is printed beside the step's wall time. Control flow
(while, conditional, call) is left out of the sum: its body's instructions are counted
themselves. For a CPU; on a GPU use XProf or Perfetto on the trace (`train_step_speed
--profile`).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.benchmarks.train_step_speed import (CASES, case_config, prepare_train_step,
                                                     versions, warm_up)
from experiments.provenance import cpu_model, git_commit, usable_cores

# Instructions that only run other instructions: their time is their bodies'.
CONTAINERS = frozenset({"while", "conditional", "call", "async-start", "async-done"})
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?:\([^=]*?\)|\S+)\s+(?P<opcode>[a-z][\w\-]*)\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_SHAPE = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*[a-z]\w*\[([\d,]*)\]", re.M)
_DOT = re.compile(r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*[a-z]\w*\[(?P<out>[\d,]*)\]\S*"
                  r"\s+dot\(%?(?P<lhs>[\w.\-]+),"
                  r".*?lhs_contracting_dims=\{(?P<contracting>[\d,]*)\}",
                  re.M)
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?(?P<name>[\w.\-]+)\s[^\n]*\{\n(?P<body>.*?)\n\}",
                          re.S | re.M)
_FUSION = re.compile(r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=.*?\sfusion\(.*?\bcalls=%?"
                     r"(?P<callee>[\w.\-]+)", re.M)
_LAYER = re.compile(r"^[A-Za-z]\w*_\d+$")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="dcgan32_b64", choices=sorted(CASES))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--conv-implementation", default="auto",
                        help="model.conv_implementation of the profiled step")
    parser.add_argument("--scale", choices=("full", "tiny"), default="full",
                        help="tiny: widths 8, batch 8, to check the script")
    parser.add_argument("--steps", type=int, default=10, help="traced steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=30, help="groups to print")
    parser.add_argument("--out", type=Path, default=Path("runs/step_profile"))
    return parser.parse_args(argv)


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
    """Instruction name -> (opcode, op_name metadata or '') for every instruction of an HLO
    module's text, in every computation (fusion bodies included)."""
    found = {}
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if match:
            op_name = _OP_NAME.search(line)
            found[match["name"]] = (match["opcode"], op_name.group(1) if op_name else "")
    return found


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d]


def product_flops(hlo_text: str) -> dict[str, float]:
    """FLOPs per call of every instruction that runs a matrix product: a dot, or a fusion whose
    body has one (XLA:CPU's YNNPACK/oneDNN fusions), as 2 x output elements x contracted size.
    Convolutions are left out (they are not products here unless written as one)."""
    shapes = {name: _dims(dims) for name, dims in _SHAPE.findall(hlo_text)}

    def dot_flops(text: str) -> float:
        total = 0.0
        for match in _DOT.finditer(text):
            lhs = shapes.get(match["lhs"])
            if lhs is None:
                continue
            contracted = np.prod([lhs[d] for d in _dims(match["contracting"])])
            total += 2.0 * float(np.prod(_dims(match["out"]))) * float(contracted)
        return total

    bodies = {m["name"]: m["body"] for m in _COMPUTATION.finditer(hlo_text)}
    fusions = _FUSION.findall(hlo_text)
    fused = {callee for _, callee in fusions}
    found = {}
    for name, body in bodies.items():  # products run as instructions of their own
        if name not in fused:
            for match in _DOT.finditer(body):
                found[match["name"]] = dot_flops(match.group(0))
    for name, callee in fusions:  # and fusions whose bodies hold products
        flops = dot_flops(bodies.get(callee, ""))
        if flops:
            found[name] = flops
    return found


def group_of(op_name: str, opcode: str) -> str:
    """'network pass layer primitive' for a JAX op_name such as
    'jit(train_step)/transpose(jvp(Discriminator))/body/Conv_1/dot_general'."""
    if not op_name:
        return f"(no op_name) {opcode}"
    parts = op_name.split("/")
    network = next((n for n in ("Generator", "Discriminator") if n in op_name), "step")
    phase = "backward" if "transpose(" in op_name else "forward"
    layers = [p for p in parts[1:-1] if _LAYER.match(p) or p in ("body", "head")]
    primitive = re.sub(r"\[.*", "", parts[-1])
    if network == "step":  # the optimizer, losses, sampling: keep the path's last words
        return "step " + "/".join(p for p in parts[1:] if not p.startswith("jit("))[-60:]
    return f"{network} {phase} {'/'.join(layers) or '-'} {primitive}"


def thunk_times(trace_dir: str, instructions: dict[str, tuple[str, str]]
                ) -> tuple[dict[str, float], dict[str, int]]:
    """Total nanoseconds and number of runs per HLO instruction over every thread of a
    jax.profiler trace (an instruction in a loop's body runs once per iteration)."""
    from jax.profiler import ProfileData
    paths = sorted(Path(trace_dir).rglob("*.xplane.pb"))
    if not paths:
        raise SystemExit(f"no .xplane.pb under {trace_dir}: the profiler wrote no trace")
    totals: dict[str, float] = collections.defaultdict(float)
    runs: dict[str, int] = collections.defaultdict(int)

    for plane in ProfileData.from_file(str(paths[-1])).planes:
        for line in plane.lines:
            for event in line.events:  # flat: a while's body runs inside its interval
                known = instructions.get(event.name)
                if known and known[0] not in CONTAINERS:
                    totals[event.name] += event.duration_ns
                    runs[event.name] += 1
    return dict(totals), dict(runs)


def profile_step(config, steps: int, warmup: int) -> dict[str, Any]:
    """Per-group and per-instruction ms per step of `config`'s compiled step, and its wall
    time per step while traced."""
    import jax
    prepared = prepare_train_step(config)
    state, key = prepared.state, jax.random.key(1)
    state = warm_up(prepared.step, state, prepared.batch, key, warmup)
    hlo = prepared.compiled.as_text()
    instructions = hlo_instructions(hlo)
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            start = time.perf_counter()
            for _ in range(steps):
                state, _ = prepared.step(state, prepared.batch, key)
            jax.block_until_ready(state)
            wall = (time.perf_counter() - start) / steps
        times, runs = thunk_times(trace_dir, instructions)
    per_instruction = {name: ns / steps / 1e6 for name, ns in times.items()}
    flops = product_flops(hlo)
    product_ms = sum(ms for name, ms in per_instruction.items() if name in flops)
    # Per run: a product in the critic loop's body counts once per D update.
    product_gflop = sum(flops[name] * runs[name] for name in per_instruction
                        if name in flops) / steps / 1e9
    groups: dict[str, float] = collections.defaultdict(float)
    for name, ms in per_instruction.items():
        groups[group_of(instructions[name][1], instructions[name][0])] += ms
    by_size = lambda d: dict(sorted(d.items(), key=lambda kv: -kv[1]))  # noqa: E731
    return {"wall_ms_per_step": wall * 1e3, "summed_ms_per_step": sum(per_instruction.values()),
            "groups_ms": by_size(groups),
            # Matrix products: time summed over threads, so their rate is per busy thread.
            "products": {"ms_per_step": product_ms, "gflop_per_step": product_gflop,
                         "gflop_per_s": product_gflop / product_ms * 1e3 if product_ms else None},
            "instructions_ms": {n: {"ms": ms, "opcode": instructions[n][0],
                                    "op_name": instructions[n][1],
                                    **({"gflop": flops[n] / 1e9} if n in flops else {})}
                                for n, ms in by_size(per_instruction).items()},
            "hlo": hlo}


def format_groups(result: dict[str, Any], top: int) -> str:
    total = result["summed_ms_per_step"]
    lines = [f"step wall {result['wall_ms_per_step']:.1f} ms; operations summed over threads "
             f"{total:.1f} ms"]
    products = result["products"]
    if products["ms_per_step"]:
        lines.append(f"matrix products {products['ms_per_step']:.1f} ms for "
                     f"{products['gflop_per_step']:.1f} GFLOP ({products['gflop_per_s']:.0f} "
                     f"GFLOP/s per busy thread); everything else "
                     f"{total - products['ms_per_step']:.1f} ms")
    lines += ["| ms/step | share | group |", "|---:|---:|---|"]
    for group, ms in list(result["groups_ms"].items())[:top]:
        lines.append(f"| {ms:.1f} | {ms / total:.1%} | {group} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    git_commit()  # now, so that the results name the code that ran, not a later commit
    from gan_jax.config import with_overrides
    config = with_overrides(case_config(args.case, args.dtype, args.scale),
                            {"model.conv_implementation": args.conv_implementation})
    started = datetime.datetime.now(datetime.timezone.utc)
    result = profile_step(config, args.steps, args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step.hlo.txt").write_text(result.pop("hlo"))
    record = {"command": "python -m experiments.benchmarks.step_profile " + " ".join(argv),
              "date": started.isoformat(timespec="seconds"), "cpu": cpu_model(),
              "cpu_cores": usable_cores(), "commit": git_commit(), "versions": versions(),
              **result}
    (args.out / "profile.json").write_text(json.dumps(record, indent=1))
    print(format_groups(result, args.top))
    return record


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()

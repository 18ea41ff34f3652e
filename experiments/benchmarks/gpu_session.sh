#!/usr/bin/env bash
# The GPU measurements (step speed, end to end, FID study) on a GPU machine that receives the working tree and nothing else.
#
#   python -m experiments.stage_device_files          # here, once: .cache/device/ (ignored)
#   bash experiments/benchmarks/gpu_session.sh speed  # on the GPU: step benchmark (~6 min)
#   bash experiments/benchmarks/gpu_session.sh e2e    # on the GPU: loop vs step (~2 min)
#   bash experiments/benchmarks/gpu_session.sh fid ROWS [SEEDS]   # e.g. "ns_gan,wgan" "0,1,2"
#   bash experiments/benchmarks/gpu_session.sh report # the FID table of the finished runs
#   bash experiments/benchmarks/gpu_session.sh biggan # gan_zoo:biggan on Fashion-MNIST: fid10k
#                                                     # and an intra-class grid (resumes)
#   bash experiments/benchmarks/gpu_session.sh progan # progan.py:fashion_mnist: fid10k (resumes)
#
# The data (30 MB) and the float16 FID weights (44 MB) do not fit one 64 MiB upload together:
# carry .cache/device/fashion-mnist with the first call and .cache/device/gan_jax with the next
# while the machine is warm (ignored paths stay there between calls). Results go to $OUT (or
# runs/gpu when it is unset); FID runs live in runs/fid_study and resume if a call is cut off.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
export GAN_JAX_CACHE="$PWD/.cache/device/gan_jax"
DATA=(data.dir="$PWD/.cache/device/fashion-mnist")
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv" || true

case "${1:?speed, e2e, fid, report, biggan or progan}" in
  speed)
    python -m experiments.benchmarks.train_step_speed --out "$OUT/speed" 2>&1 \
      | tee "$OUT/speed.log" ;;
  e2e)
    python -m experiments.benchmarks.end_to_end --config experiments/configs/gan_zoo.py:ns_gan \
      --kimg 1200 --out "$OUT/e2e" "${DATA[@]}" eval.metrics= 2>&1 | tee "$OUT/e2e.log" ;;
  fid)
    python -m experiments.fid_study run --out runs/fid_study --rows "${2:?rows}" \
      --seeds "${3:-0,1,2}" --no-progress "${DATA[@]}" eval.storage=float16 2>&1 \
      | tee -a "$OUT/fid.log"
    # The summaries, logs and final grids come back; checkpoints stay on the machine.
    (cd runs && find fid_study \( -name study.json -o -name metrics.jsonl -o -name latest.png \) \
      -exec cp --parents {} "$OUT/" \;) ;;
  report)
    python -m experiments.fid_study report --out runs/fid_study --results "$OUT/fid_results" ;;
  biggan)
    python -m experiments.train --config experiments/configs/gan_zoo.py:biggan \
      --workdir runs/biggan_fashion_mnist --no-progress "${DATA[@]}" \
      eval.metrics=fid10k,kid10k eval.storage=float16 2>&1 | tee -a "$OUT/biggan.log"
    python -m experiments.sample --run runs/biggan_fashion_mnist --per-class 10 --upscale 3 \
      --out "$OUT/biggan_classes.png"
    cp runs/biggan_fashion_mnist/metrics.jsonl runs/biggan_fashion_mnist/config.json "$OUT/" ;;
  progan)
    python -m experiments.train --config experiments/configs/progan.py:fashion_mnist \
      --workdir runs/progan_fashion_mnist --no-progress "${DATA[@]}" eval.metrics=fid10k,kid10k \
      eval.storage=float16 2>&1 | tee -a "$OUT/progan.log"
    cp runs/progan_fashion_mnist/metrics.jsonl "$OUT/progan_metrics.jsonl"
    cp runs/progan_fashion_mnist/samples/latest.png "$OUT/progan_samples.png" ;;
  *) echo "unknown stage '$1'; use speed, e2e, fid, report, biggan or progan" >&2; exit 2 ;;
esac

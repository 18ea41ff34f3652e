#!/usr/bin/env bash
# The GPU measurements (step speed, end to end, FID study) on a GPU machine that receives the
# working tree and nothing else.
#
#   python -m experiments.stage_device_files          # here, once: .cache/device/ (ignored)
#   bash experiments/benchmarks/gpu_session.sh speed  # on the GPU: step benchmark (~6 min)
#   bash experiments/benchmarks/gpu_session.sh e2e    # on the GPU: loop vs step (~2 min)
#   bash experiments/benchmarks/gpu_session.sh fid ROWS [SEEDS]   # e.g. "ns_gan,wgan" "0,1,2"
#   bash experiments/benchmarks/gpu_session.sh floor32  # the real-data floor padded to 32x32
#   bash experiments/benchmarks/gpu_session.sh biggan [FLAGS]  # gan_zoo:biggan on Fashion-MNIST
#   bash experiments/benchmarks/gpu_session.sh progan [FLAGS]  # progan.py:fashion_mnist
#   bash experiments/benchmarks/gpu_session.sh report # the FID tables of the finished runs
#
# `biggan` and `progan` are rows of the FID study, at its protocol (fid10k and kid10k under
# tf_legacy and clean, the test images padded to 32x32 as the models see them), so that their
# summaries join the CPU's in `fid_study report`; they compare with `floor32`. `biggan` also
# draws its intra-class grid. FLAGS go to `fid_study run` (e.g. `--seeds 0,1`).
#
# The data (30 MB) and the float16 FID weights (44 MB) do not fit one 64 MiB upload together:
# carry .cache/device/fashion-mnist with the first call and .cache/device/gan_jax with the next
# while the machine is warm (ignored paths stay there between calls). Results go to $OUT (or
# runs/gpu when it is unset); FID runs live in runs/fid_study and resume if a call is cut off.
# A study stage stops itself after STAGE_SECONDS (default 540; set it a minute under the call's
# limit): SIGTERM makes fid_study checkpoint and exit, and what finished still comes back,
# where a call killed at its limit would bring back nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
export GAN_JAX_CACHE="$PWD/.cache/device/gan_jax"
DATA=(data.dir="$PWD/.cache/device/fashion-mnist")
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv" || true

STUDY=(timeout -s TERM --kill-after=30 "${STAGE_SECONDS:-540}" python -m experiments.fid_study)
STUDY_FLAGS=(--out runs/fid_study --no-progress)
EVAL_FLAGS=("${DATA[@]}" eval.storage=float16)

# The study's command, logged to $OUT/LOG; then the summaries, evaluations, logs and final
# grids come back (checkpoints stay on the machine), also when the command stopped early.
study() {
  local log="$1" status=0
  shift
  "${STUDY[@]}" "$@" 2>&1 | tee -a "$OUT/$log" || status=$?
  (cd runs && find fid_study \( -name 'study.json' -o -name 'metrics.jsonl' \
    -o -name 'processes.jsonl' -o -name 'latest.png' -o -name 'floor_*.json' \
    -o -name 'final_*.json' \) -exec cp --parents {} "$OUT/" \;) || true
  return "$status"
}

case "${1:?speed, e2e, fid, floor32, biggan, progan or report}" in
  speed)
    python -m experiments.benchmarks.train_step_speed --out "$OUT/speed" 2>&1 \
      | tee "$OUT/speed.log" ;;
  e2e)
    python -m experiments.benchmarks.end_to_end --config experiments/configs/gan_zoo.py:ns_gan \
      --kimg 1200 --out "$OUT/e2e" "${DATA[@]}" eval.metrics= 2>&1 | tee "$OUT/e2e.log" ;;
  fid)
    study fid.log run "${STUDY_FLAGS[@]}" --rows "${2:?rows}" --seeds "${3:-0,1,2}" \
      "${EVAL_FLAGS[@]}" ;;
  floor32)
    study floor.log floor "${STUDY_FLAGS[@]}" --floor-resolution 32 "${EVAL_FLAGS[@]}" ;;
  biggan)
    study biggan.log run "${STUDY_FLAGS[@]}" --experiment experiments/configs/gan_zoo.py \
      --rows biggan --curve-rows "" "${@:2}" "${EVAL_FLAGS[@]}"
    if [[ -f runs/fid_study/biggan/seed_0/study.json ]]; then  # seed 0 finished
      python -m experiments.sample --run runs/fid_study/biggan/seed_0 --per-class 10 \
        --upscale 3 --out "$OUT/biggan_classes.png"
    fi ;;
  progan)
    study progan.log run "${STUDY_FLAGS[@]}" --experiment experiments/configs/progan.py \
      --rows progan=fashion_mnist --curve-rows "" "${@:2}" "${EVAL_FLAGS[@]}" ;;
  report)
    "${STUDY[@]}" report --out runs/fid_study --results "$OUT/fid_results" ;;
  *) echo "unknown stage '$1'; use speed, e2e, fid, floor32, biggan, progan or report" >&2
     exit 2 ;;
esac

#!/usr/bin/env bash
# One prepared GPU check (docs/gpu.md), at most 8 minutes on one GPU: the
# CUDA build of mmcv, mmcv's CUDA RoIAlign and NMS against the CPU, STTran
# R101-C4 extraction throughput, a PredCls epoch at AG scale 0.1 and the
# relation head with bf16 autocast on and off. One line per step.
#
#   bash benchmarks/device_check.sh            # on a machine with a GPU
#   bash benchmarks/device_check.sh --dry-run  # anywhere: what each step would time
#
# PYTHON=path/to/python picks the environment (default .venv/bin/python,
# built with `bash scripts/setup.sh --cuda`). Exit status: the number of
# steps that failed or timed out.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) echo "usage: bash benchmarks/device_check.sh [--dry-run]" >&2; exit 2 ;;
  esac
done
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: $PY not found; run bash scripts/setup.sh --cuda (or set PYTHON)" >&2
  exit 2
fi

# name | time limit (s) | command. The limits add up to 470 s (7 min 50 s).
STEPS=(
  "build|30|$PY scripts/check_cuda_build.py"
  "ops|40|$PY benchmarks/device_check.py ops"
  "extract|100|$PY benchmarks/device_check.py extract --frames 200"
  "epoch|240|$PY benchmarks/device_check.py epoch --scale 0.1"
  "autocast|60|$PY benchmarks/device_check.py autocast"
)

failed=0
started=$(date +%s)
[ "$DRY_RUN" = 1 ] || logs=$(mktemp -d -t device_check.XXXXXX)
for step in "${STEPS[@]}"; do
  IFS='|' read -r name limit command <<<"$step"
  if [ "$DRY_RUN" = 1 ]; then
    echo "[$name] limit ${limit} s: $command"
    if [ "$name" = build ]; then
      echo "would check mmcv's extension for SASS (sm_80, sm_90) and registered CUDA ops, without a GPU"
      continue
    fi
    # shellcheck disable=SC2086
    $command --dry-run || failed=$((failed + 1))
    continue
  fi
  step_start=$(date +%s)
  # shellcheck disable=SC2086
  timeout --kill-after=10 "$limit" $command >"$logs/$name.out" 2>"$logs/$name.err"
  status=$?
  step_s=$(( $(date +%s) - step_start ))
  if [ "$name" = build ]; then
    # One line per check, then "N passed, N failed".
    fails=$(grep '^FAIL' "$logs/$name.out" | sed 's/^FAIL *//' | head -3 | paste -sd ';' -)
    line="build: $(tail -1 "$logs/$name.out")${fails:+ (first failures: $fails)}"
  else
    line=$(grep "^$name: " "$logs/$name.out" | tail -1)
  fi
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "[$name] TIMED OUT after ${limit} s (output: $logs/$name.out, $logs/$name.err)"
    failed=$((failed + 1))
  elif [ "$status" -ne 0 ]; then
    echo "[$name] FAILED (exit $status, ${step_s} s): ${line:-no result line} (output: $logs/$name.out, $logs/$name.err)"
    tail -3 "$logs/$name.err" | sed "s/^/[$name]   /"
    failed=$((failed + 1))
  else
    echo "[$name] ${step_s} s: $line"
  fi
done
echo "device check: $(( ${#STEPS[@]} - failed )) of ${#STEPS[@]} steps ok in $(( $(date +%s) - started )) s"
exit "$failed"

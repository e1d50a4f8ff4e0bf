#!/usr/bin/env bash
# Idempotent environment setup: creates .venv/, installs numpy and torch (CPU), builds
# mmcv with its CPU ops, then installs this project. A second run is a no-op
# apart from a quick check.
#
#   bash scripts/setup.sh          # CPU (the default)
#   bash scripts/setup.sh --cuda   # CUDA build of torch + mmcv's CUDA ops (docs/gpu.md)
#
# MOSA_VENV=DIR puts the environment somewhere other than .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA=0
for arg in "$@"; do
  case "$arg" in
    --cuda) CUDA=1 ;;
    *) echo "usage: bash scripts/setup.sh [--cuda]" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
VENV="${MOSA_VENV:-.venv}"
STAMP="$VENV/.mosa-installed"
if [ "$CUDA" = 1 ]; then
  exec bash scripts/setup_cuda.sh "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

# Hash of everything that decides what gets installed; a change re-runs pip.
want_hash=$(cat pyproject.toml scripts/setup.sh constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_hash" ]; then
  echo "[setup] environment up to date ($VENV)"
  exit 0
fi

start=$(date +%s)
# setuptools <81 still ships pkg_resources, which mmcv's setup.py imports;
# torch 2.13 needs >=77.
"${PIP[@]}" "pip>=24" "setuptools>=77,<81" wheel
# numpy before anything imports torch (the checks below, mmcv's build under
# --no-build-isolation): torch imported without numpy prints "Failed to
# initialize NumPy: No module named 'numpy'". Same pin as pyproject.toml.
"${PIP[@]}" -c constraints.txt "numpy>=1.26"
# torch next and pinned to the CPU build: an unpinned torch pulls a
# multi-GB CUDA build.
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch (CPU)"
  "${PIP[@]}" "torch==2.13.0"
fi
if ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  # A CUDA build of torch (installed into .venv by the user beforehand) gets
  # mmcv's CUDA ops too; FORCE_CUDA builds them even where no GPU is visible.
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)"; then
    echo "[setup] building mmcv 2.1.0 with CPU and CUDA ops (torch has CUDA; needs nvcc, much longer than the CPU build)"
    export FORCE_CUDA=1
  else
    echo "[setup] building mmcv 2.1.0 with CPU ops (about 10 min on 2 cores the first time; pip caches the wheel)"
  fi
  MMCV_WITH_OPS=1 "${PIP[@]}" --no-build-isolation -c constraints.txt "mmcv==2.1.0"
fi
echo "[setup] installing the project"
# Every other package at the exact version of constraints.txt, the
# environment the committed outputs came from (a newer one changes them).
"${PIP[@]}" -c constraints.txt -e ".[dev]"
echo "$want_hash" > "$STAMP"
echo "[setup] done in $(( $(date +%s) - start )) s"

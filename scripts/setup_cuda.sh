#!/usr/bin/env bash
# GPU environment: `bash scripts/setup.sh --cuda` runs this (docs/gpu.md).
#
# Installs the CUDA build of torch 2.13 from PyPI, the CUDA compiler and
# headers of the same CUDA release from PyPI (no system CUDA toolkit needed),
# builds mmcv 2.1.0 with its CPU and CUDA ops, installs this project, then
# checks the build with scripts/check_cuda_build.py. Compiling needs no GPU,
# so this works on a machine without one.
#
# Environment:
#   MOSA_VENV              where the environment goes (default .venv)
#   TORCH_CUDA_ARCH_LIST   GPU architectures to compile for (default "8.0;9.0+PTX":
#                          SASS for A100 / RTX 30-40 and H100 / H200, and PTX that
#                          newer GPUs compile when loading)
#   MAX_JOBS               parallel compiler jobs (default: number of cores; each
#                          compiler job needs up to 3 GB of memory)
#   CUDA_HOME              use this CUDA toolkit (nvcc, headers) instead of PyPI's
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${1:-${MOSA_VENV:-.venv}}"
STAMP="$VENV/.mosa-installed"
TORCH_PIN="torch===2.13.0"  # ===: the PyPI build itself (CUDA 13.0), never a local "+cpu" one
MMCV_VERSION=2.1.0

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup --cuda] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

want_hash=$( { cat pyproject.toml scripts/setup.sh scripts/setup_cuda.sh; echo "cuda ${TORCH_CUDA_ARCH_LIST:-}"; } | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_hash" ]; then
  echo "[setup --cuda] environment up to date ($VENV)"
  exit 0
fi

start=$(date +%s)
"${PIP[@]}" "pip>=24" "setuptools>=77,<81" wheel ninja
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
  echo "[setup --cuda] installing the CUDA build of torch 2.13.0 (about 2.7 GB of wheels)"
  "${PIP[@]}" "$TORCH_PIN" "numpy>=1.26"
fi
cuda_version=$("$PY" -c "import torch; print(torch.version.cuda)")
site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

if [ -z "${CUDA_HOME:-}" ]; then
  # PyPI's CUDA 13 packages share one tree, nvidia/cu13/{bin,include,lib,nvvm}:
  # nvcc, its front end and NVVM, the runtime headers and CCCL (thrust, cub).
  echo "[setup --cuda] installing nvcc and the headers of CUDA $cuda_version (about 100 MB)"
  "${PIP[@]}" "cuda-toolkit[nvcc,cccl,cudart]==${cuda_version}.*"
  CUDA_HOME="$site/nvidia/cu${cuda_version%%.*}"
  # The runtime wheel ships only libcudart.so.13; the extension links with -lcudart.
  if [ ! -e "$CUDA_HOME/lib/libcudart.so" ]; then
    ln -s "$(basename "$(ls "$CUDA_HOME"/lib/libcudart.so.* | head -1)")" "$CUDA_HOME/lib/libcudart.so"
  fi
fi
export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH"
echo "[setup --cuda] nvcc: $("$CUDA_HOME/bin/nvcc" --version | tail -1)"

if ! "$PY" scripts/check_cuda_build.py >/dev/null 2>&1; then
  # Built from the sdist in a folder inside the environment, not in pip's
  # temporary one: an interrupted build resumes where it stopped (ninja).
  # --no-cache-dir: pip's wheel cache may hold a CPU-only mmcv 2.1.0 wheel
  # from a CPU install, and must not keep this one for a later CPU install.
  src="$VENV/src"
  if [ ! -f "$src/mmcv-$MMCV_VERSION/setup.py" ]; then
    mkdir -p "$src"
    "$PY" -m pip download --disable-pip-version-check -q --no-cache-dir --no-deps \
      --no-binary :all: --no-build-isolation -d "$src" "mmcv==$MMCV_VERSION"
    tar -xzf "$src/mmcv-$MMCV_VERSION.tar.gz" -C "$src"
  fi
  "$PY" -m pip uninstall --disable-pip-version-check -q -y mmcv 2>/dev/null || true
  export FORCE_CUDA=1 MMCV_WITH_OPS=1
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0+PTX}"
  export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
  echo "[setup --cuda] building mmcv $MMCV_VERSION with CPU and CUDA ops for $TORCH_CUDA_ARCH_LIST," \
    "$MAX_JOBS jobs (about 70 min on 2 cores with MAX_JOBS=1)"
  "${PIP[@]}" --no-cache-dir --no-build-isolation "$src/mmcv-$MMCV_VERSION"
  rm -rf "$src/mmcv-$MMCV_VERSION/build"
fi
echo "[setup --cuda] installing the project"
"${PIP[@]}" -e ".[dev]"
"$PY" scripts/check_cuda_build.py
echo "$want_hash" > "$STAMP"
echo "[setup --cuda] done in $(( $(date +%s) - start )) s"

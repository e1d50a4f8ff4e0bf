#!/usr/bin/env bash
# The preregistered paired ablation (docs/synthetic_benchmark.md section 6, docs/ablation.md),
# PredCls, end to end in one command.
# Data seed 0 is the default pipeline's own data (`dvc repro` first builds or reuses it);
# every other data seed gets its own synthetic root, detector, ROI features and motion table
# under data/abl/ and features/abl/. Then every (data seed, variant, training seed) trains
# in one process and the paired table is rendered into metrics/ablation/.
# Usage: bash scripts/paired_ablation.sh [EPOCHS] [TRAIN_SEEDS] [DATA_SEEDS] [EXTRA_OVERRIDES]
# EXTRA_OVERRIDES: ';'-separated params overrides applied to every run.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-$(python -c 'from pipeline.params import load_params; print(load_params().train.epochs)')}"
SEEDS="${2:-0,1,2,3,4}"
DATA_SEEDS="${3:-0,1,2}"
EXTRA="${4:-}"
OUT=metrics/ablation
mkdir -p "$OUT"
data_overrides() {  # $1 = data seed; seed 0 = the default pipeline's caches
  if [ "$1" = 0 ]; then echo "${EXTRA}"; return; fi
  local d=features/abl/d$1
  echo "synth.seed=$1;synth.out_dir=data/abl/d$1;dataset.root=data/abl/d$1;dataset.index_dir=$d/index;extract.out_dir=$d/roi;extract.metrics_path=$d/extract.json;motion.out_path=$d/motion.parquet;detector.work_dir=models/abl/d$1;detector.metrics_path=$d/detector.json;text.out_path=features/text/text.h5${EXTRA:+;$EXTRA}"
}
dvc repro text motion probe
data_args=()
for seed in ${DATA_SEEDS//,/ }; do
  data_args+=(--data "d$seed:$(data_overrides "$seed")")
  [ "$seed" = 0 ] && continue
  dir=features/abl/d$seed
  mkdir -p "$dir"
  python - "$(data_overrides "$seed")" "$dir/params.yaml" <<'PY'
import sys, yaml
from pipeline.training.ablation import apply_overrides
settings = yaml.safe_load(open("params.yaml"))
yaml.safe_dump(apply_overrides(settings, [o for o in sys.argv[1].split(";") if o]), open(sys.argv[2], "w"))
PY
  if [ ! -f "$dir/motion.parquet" ]; then
    python -m pipeline.cli synth "data/abl/d$seed" --params "$dir/params.yaml"
    python -m pipeline.cli index --params "$dir/params.yaml"
    python -m pipeline.cli train-detector --params "$dir/params.yaml"
    python -m pipeline.cli extract --params "$dir/params.yaml"
    python -m pipeline.cli motion --params "$dir/params.yaml"
  fi
  python -m pipeline.cli probe --params "$dir/params.yaml" --out "$OUT/probe_d$seed.json"
done
python -m pipeline.cli ablate --in-process --modes predcls --seeds "$SEEDS" --epochs "$EPOCHS" \
  --runs "$OUT/runs.json" "${data_args[@]}"
# the table goes where the report reads it (report.ablation_dir); the raw runs stay in metrics/ablation/
python -m pipeline.cli ablation-table --runs "$OUT/runs.json" --out-dir "$(python -c 'from pipeline.params import load_params; print(load_params().report.ablation_dir)')"

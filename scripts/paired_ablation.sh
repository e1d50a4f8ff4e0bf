#!/usr/bin/env bash
# The fair paired ablation (docs/ablation.md), PredCls, in one process.
# Builds two synthetic data seeds (d0: synth.seed 0, d1: synth.seed 1) under
# data/abl/ and features/abl/, trains one detector on d0 (its ROI features serve
# both; PredCls gets ground-truth boxes and labels), then runs every
# (data seed, variant, training seed) and renders the paired table.
# Usage: bash scripts/paired_ablation.sh [EPOCHS] [TRAIN_SEEDS] [DETECTOR_ITERATIONS] [EXTRA_OVERRIDES]
# EXTRA_OVERRIDES: ';'-separated params overrides applied to every run (e.g. "model.d_model=64").
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-12}"
SEEDS="${2:-0,1,2}"
DET_ITERS="${3:-300}"
EXTRA="${4:-}"
OUT=metrics/ablation
mkdir -p "$OUT"
data_overrides() {  # $1 = data seed
  echo "synth.seed=$1;synth.out_dir=data/abl/d$1;dataset.root=data/abl/d$1;dataset.index_dir=features/abl/d$1/index;extract.out_dir=features/abl/d$1/roi;extract.metrics_path=features/abl/d$1/extract.json;motion.out_path=features/abl/d$1/motion.parquet;detector.work_dir=models/abl_detector;detector.metrics_path=features/abl/detector.json;detector.train.iterations=$DET_ITERS;detector.train.eval_split=val${EXTRA:+;$EXTRA}"
}
for seed in 0 1; do
  dir=features/abl/d$seed
  mkdir -p "$dir"
  python - "$(data_overrides $seed)" "$dir/params.yaml" <<'PY'
import sys, yaml
from pipeline.training.ablation import apply_overrides
settings = yaml.safe_load(open("params.yaml"))
yaml.safe_dump(apply_overrides(settings, sys.argv[1].split(";")), open(sys.argv[2], "w"))
PY
  if [ ! -f "$dir/motion.parquet" ]; then
    python -m pipeline.cli synth "data/abl/d$seed" --params "$dir/params.yaml"
    python -m pipeline.cli index --params "$dir/params.yaml"
    if [ "$seed" = 0 ]; then python -m pipeline.cli train-detector --params "$dir/params.yaml"; fi
    python -m pipeline.cli extract --params "$dir/params.yaml"
    python -m pipeline.cli motion --params "$dir/params.yaml"
  fi
  python -m pipeline.cli probe --params "$dir/params.yaml" --out "$OUT/probe_d$seed.json"
done
python -m pipeline.cli ablate --in-process --modes predcls --seeds "$SEEDS" --epochs "$EPOCHS" \
  --runs "$OUT/runs.json" --data "d0:$(data_overrides 0)" --data "d1:$(data_overrides 1)"
python -m pipeline.cli ablation-table --runs "$OUT/runs.json" --out-dir "$OUT"

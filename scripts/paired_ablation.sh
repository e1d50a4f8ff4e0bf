#!/usr/bin/env bash
# The fair paired ablation (docs/ablation.md), PredCls, run in one process per
# call. Needs the default pipeline's outputs (dvc repro) for data seed d0; data
# seed d1 is a second synthetic dataset indexed, extracted (with the same
# trained detector) and given motion attributes here, under data/ and features/s1/.
# Usage: bash scripts/paired_ablation.sh [EPOCHS] [TRAIN_SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS="${1:-12}"
SEEDS="${2:-0,1,2}"
D1="synth.seed=1;synth.out_dir=data/synth_ag_s1;dataset.root=data/synth_ag_s1;dataset.index_dir=features/s1/index;extract.out_dir=features/s1/roi;extract.metrics_path=features/s1/extract.json;motion.out_path=features/s1/motion.parquet"
mkdir -p features/s1 metrics/ablation
python - "$D1" <<'PY'
import sys, yaml
from pipeline.training.ablation import apply_overrides
settings = yaml.safe_load(open("params.yaml"))
yaml.safe_dump(apply_overrides(settings, sys.argv[1].split(";")), open("features/s1/params.yaml", "w"))
PY
if [ ! -f features/s1/motion.parquet ]; then
  python -m pipeline.cli synth data/synth_ag_s1 --params features/s1/params.yaml
  python -m pipeline.cli index --params features/s1/params.yaml
  python -m pipeline.cli extract --params features/s1/params.yaml
  python -m pipeline.cli motion --params features/s1/params.yaml
  python -m pipeline.cli probe --params features/s1/params.yaml --out features/s1/probe.json
fi
python -m pipeline.cli ablate --in-process --modes predcls --seeds "$SEEDS" --epochs "$EPOCHS" \
  --runs metrics/ablation/runs.json --data "d0:" --data "d1:$D1"
python -m pipeline.cli ablation-table --runs metrics/ablation/runs.json --out-dir metrics/ablation

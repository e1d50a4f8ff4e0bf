"""Where the stages write, and the constants their producers and readers share.

The trainer writes what the report, the search index and ``mosa show`` read;
both sides take the paths from here, so a viewer never imports the trainer
(and its DVC stage never depends on the training code). dvc.yaml declares the
same paths; ``tests/test_dvc_dependencies.py`` runs each stage with only its
declared files.

Per mode, the evaluate stage writes (relative to the project root):

* ``predictions/<mode>.parquet`` and ``predictions/<mode>_relation_embeddings.npy``
  (ASM's text-space embedding of each predictions row, read by the search
  stage so it does not run the head again);
* ``metrics/<mode>.json`` and ``plots/predicate_recall/<mode>.csv``;

and the train stage ``dvclive/<mode>/`` (per-epoch losses and validation
R@K/mR@K) and ``train.out_dir/<mode>/`` (``model.pt``, ``checkpoint/last.pt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.params import DetectorParams

# The K of every headline number: validation (model selection), the
# per-predicate tables, the report and the ablation all read R@20 / mR@20.
RECALL_K = 20
SELECTION_METRIC = f"R@{RECALL_K}"

# The probe stage's certificate of the benchmark.
PROBE_METRICS = Path("metrics/probe.json")

def run_log_dir(output: str | Path) -> Path:
    """``<output>.logs``, beside a stage's output: its timings and framework logs.

    They change from run to run, so they stay outside what DVC hashes: a
    rerun that reproduces the same weights or cache then leaves the output's
    hash, every later stage and the git-tracked metrics as they were. Git
    ignores them; DVC does not track them.
    """
    output = Path(output)
    return output.parent / f"{output.name}.logs"


# The checkpoint the train_detector stage writes into detector.work_dir.
TRAINED_DETECTOR_NAME = "detector.pth"
# The STTran AG detector converted to mmdet's format by ``mosa import-sttran``.
IMPORTED_STTRAN_DETECTOR_NAME = "faster_rcnn_ag_mmdet.pth"
# The relation head kept by the train stage, in train.out_dir/<mode>/.
HEAD_MODEL_NAME = "model.pt"


@dataclass(frozen=True)
class OutputPaths:
    """Where the evaluate stage writes for one mode; dvc.yaml declares the same paths."""

    predictions: Path
    relation_embeddings: Path
    metrics: Path
    predicate_recall: Path


def output_paths(mode: str, root: Path = Path(".")) -> OutputPaths:
    """The evaluate stage's outputs for ``mode``, relative to the project root ``root``."""
    return OutputPaths(
        predictions=root / "predictions" / f"{mode}.parquet",
        relation_embeddings=root / "predictions" / f"{mode}_relation_embeddings.npy",
        metrics=root / "metrics" / f"{mode}.json",
        predicate_recall=root / "plots" / "predicate_recall" / f"{mode}.csv",
    )


def live_dir(mode: str) -> Path:
    """dvclive folder of a mode's training curves (declared in dvc.yaml)."""
    return Path("dvclive") / mode


def head_model_path(out_dir: str | Path, mode: str) -> Path:
    """The relation head the train stage keeps for ``mode``."""
    return Path(out_dir) / mode / HEAD_MODEL_NAME


def detector_checkpoint(detector: DetectorParams) -> Path:
    """The checkpoint extraction uses: the user's (``detector.checkpoint``), or the train_detector stage's."""
    if detector.checkpoint:
        return Path(detector.checkpoint)
    return Path(detector.work_dir) / TRAINED_DETECTOR_NAME

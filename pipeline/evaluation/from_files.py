"""End-to-end evaluation: an AG root (or index tables) and a predictions file in, results out."""

from __future__ import annotations

from pathlib import Path

from pipeline.evaluation.evaluator import ConstraintResult, evaluate
from pipeline.evaluation.ground_truth import GroundTruth, ground_truth_for_mode
from pipeline.evaluation.predictions import align_predictions, read_predictions
from pipeline.params import DatasetParams, EvaluateParams


def load_ground_truth(ag_root: str | Path, split: str, mode: str, dataset: DatasetParams | None = None) -> GroundTruth:
    """Ground truth straight from an Action Genome root (only the annotation files are read).

    Validation videos are carved from train exactly as the index stage does
    (``dataset.val_fraction`` and ``dataset.split_seed``), so ``train`` and
    ``val`` mean the same frames here as in the pipeline; ``test`` is untouched.
    """
    from pipeline.ag.reader import assign_val_split, load_action_genome

    dataset = dataset or DatasetParams()
    index = load_action_genome(ag_root, filter_small=False, small_box_side=dataset.small_box_side)
    index = assign_val_split(index, dataset.val_fraction, dataset.split_seed)
    return ground_truth_for_mode(index.frames, index.objects, split, mode)


def evaluate_predictions_file(
    predictions: str | Path,
    ground_truth: GroundTruth,
    settings: EvaluateParams | None = None,
    constraints: tuple[str, ...] | None = None,
) -> dict[str, ConstraintResult]:
    """Read, validate and evaluate a predictions Parquet file."""
    aligned = align_predictions(read_predictions(predictions), ground_truth, str(predictions))
    return evaluate(ground_truth, aligned, settings, constraints)

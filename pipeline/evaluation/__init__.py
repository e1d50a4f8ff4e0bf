"""Action Genome scene-graph evaluation: R@K / mR@K with, semi and no constraint.

Typical use::

    gt = build_ground_truth(frames, objects, split="test")
    pred = align_predictions(read_predictions("predictions.parquet"), gt)
    results = evaluate(gt, pred, EvaluateParams())
    results["with"].metrics()  # {"R@10": ..., "mR@10": ...} in percent
"""

from pipeline.boxes import rowwise_iou
from pipeline.constants import MODES
from pipeline.evaluation.evaluator import (
    CONSTRAINTS,
    RECALL_KS,
    ConstraintResult,
    evaluate,
)
from pipeline.evaluation.from_files import evaluate_predictions_file, load_ground_truth
from pipeline.evaluation.ground_truth import (
    GroundTruth,
    build_ground_truth,
    drop_small_objects,
    ground_truth_for_mode,
)
from pipeline.evaluation.predictions import (
    PREDICTION_SCHEMA,
    AlignedPredictions,
    Predictions,
    align_predictions,
    predictions_table,
    read_predictions,
    validate_predictions,
    write_predictions,
)
from pipeline.evaluation.result_formats import format_table, per_predicate_records, results_json

__all__ = [
    "CONSTRAINTS",
    "MODES",
    "PREDICTION_SCHEMA",
    "RECALL_KS",
    "AlignedPredictions",
    "ConstraintResult",
    "GroundTruth",
    "Predictions",
    "align_predictions",
    "build_ground_truth",
    "drop_small_objects",
    "evaluate",
    "evaluate_predictions_file",
    "format_table",
    "ground_truth_for_mode",
    "load_ground_truth",
    "per_predicate_records",
    "rowwise_iou",
    "predictions_table",
    "read_predictions",
    "results_json",
    "validate_predictions",
    "write_predictions",
]

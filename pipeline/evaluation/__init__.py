"""Action Genome scene-graph evaluation: R@K / mR@K with, semi and no constraint.

Typical use::

    gt = build_ground_truth(frames, objects, split="test")
    pred = align_predictions(read_predictions("predictions.parquet"), gt)
    results = evaluate(gt, pred, EvaluateParams())
    results["with"].metrics()  # {"R@10": ..., "mR@10": ...} in percent
"""

from pipeline.evaluation.evaluator import (
    CONSTRAINTS,
    RECALL_KS,
    ConstraintResult,
    evaluate,
    pairwise_iou,
)
from pipeline.evaluation.ground_truth import GroundTruth, build_ground_truth, drop_small_objects
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

__all__ = [
    "CONSTRAINTS",
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
    "pairwise_iou",
    "predictions_table",
    "read_predictions",
    "validate_predictions",
    "write_predictions",
]

"""Which detected pairs a picture or a scene graph shows: a score threshold, then class-aware NMS.

SGDet pairs carry every detection the extraction's post-processing kept
(class score above ``detector.postprocess.score_threshold``, up to
``max_objects`` per frame), and a pair's ``object_score`` is the detector's
score times the head's class probability. Drawn as they are, weak and
overlapping boxes of one object crowd the picture. What is shown:

1. pairs with ``object_score >= min_score`` (:data:`MIN_OBJECT_SCORE`);
2. among those, per object class, greedy NMS at IoU :data:`NMS_IOU`
   (highest score first), so one object keeps one box while two classes on
   the same spot both stay.

PredCls pairs (annotated boxes, score 1) all pass the threshold; NMS
only merges two of them if they are same-class boxes overlapping more than
``NMS_IOU``. The predictions Parquet keeps every pair; only overlays and
``mosa predict``'s scene-graph JSON are filtered.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.boxes import pairwise_iou

MIN_OBJECT_SCORE = 0.3
NMS_IOU = 0.5


def class_aware_nms(
    boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, iou: float
) -> np.ndarray:
    """Indices kept by greedy per-class NMS, best score first (ties: lower index first)."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    kept: list[int] = []
    for i in order:
        same = [j for j in kept if labels[j] == labels[i]]
        if not same or pairwise_iou(boxes[i][None], boxes[same])[0].max() <= iou:
            kept.append(int(i))
    return np.array(kept, dtype=np.int64)


def shown_pairs(
    pairs: pl.DataFrame, min_score: float = MIN_OBJECT_SCORE, nms_iou: float = NMS_IOU
) -> pl.DataFrame:
    """One frame's pairs that are drawn: score >= ``min_score``, then class-aware NMS; best score first."""
    confident = pairs.filter(pl.col("object_score") >= min_score)
    if confident.height <= 1:
        return confident
    boxes = np.asarray(confident["object_box"].to_list(), dtype=np.float64)
    labels = confident["object_label"].to_numpy()
    scores = confident["object_score"].to_numpy().astype(np.float64)
    return confident[class_aware_nms(boxes, labels, scores, nms_iou).tolist()]

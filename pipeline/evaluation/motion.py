"""Metrics that can see motion: the at-hand contact classes.

R@K with constraint ranks a frame's (few) pairs and says little about the
four classes only motion separates. This module scores them directly. An
*at-hand* test pair (:mod:`pipeline.ag.at_hand`) is matched to
the prediction of the same frame and object class whose object box overlaps
it most (IoU >= the evaluation threshold); its predicted motion class is the
argmax of the contacting scores over the four at-hand predicates. A pair
with no matching prediction (SGDet) counts as ``missed``.

* ``motion_macro_recall`` — the mean over the four classes of their recall
  (the balanced accuracy), in percent;
* ``confusion`` — ``{true class: {predicted class or "missed": count}}``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.ag.at_hand import AT_HAND_PREDICATES, at_hand_pairs
from pipeline.boxes import rowwise_iou
from pipeline.constants import CONTACTING, PREDICATE_INDEX

MISSED = "missed"


def at_hand_predictions(
    predictions: pl.DataFrame,
    objects: pl.DataFrame,
    iou_threshold: float,
    legacy_plus_one: bool = True,
) -> pl.DataFrame:
    """One row per at-hand pair of ``objects``: video, frame, object_class, ``truth`` and ``predicted`` class names."""
    pairs = at_hand_pairs(objects).with_row_index("_pair")
    columns = [PREDICATE_INDEX[name] - CONTACTING.start for name in AT_HAND_PREDICATES]
    candidates = pairs.select("_pair", "frame", "object_class", "x1", "y1", "x2", "y2").join(
        predictions.select(
            "frame",
            pl.col("object_label").cast(pl.Int16).alias("object_class"),
            "object_box",
            pl.concat_list(pl.col("contacting").list.get(c) for c in columns).alias(
                "_motion_scores"
            ),
        ),
        on=["frame", "object_class"],
        how="inner",
    )
    predicted: dict[int, str] = {}
    if candidates.height:
        gt_box = candidates.select("x1", "y1", "x2", "y2").to_numpy()
        pred_box = np.asarray(candidates["object_box"].to_list(), dtype=np.float64)
        iou = rowwise_iou(gt_box, pred_box, legacy_plus_one)
        best = (
            candidates.with_columns(_iou=pl.Series(iou))
            .filter(pl.col("_iou") >= iou_threshold)
            .sort("_pair", "_iou", descending=[False, True])
            .unique("_pair", keep="first", maintain_order=True)
        )
        for pair, scores in zip(
            best["_pair"].to_list(), best["_motion_scores"].to_list(), strict=True
        ):
            predicted[pair] = AT_HAND_PREDICATES[int(np.argmax(scores))]
    names = {PREDICATE_INDEX[name]: name for name in AT_HAND_PREDICATES}
    return pairs.select(
        "video",
        "frame",
        "object_class",
        truth=pl.col("motion_class").replace_strict(names, return_dtype=pl.String),
        predicted=pl.Series(
            [predicted.get(pair, MISSED) for pair in pairs["_pair"].to_list()], dtype=pl.String
        ),
    )


def motion_metrics(
    predictions: pl.DataFrame,
    objects: pl.DataFrame,
    iou_threshold: float,
    legacy_plus_one: bool = True,
) -> dict:
    """Motion macro recall and the at-hand confusion matrix of a predictions table on ``objects`` (one split)."""
    pairs = at_hand_predictions(predictions, objects, iou_threshold, legacy_plus_one)
    confusion = {
        truth: {name: 0 for name in (*AT_HAND_PREDICATES, MISSED)} for truth in AT_HAND_PREDICATES
    }
    for truth, predicted in pairs.select("truth", "predicted").iter_rows():
        confusion[truth][predicted] += 1
    recalls = {
        truth: row[truth] / sum(row.values()) if sum(row.values()) else None
        for truth, row in confusion.items()
    }
    present = [value for value in recalls.values() if value is not None]
    return {
        "motion_macro_recall": 100.0 * float(np.mean(present)) if present else None,
        "motion_class_recall": {k: None if v is None else 100.0 * v for k, v in recalls.items()},
        "at_hand_pairs": pairs.height,
        "confusion": confusion,
    }

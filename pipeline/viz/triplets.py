"""Triplets of one predicted or ground-truth pair as (subject, predicate, object) words.

Predictions follow the evaluator's *with* constraint: the argmax of each
predicate group, so a pair always shows three triplets (attention,
spatial, contacting). Spatial relations point from the object to the
person, as Action Genome annotates them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.boxes import rowwise_iou
from pipeline.constants import (
    GROUPS,
    OBJECT_CLASSES,
    PREDICATES,
    readable_object,
    readable_predicate,
)

# A pair whose object box overlaps a same-class annotated box this much takes its labels.
GT_MATCH_IOU = 0.5


@dataclass(frozen=True)
class Triplet:
    subject: str
    predicate: int  # global predicate index
    object: str
    score: float | None = None  # None for ground truth

    @property
    def group(self) -> str:
        return next(name for name, span in GROUPS.items() if span.start <= self.predicate < span.stop)

    def text(self) -> str:
        words = f"{self.subject} {readable_predicate(PREDICATES[self.predicate])} {self.object}"
        return words if self.score is None else f"{words} ({self.score:.2f})"


def _oriented(predicate: int, object_name: str, score: float | None) -> Triplet:
    if GROUPS["spatial"].start <= predicate < GROUPS["spatial"].stop:
        return Triplet(object_name, predicate, "person", score)
    return Triplet("person", predicate, object_name, score)


def object_name(object_class: int) -> str:
    """Short display name of an AG object index ('cup' for cup/glass/bottle)."""
    return readable_object(OBJECT_CLASSES[int(object_class)])


def predicted_triplets(object_class: int, attention: Sequence[float], spatial: Sequence[float], contacting: Sequence[float]) -> list[Triplet]:
    """The best predicate of each group (with constraint), with its probability."""
    name = object_name(object_class)
    triplets = []
    for probs, span in ((attention, GROUPS["attention"]), (spatial, GROUPS["spatial"]), (contacting, GROUPS["contacting"])):
        probs = np.asarray(probs, dtype=np.float64)
        best = int(probs.argmax())
        triplets.append(_oriented(span.start + best, name, float(probs[best])))
    return triplets


def ground_truth_triplets(object_class: int, predicates: Sequence[int]) -> list[Triplet]:
    """Every annotated predicate of one object, in global predicate order."""
    name = object_name(object_class)
    return [_oriented(int(p), name, None) for p in sorted(predicates)]


def ground_truth_predicates(pairs: pl.DataFrame, objects: pl.DataFrame) -> pl.Series:
    """Annotated predicates of each pair's object: the same-class object of its frame if boxes overlap.

    PredCls/SGCls pairs are the annotated boxes (IoU 1); an SGDet detection
    matching no annotation (or a wrong class) gets an empty list.
    """
    labelled = objects.select(
        "frame",
        pl.col("object_class").cast(pl.Int64),
        pl.concat_list("attention", "spatial", "contacting").alias("gt_predicates"),
        pl.concat_list("x1", "y1", "x2", "y2").alias("gt_box"),
    )
    joined = (
        pairs.select("frame", pl.col("object_label").cast(pl.Int64).alias("object_class"), "object_box")
        .with_row_index("row")
        .join(labelled, on=["frame", "object_class"], how="left")
        .sort("row")
    )
    found = joined["gt_box"].is_not_null().to_numpy()
    iou = np.zeros(len(joined))
    if found.any():
        gt_box = np.array(joined["gt_box"].filter(joined["gt_box"].is_not_null()).to_list(), dtype=np.float64)
        box = np.array(joined["object_box"].filter(joined["gt_box"].is_not_null()).to_list(), dtype=np.float64)
        iou[found] = rowwise_iou(gt_box, box, legacy_plus_one=False)
    matched = pl.Series("keep", iou >= GT_MATCH_IOU)
    empty = pl.lit([], dtype=pl.List(pl.Int16))
    result = joined.select(pl.when(matched).then(pl.col("gt_predicates")).otherwise(empty).cast(pl.List(pl.Int16)))
    return result.to_series().alias("gt_predicates")

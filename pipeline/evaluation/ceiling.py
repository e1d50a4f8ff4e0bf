"""The recall a perfect relation classifier reaches: what the protocol itself leaves unreachable.

Usage::

    ceiling = recall_ceiling(frames, objects, "test", "predcls", EvaluateParams(), ks=(20,))
    ceiling["with"]["R@20"]  # percent

With constraint a pair yields one predicate per group, so of an object with
two spatial labels (``in_front_of`` and ``on_the_side_of``) any classifier
misses one, and a frame with more than K / 3 pairs loses candidates to the
top-K cut. The ceiling is the recall of :func:`perfect_predictions`: ground-truth
boxes and labels, every annotated predicate scored 1 and every other cell
:data:`FLOOR`. Under the same small-box filter it is also the ceiling of
SGCls and SGDet, whose detections can only do worse.

Why a floor and not 0: the reference's semi branch recognises a row by two
of its cells being positive (see :mod:`pipeline.evaluation.evaluator`), so a
0/1 classifier would lose every spatial row without ``above``/``beneath``.
Softmax and sigmoid heads score every cell above 0.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.constants import GROUPS, PERSON_INDEX, check_mode
from pipeline.evaluation.evaluator import RECALL_KS, evaluate
from pipeline.evaluation.ground_truth import (
    OBJECT_BOX,
    PERSON_BOX,
    build_ground_truth,
    drop_small_objects,
)
from pipeline.evaluation.predictions import (
    align_predictions,
    predictions_table,
    validate_predictions,
)
from pipeline.params import EvaluateParams

FLOOR = 1e-3


def perfect_predictions(frames: pl.DataFrame, objects: pl.DataFrame) -> pl.DataFrame:
    """One predictions row per object of ``objects``: its ground-truth boxes and labels, its predicates scored 1."""
    table = objects.join(frames.select("frame", *PERSON_BOX), on="frame", how="left")
    distributions = {}
    for group, columns in GROUPS.items():
        scores = np.full((table.height, columns.stop - columns.start), FLOOR)
        labels = (
            pl.DataFrame({"row": np.arange(table.height), "predicate": table[group]})
            .explode("predicate")
            .drop_nulls()
        )
        scores[
            labels["row"].to_numpy(),
            labels["predicate"].to_numpy().astype(np.int64) - columns.start,
        ] = 1.0
        distributions[group] = scores
    ones = np.ones(table.height)
    return predictions_table(
        frame=table["frame"],
        subject_box=table.select(PERSON_BOX).to_numpy(),
        object_box=table.select(OBJECT_BOX).to_numpy(),
        subject_label=np.full(table.height, PERSON_INDEX),
        object_label=table["object_class"].to_numpy(),
        subject_score=ones,
        object_score=ones,
        **distributions,
    )


def recall_ceiling(
    frames: pl.DataFrame,
    objects: pl.DataFrame,
    split: str,
    mode: str,
    settings: EvaluateParams | None = None,
    ks: tuple[int, ...] = RECALL_KS,
) -> dict[str, dict[str, float]]:
    """``{constraint: {"R@K": ..., "mR@K": ...}}`` (percent) of the perfect classifier on ``split`` of an unfiltered index."""
    if check_mode(mode) != "predcls":
        frames, objects = drop_small_objects(frames, objects)
    truth = build_ground_truth(frames, objects, split)
    in_split = objects.filter(pl.col("frame").is_in(pl.Series(truth.frames.tolist()).implode()))
    table = perfect_predictions(frames, in_split)
    aligned = align_predictions(validate_predictions(table, "perfect predictions"), truth)
    return {
        constraint: result.metrics()
        for constraint, result in evaluate(truth, aligned, settings, ks=ks).items()
    }

"""Recall on held-out (predicate, object) combinations: what ASM's compositional claim is about.

A *held-out combination* is a contacting (predicate, object class) pair that
occurs in the test split's ground truth and never in the train split's. They
are read from the index's relations table, so the metric applies to any AG
root (on the synthetic benchmark they are the generator's held-out
combinations, docs/synthetic_benchmark.md section 2.5; on real AG, the rare
combinations that happen to be missing from train).

Per held-out ground-truth triplet (person, c, o) of the test split:

* ``R@20``: contacting recall@20 with constraint restricted to these
  triplets: the AG frame recall (:func:`pipeline.evaluation.evaluate`) over the
  frames that hold one, the candidates being all of the frame's predictions;
* ``argmax_accuracy``: the share of these triplets whose pair's contacting
  argmax is c (with constraint, every row's argmax is a candidate, so this
  is recall at a K that keeps every candidate: 3 x the most pairs in a frame).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.ag.held_out import held_out_triplets
from pipeline.constants import CONTACTING
from pipeline.evaluation.evaluator import evaluate
from pipeline.evaluation.ground_truth import GroundTruth
from pipeline.evaluation.predictions import align_predictions, validate_predictions
from pipeline.outputs import RECALL_K
from pipeline.params import EvaluateParams

HELD_OUT_K = RECALL_K


def held_out_combinations(relations: pl.DataFrame, split: str = "test", seen_split: str = "train") -> pl.DataFrame:
    """(predicate, object_class) contacting combinations of ``split`` that ``seen_split`` never has."""
    triplets = held_out_triplets(relations, split, seen_splits=(seen_split,))
    return triplets.select("predicate", "object_class").unique().sort("predicate", "object_class")


def restrict_ground_truth(truth: GroundTruth, combinations: pl.DataFrame) -> GroundTruth | None:
    """The contacting triplets of ``truth`` whose (predicate, object class) is in ``combinations``, and their frames.

    None when there is no such triplet.
    """
    wanted = {(int(p), int(o)) for p, o in combinations.select("predicate", "object_class").iter_rows()}
    contacting = (truth.predicate >= CONTACTING.start) & (truth.predicate < CONTACTING.stop)
    keep = contacting & np.fromiter(
        ((int(p), int(o)) in wanted for p, o in zip(truth.predicate, truth.object_class, strict=True)),
        dtype=bool,
        count=truth.num_triplets,
    )
    if not keep.any():
        return None
    frames, frame_index = np.unique(truth.frame_index[keep], return_inverse=True)
    return GroundTruth(
        frames=truth.frames[frames],
        frame_index=frame_index.astype(np.int64),
        subject_class=truth.subject_class[keep],
        predicate=truth.predicate[keep],
        object_class=truth.object_class[keep],
        subject_box=truth.subject_box[keep],
        object_box=truth.object_box[keep],
    )


def held_out_recall(
    predictions: pl.DataFrame, truth: GroundTruth, combinations: pl.DataFrame, settings: EvaluateParams
) -> dict:
    """``R@20``, ``argmax_accuracy`` (percent; None without held-out triplets), and counts (module docstring)."""
    subset = restrict_ground_truth(truth, combinations)
    counts = {"combinations": combinations.height, "pairs": 0 if subset is None else subset.num_triplets}
    if subset is None:
        return {f"R@{HELD_OUT_K}": None, "argmax_accuracy": None, **counts, "frames": 0}
    rows = predictions.filter(pl.col("frame").is_in(pl.Series(subset.frames.tolist(), dtype=pl.String).implode()))
    aligned = align_predictions(validate_predictions(rows, "held-out predictions"), subset)
    most_pairs = int(np.bincount(aligned.frame_index, minlength=1).max()) if len(aligned) else 1
    every = 3 * max(most_pairs, 1)
    ks = tuple(sorted({HELD_OUT_K, every}))
    result = evaluate(subset, aligned, settings, constraints=("with",), ks=ks)["with"]
    hits = result.predicate_hits[ks.index(every)].sum()
    return {
        f"R@{HELD_OUT_K}": 100.0 * result.recall(HELD_OUT_K),
        "argmax_accuracy": 100.0 * float(hits) / subset.num_triplets,
        **counts,
        "frames": subset.num_frames,
    }

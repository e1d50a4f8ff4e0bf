"""A straightforward per-frame evaluator written from the protocol, as a test oracle.

It follows the reference's structure frame by frame: stack the 3P rows
(attention rows, spatial rows with the pair reversed, contacting rows), build
the candidate list of the constraint, sort it, and match it against the
ground truth triplet by triplet. Sorts are stable, which fixes the order of
exact score ties the way ``pipeline.evaluation.evaluator`` documents.

Shared by the tests (to check the vectorised evaluator) and by
``benchmarks/bench_evaluator.py`` (as the baseline).
"""

from __future__ import annotations

import numpy as np

from pipeline.constants import ATTENTION, CONTACTING, NUM_PREDICATES, SPATIAL
from pipeline.evaluation.ground_truth import GroundTruth
from pipeline.evaluation.predictions import AlignedPredictions
from pipeline.params import EvaluateParams

KS = (10, 20, 50, 100)


def box_iou(gt: np.ndarray, pred: np.ndarray, legacy_plus_one: bool) -> float:
    one = 1.0 if legacy_plus_one else 0.0
    iw = min(gt[2], pred[2]) - max(gt[0], pred[0]) + one
    if iw <= 0:
        return 0.0
    ih = min(gt[3], pred[3]) - max(gt[1], pred[1]) + one
    if ih <= 0:
        return 0.0
    gt_area = (gt[2] - gt[0] + one) * (gt[3] - gt[1] + one)
    pred_area = (pred[2] - pred[0] + one) * (pred[3] - pred[1] + one)
    return float(iw * ih / (gt_area + pred_area - iw * ih))


def frame_candidates(pred: AlignedPredictions, rows: np.ndarray, constraint: str, settings: EvaluateParams) -> list[tuple]:
    """Ranked candidates of one frame: (subject row, object row, 'subject'/'object' order, predicate)."""
    # Stack the rows: (pair, 26-vector, reversed?) in reference order.
    stacked = []
    for group, reverse in ((ATTENTION, False), (SPATIAL, True), (CONTACTING, False)):
        for pair in rows:
            vector = np.zeros(NUM_PREDICATES)
            vector[group] = pred.distribution[pair, group]
            stacked.append((pair, vector, reverse))
    weight = {pair: pred.subject_score[pair] * pred.object_score[pair] for pair in rows}

    candidates = []  # (pair, reverse, predicate, score) in candidate order
    if constraint == "with":
        for pair, vector, reverse in stacked:
            candidates.append((pair, reverse, int(np.argmax(vector)), weight[pair] * vector.max()))
    elif constraint == "semi":
        for pair, vector, reverse in stacked:
            if vector[0] + vector[1] > 0:
                candidates.append((pair, reverse, int(np.argmax(vector)), weight[pair] * vector.max()))
            elif vector[3] + vector[4] > 0 or vector[9] + vector[10] > 0:
                for k in np.flatnonzero(vector > settings.semi_threshold):
                    candidates.append((pair, reverse, int(k), weight[pair] * vector[k]))
    else:
        cells = [
            (pair, reverse, k, weight[pair] * vector[k])
            for pair, vector, reverse in stacked
            for k in range(NUM_PREDICATES)
        ]
        scores = np.array([c[3] for c in cells])
        keep = np.argsort(-scores, kind="stable")[: settings.no_constraint_top_k]
        candidates = [cells[i] for i in keep]

    if not candidates:
        return []
    scores = np.array([c[3] for c in candidates])
    order = np.argsort(scores, kind="stable")[::-1]
    return [candidates[i] for i in order]


def evaluate_oracle(
    gt: GroundTruth, pred: AlignedPredictions, constraint: str, settings: EvaluateParams | None = None, ks=KS
) -> dict:
    """Per-frame recalls and per-predicate hits/counts of one constraint."""
    settings = settings or EvaluateParams()
    frame_recall = np.zeros((len(ks), gt.num_frames))
    hits = np.zeros((len(ks), NUM_PREDICATES), dtype=np.int64)
    counts = np.zeros(NUM_PREDICATES, dtype=np.int64)
    pair_rows = {f: [] for f in range(gt.num_frames)}
    for pair, f in enumerate(pred.frame_index):
        pair_rows[int(f)].append(pair)
    gt_rows = {f: [] for f in range(gt.num_frames)}
    for t, f in enumerate(gt.frame_index):
        gt_rows[int(f)].append(t)

    for f in range(gt.num_frames):
        triplets = gt_rows[f]
        for t in triplets:
            counts[gt.predicate[t]] += 1
        ranked = frame_candidates(pred, np.array(pair_rows[f], dtype=np.int64), constraint, settings)
        # Rank of the first candidate that hits each triplet.
        first_hit = {}
        for t in triplets:
            for rank, (pair, reverse, predicate, _score) in enumerate(ranked):
                if reverse:
                    s_label, o_label = pred.object_label[pair], pred.subject_label[pair]
                    s_box, o_box = pred.object_box[pair], pred.subject_box[pair]
                else:
                    s_label, o_label = pred.subject_label[pair], pred.object_label[pair]
                    s_box, o_box = pred.subject_box[pair], pred.object_box[pair]
                if (
                    predicate == gt.predicate[t]
                    and s_label == gt.subject_class[t]
                    and o_label == gt.object_class[t]
                    and box_iou(gt.subject_box[t], s_box, settings.legacy_plus_one) >= settings.iou_threshold
                    and box_iou(gt.object_box[t], o_box, settings.legacy_plus_one) >= settings.iou_threshold
                ):
                    first_hit[t] = rank
                    break
        for i, k in enumerate(ks):
            hit = [t for t in triplets if first_hit.get(t, k) < k]
            frame_recall[i, f] = len(hit) / len(triplets)
            for t in hit:
                hits[i, gt.predicate[t]] += 1
    return {"frame_recall": frame_recall, "predicate_hits": hits, "predicate_counts": counts}

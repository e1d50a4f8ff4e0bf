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

from pipeline.constants import (
    ATTENTION,
    CONTACTING,
    NUM_OBJECT_CLASSES,
    NUM_PREDICATES,
    PERSON_INDEX,
    SPATIAL,
)
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


def frame_candidates(
    pred: AlignedPredictions, pairs: np.ndarray, constraint: str, settings: EvaluateParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranked candidates of one frame as arrays (pair, reversed?, predicate)."""
    # The 3P rows in reference order: attention rows, spatial rows (pair
    # reversed), contacting rows; each a 26-vector with zeros off its group.
    n = len(pairs)
    rows = np.zeros((3 * n, NUM_PREDICATES))
    for r, group in enumerate((ATTENTION, SPATIAL, CONTACTING)):
        rows[r * n : (r + 1) * n, group] = pred.distribution[pairs][:, group]
    row_pair = np.tile(pairs, 3)
    row_reversed = np.repeat([False, True, False], n)
    weight = pred.subject_score[row_pair] * pred.object_score[row_pair]

    if constraint == "with":
        cand_row = np.arange(3 * n)
        cand_pred = rows.argmax(axis=1)
        cand_score = weight * rows.max(axis=1)
    elif constraint == "semi":
        cand_row, cand_pred, cand_score = [], [], []
        for i, vector in enumerate(rows):
            if vector[0] + vector[1] > 0:  # an attention row
                picked = [int(np.argmax(vector))]
            elif vector[3] + vector[4] > 0 or vector[9] + vector[10] > 0:  # spatial / contacting
                picked = np.flatnonzero(vector > settings.semi_threshold).tolist()
            else:
                picked = []
            for k in picked:
                cand_row.append(i)
                cand_pred.append(k)
                cand_score.append(weight[i] * vector[k])
        cand_row, cand_pred, cand_score = np.array(cand_row, dtype=np.int64), np.array(cand_pred, dtype=np.int64), np.array(cand_score)
    else:
        overall = weight[:, None] * rows
        keep = np.argsort(-overall.ravel(), kind="stable")[: settings.no_constraint_top_k]
        cand_row, cand_pred = np.divmod(keep, NUM_PREDICATES)
        cand_score = overall.ravel()[keep]

    order = np.argsort(cand_score, kind="stable")[::-1]
    return row_pair[cand_row][order], row_reversed[cand_row][order], cand_pred[order]


def evaluate_oracle(
    gt: GroundTruth, pred: AlignedPredictions, constraint: str, settings: EvaluateParams | None = None, ks=KS
) -> dict:
    """Per-frame recalls and per-predicate hits/counts of one constraint."""
    settings = settings or EvaluateParams()
    frame_recall = np.zeros((len(ks), gt.num_frames))
    hits = np.zeros((len(ks), NUM_PREDICATES), dtype=np.int64)
    counts = np.bincount(gt.predicate, minlength=NUM_PREDICATES)
    pair_start = np.searchsorted(pred.frame_index, np.arange(gt.num_frames + 1))
    gt_start = np.searchsorted(gt.frame_index, np.arange(gt.num_frames + 1))

    for f in range(gt.num_frames):
        triplets = range(gt_start[f], gt_start[f + 1])
        pair, reverse, predicate = frame_candidates(pred, np.arange(pair_start[f], pair_start[f + 1]), constraint, settings)
        s_label = np.where(reverse, pred.object_label[pair], pred.subject_label[pair])
        o_label = np.where(reverse, pred.subject_label[pair], pred.object_label[pair])
        s_box = np.where(reverse[:, None], pred.object_box[pair], pred.subject_box[pair])
        o_box = np.where(reverse[:, None], pred.subject_box[pair], pred.object_box[pair])
        first_hit = {}  # triplet -> rank of the first candidate hitting it
        for t in triplets:
            same = (predicate == gt.predicate[t]) & (s_label == gt.subject_class[t]) & (o_label == gt.object_class[t])
            for rank in np.flatnonzero(same):
                if (
                    box_iou(gt.subject_box[t], s_box[rank], settings.legacy_plus_one) >= settings.iou_threshold
                    and box_iou(gt.object_box[t], o_box[rank], settings.legacy_plus_one) >= settings.iou_threshold
                ):
                    first_hit[t] = rank
                    break
        for i, k in enumerate(ks):
            hit = [t for t in triplets if first_hit.get(t, k) < k]
            frame_recall[i, f] = len(hit) / len(triplets)
            for t in hit:
                hits[i, gt.predicate[t]] += 1
    return {"frame_recall": frame_recall, "predicate_hits": hits, "predicate_counts": counts}


def random_problem(
    rng: np.random.Generator,
    num_frames: int,
    mean_pairs: float = 3.0,
    tie_prone: bool = False,
    swap_fraction: float = 0.05,
) -> tuple[GroundTruth, AlignedPredictions]:
    """Random ground truth and predictions that exercise the evaluator's corners.

    Each pair copies a ground-truth object with jittered boxes (so IoUs land
    on both sides of 0.5) and mostly right labels, several pairs may copy the
    same object, and ``swap_fraction`` of them put the person second.
    ``tie_prone`` rounds probabilities to one decimal and zeroes whole
    groups, so exact score ties and zero cells are common.
    """

    def boxes(n: int) -> np.ndarray:
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(5, 200, (n, 2))
        return np.concatenate([xy, xy + wh], axis=1)

    def jitter(box: np.ndarray) -> np.ndarray:
        size = np.concatenate([box[:, 2:] - box[:, :2]] * 2, axis=1)
        out = box + rng.normal(0, 0.15, box.shape) * size
        out[:, 2:] = np.maximum(out[:, 2:], out[:, :2])
        return out

    gt_cols = {k: [] for k in ("frame_index", "subject_class", "predicate", "object_class", "subject_box", "object_box")}
    pr_cols = {k: [] for k in ("frame_index", "subject_box", "object_box", "subject_label", "object_label", "subject_score", "object_score", "distribution")}
    for f in range(num_frames):
        n_obj = int(rng.integers(1, 5))
        classes = rng.choice(np.arange(2, NUM_OBJECT_CLASSES), n_obj, replace=False)
        person = boxes(1)[0]
        obj_boxes = boxes(n_obj)
        object_labels = []
        for c, box in zip(classes, obj_boxes, strict=True):
            labels = [("att", int(rng.integers(0, 3)))]
            labels += [("spa", int(p)) for p in rng.choice(np.arange(3, 9), int(rng.integers(0, 3)), replace=False)]
            labels += [("con", int(p)) for p in rng.choice(np.arange(9, 26), int(rng.integers(0, 3)), replace=False)]
            object_labels.append([p for _, p in labels])
            for kind, p in labels:
                gt_cols["frame_index"].append(f)
                gt_cols["predicate"].append(p)
                if kind == "spa":
                    gt_cols["subject_class"].append(c); gt_cols["object_class"].append(PERSON_INDEX)  # noqa: E702
                    gt_cols["subject_box"].append(box); gt_cols["object_box"].append(person)  # noqa: E702
                else:
                    gt_cols["subject_class"].append(PERSON_INDEX); gt_cols["object_class"].append(c)  # noqa: E702
                    gt_cols["subject_box"].append(person); gt_cols["object_box"].append(box)  # noqa: E702
        n_pairs = int(rng.poisson(mean_pairs)) if rng.random() > 0.02 else 0
        for _ in range(n_pairs):
            j = int(rng.integers(0, n_obj))
            s_box, o_box = jitter(person[None])[0], jitter(obj_boxes[j][None])[0]
            s_lab, o_lab = PERSON_INDEX, int(classes[j]) if rng.random() < 0.85 else int(rng.integers(2, NUM_OBJECT_CLASSES))
            if rng.random() < swap_fraction:  # subject and object swapped
                s_box, o_box, s_lab, o_lab = o_box, s_box, o_lab, s_lab
            dist = np.concatenate([rng.dirichlet(np.ones(3) * 0.5), rng.random(6) ** 0.5, rng.random(17) ** 2])
            if rng.random() < 0.6:  # a confident, mostly right model
                dist[object_labels[j]] = rng.uniform(0.8, 1.0, len(object_labels[j]))
                dist[ATTENTION] /= dist[ATTENTION].sum()
            if tie_prone:
                dist = np.round(dist, 1)
                for group in (ATTENTION, SPATIAL, CONTACTING):
                    if rng.random() < 0.1:
                        dist[group] = 0.0
                if rng.random() < 0.1:
                    dist[[3, 4, 9, 10]] = 0.0
            pr_cols["frame_index"].append(f)
            pr_cols["subject_box"].append(s_box)
            pr_cols["object_box"].append(o_box)
            pr_cols["subject_label"].append(s_lab)
            pr_cols["object_label"].append(o_lab)
            score = (1.0, 1.0) if tie_prone and rng.random() < 0.5 else tuple(rng.uniform(0.05, 1.0, 2))
            pr_cols["subject_score"].append(score[0])
            pr_cols["object_score"].append(score[1])
            pr_cols["distribution"].append(dist)

    gt = GroundTruth(
        frames=np.array([f"v{f // 10:05d}.mp4/{f % 10 + 1:06d}.png" for f in range(num_frames)], dtype=object),
        frame_index=np.array(gt_cols["frame_index"], dtype=np.int64),
        subject_class=np.array(gt_cols["subject_class"], dtype=np.int64),
        predicate=np.array(gt_cols["predicate"], dtype=np.int64),
        object_class=np.array(gt_cols["object_class"], dtype=np.int64),
        subject_box=np.array(gt_cols["subject_box"], dtype=np.float64).reshape(-1, 4),
        object_box=np.array(gt_cols["object_box"], dtype=np.float64).reshape(-1, 4),
    )
    pred = AlignedPredictions(
        frame_index=np.array(pr_cols["frame_index"], dtype=np.int64),
        subject_box=np.array(pr_cols["subject_box"], dtype=np.float64).reshape(-1, 4),
        object_box=np.array(pr_cols["object_box"], dtype=np.float64).reshape(-1, 4),
        subject_label=np.array(pr_cols["subject_label"], dtype=np.int64),
        object_label=np.array(pr_cols["object_label"], dtype=np.int64),
        subject_score=np.array(pr_cols["subject_score"], dtype=np.float64),
        object_score=np.array(pr_cols["object_score"], dtype=np.float64),
        distribution=np.array(pr_cols["distribution"], dtype=np.float64).reshape(-1, NUM_PREDICATES),
    )
    return gt, pred

"""Action Genome recall: R@K, mR@K and per-predicate recall, vectorised over all frames.

This computes what the reference evaluator (STTran's ``BasicSceneGraphEvaluator``
and ``evaluate_from_dict``) computes frame by frame, without a per-frame loop.

The reference, per frame, for ``P`` predicted pairs
--------------------------------------------------
It stacks ``3P`` *rows*: the attention rows of all pairs, then their spatial
rows, then their contacting rows. Each row is a 26-wide vector holding its
group's probabilities and zeros elsewhere. Attention and contacting rows use
the pair as (subject, object); spatial rows use it reversed (object, person).
Candidates, in this row order:

* ``with``: one per row, ``argmax`` of the 26-vector with score ``max``. If a
  row is all zeros, ``argmax`` is column 0 (``looking_at``), whatever the
  row's group: that candidate has score 0 and is kept.
* ``semi``: a row is recognised by two of its cells: an attention row when
  ``p[looking_at] + p[not_looking_at] > 0`` (then its argmax is taken), a
  spatial row when ``p[above] + p[beneath] > 0``, a contacting row when
  ``p[carrying] + p[covered_by] > 0`` (then every cell with ``p > threshold``,
  strictly, in column order). A row failing its test gives nothing, even if
  other cells of it pass the threshold.
* ``no``: all ``3P x 26`` cells, including the out-of-group zeros, scored
  ``objscore(subj) * objscore(obj) * p``, sorted descending (``argsort`` of the
  negated scores, row-major cell order) and cut to the top 100. With fewer
  than 100 positive cells, zero-score cells fill the list; an out-of-group
  zero cell of an attention row with a contacting predicate is the triplet
  ``(person, c, object)`` and can hit ground truth.

All candidates are then sorted by ``objscore(subj) * objscore(obj) * p``
with ``argsort()[::-1]`` and frame recall@K counts the distinct ground-truth
triplets hit by the first K (class, predicate and class equal, both IoUs
>= 0.5 with the +1-pixel convention; matching is not one-to-one).

Exact score ties
----------------
``numpy.argsort``'s default sort is not stable, so the reference's order of
equal scores depends on the numpy version and CPU; only for at most 16
elements (numpy < 1.25 insertion sort) is it stable. We fix the order the
reference produces when its sorts are stable: the top-100 cut keeps equal
scores in cell order, and the final ranking puts equal scores in *reverse*
candidate order (the ``[::-1]`` of an ascending stable sort). Ties only
change a result when equal-score candidates straddle a cut-off and differ in
what they hit; for zero-score cells in ``no`` this cannot happen unless a
pair's own in-group cell scores 0 or its labels put the person second.

How the vectorised version works
--------------------------------
A candidate can only hit a ground-truth triplet ``g`` if its pair has the
classes and boxes of ``g`` in the row's orientation, and its predicate is
``g``'s. So instead of listing candidates and matching them, we list
(``g``, pair, row) *matches* once (shared by all constraints), then ask per
constraint whether the cell ``(pair, row, predicate of g)`` is a candidate and
how many candidates of its frame rank before it. Ranks come from one
row-wise stable sort of each frame's candidate scores (frames with equal
candidate counts are sorted together as a dense matrix); in ``no`` the
``52P`` out-of-group zero cells are counted arithmetically instead of being
materialised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.constants import ATTENTION, CONTACTING, NUM_PREDICATES, SPATIAL
from pipeline.evaluation.ground_truth import GroundTruth
from pipeline.evaluation.predictions import AlignedPredictions
from pipeline.params import EvaluateParams

RECALL_KS = (10, 20, 50, 100)
CONSTRAINTS = ("with", "semi", "no")

# Row types in the reference's stacking order, with each row's group columns.
ROW_GROUPS = (ATTENTION, SPATIAL, CONTACTING)
ATTENTION_ROW, SPATIAL_ROW, CONTACTING_ROW = 0, 1, 2
GROUP_START = np.array([g.start for g in ROW_GROUPS])
GROUP_SIZE = np.array([g.stop - g.start for g in ROW_GROUPS])
# Row type whose group holds each predicate column.
ROW_OF_PREDICATE = np.repeat(np.arange(3), GROUP_SIZE)
# The two cells of a row that the reference's ``semi`` branch tests (> 0).
SEMI_ROW_TEST = ((0, 1), (3, 4), (9, 10))

# Dense blocks of the rank computation are cut to about this many cells.
BLOCK_CELLS = 1 << 21


@dataclass(frozen=True)
class ConstraintResult:
    """Recall of one constraint. Recalls are fractions; :meth:`metrics` gives percent."""

    constraint: str
    ks: tuple[int, ...]
    frame_recall: np.ndarray  # (len(ks), F) recall of each frame
    predicate_hits: np.ndarray  # (len(ks), 26) distinct GT triplets hit, summed over frames
    predicate_counts: np.ndarray  # (26,) GT triplets per predicate

    def recall(self, k: int) -> float:
        """R@K: the mean of frame recalls over all ground-truth frames."""
        return float(self.frame_recall[self.ks.index(k)].mean())

    def predicate_recall(self, k: int) -> np.ndarray:
        """Dataset-level recall per predicate; NaN where the ground truth has none."""
        hits = self.predicate_hits[self.ks.index(k)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.predicate_counts > 0, hits / self.predicate_counts, np.nan)

    def mean_recall(self, k: int) -> float:
        """mR@K as TEMPURA defines it: the mean over all 26 predicates, absent ones counting 0."""
        return float(np.nan_to_num(self.predicate_recall(k), nan=0.0).sum() / NUM_PREDICATES)

    def metrics(self) -> dict[str, float]:
        """``{"R@10": ..., "mR@10": ...}`` in percent (0-100)."""
        out = {f"R@{k}": 100.0 * self.recall(k) for k in self.ks}
        out.update({f"mR@{k}": 100.0 * self.mean_recall(k) for k in self.ks})
        return out


# --------------------------------------------------------------------------- geometry


def pairwise_iou(gt_boxes: np.ndarray, pred_boxes: np.ndarray, legacy_plus_one: bool = True) -> np.ndarray:
    """IoU of row ``i`` of ``gt_boxes`` with row ``i`` of ``pred_boxes`` (xyxy).

    Same operations in the same order as the reference's ``bbox_overlaps``
    (ground truth first), so values equal to the last bit: widths are
    ``x2 - x1 + 1`` with the legacy convention, and boxes that do not overlap
    get exactly 0.
    """
    one = 1.0 if legacy_plus_one else 0.0
    g, p = gt_boxes, pred_boxes
    iw = np.minimum(g[:, 2], p[:, 2]) - np.maximum(g[:, 0], p[:, 0]) + one
    ih = np.minimum(g[:, 3], p[:, 3]) - np.maximum(g[:, 1], p[:, 1]) + one
    overlap = (iw > 0) & (ih > 0)
    inter = iw * ih
    union = (g[:, 2] - g[:, 0] + one) * (g[:, 3] - g[:, 1] + one) + (p[:, 2] - p[:, 0] + one) * (p[:, 3] - p[:, 1] + one) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


# --------------------------------------------------------------------------- segments


def segment_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a loop."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(offsets - starts, lengths)


@dataclass(frozen=True)
class _Layout:
    """Where each frame's pairs sit in the frame-sorted prediction arrays."""

    pairs_per_frame: np.ndarray  # (F,)
    first_pair: np.ndarray  # (F,)
    pair_in_frame: np.ndarray  # (N,) index of the pair within its frame

    @classmethod
    def of(cls, predictions: AlignedPredictions, num_frames: int) -> _Layout:
        counts = np.bincount(predictions.frame_index, minlength=num_frames).astype(np.int64)
        first = np.cumsum(counts) - counts
        return cls(counts, first, np.arange(len(predictions), dtype=np.int64) - first[predictions.frame_index])


@dataclass(frozen=True)
class _Matches:
    """(GT triplet, pair, row) such that the row's orientation of the pair has the
    triplet's classes and both IoUs pass: the row's cell at the triplet's
    predicate hits it, if that cell is a candidate."""

    triplet: np.ndarray
    pair: np.ndarray
    row: np.ndarray


def _match_pairs(gt: GroundTruth, pred: AlignedPredictions, layout: _Layout, settings: EvaluateParams) -> _Matches:
    counts = layout.pairs_per_frame[gt.frame_index]
    triplet = np.repeat(np.arange(gt.num_triplets, dtype=np.int64), counts)
    pair = segment_arange(layout.first_pair[gt.frame_index], counts)

    def oriented(subject_label, object_label, subject_box, object_box) -> tuple[np.ndarray, np.ndarray]:
        same_class = (gt.subject_class[triplet] == subject_label[pair]) & (gt.object_class[triplet] == object_label[pair])
        t, p = triplet[same_class], pair[same_class]
        ok = (pairwise_iou(gt.subject_box[t], subject_box[p], settings.legacy_plus_one) >= settings.iou_threshold) & (
            pairwise_iou(gt.object_box[t], object_box[p], settings.legacy_plus_one) >= settings.iou_threshold
        )
        return t[ok], p[ok]

    # Attention and contacting rows see the pair as (subject, object) ...
    fwd_t, fwd_p = oriented(pred.subject_label, pred.object_label, pred.subject_box, pred.object_box)
    # ... spatial rows as (object, subject).
    rev_t, rev_p = oriented(pred.object_label, pred.subject_label, pred.object_box, pred.subject_box)
    return _Matches(
        triplet=np.concatenate([fwd_t, fwd_t, rev_t]),
        pair=np.concatenate([fwd_p, fwd_p, rev_p]),
        row=np.concatenate(
            [np.full(len(fwd_t), ATTENTION_ROW), np.full(len(fwd_t), CONTACTING_ROW), np.full(len(rev_t), SPATIAL_ROW)]
        ),
    )


# --------------------------------------------------------------------------- ranks


@dataclass(frozen=True)
class _Ranks:
    """For each candidate slot: how many valid slots of its frame score higher
    (``greater``), how many score the same including itself (``ties``), and how
    many of those come earlier in candidate order (``ties_before``)."""

    greater: np.ndarray
    ties: np.ndarray
    ties_before: np.ndarray


def _rank_slots(slots_per_frame: np.ndarray, score: np.ndarray, valid: np.ndarray) -> _Ranks:
    """Rank every frame's slots by score, descending, ties in slot order.

    Frames with the same slot count are stacked into a dense matrix and sorted
    row-wise (stable), a few thousand frames per block.
    """
    first_slot = np.cumsum(slots_per_frame) - slots_per_frame
    greater = np.zeros(len(score), dtype=np.int64)
    ties = np.zeros(len(score), dtype=np.int64)
    ties_before = np.zeros(len(score), dtype=np.int64)
    # Invalid slots sort last and never tie with a score (all scores are >= 0).
    key = np.where(valid, -score, np.inf)
    for width in np.unique(slots_per_frame[slots_per_frame > 0]):
        frames = np.flatnonzero(slots_per_frame == width)
        column = np.arange(width)
        per_block = max(1, BLOCK_CELLS // int(width))
        for start in range(0, len(frames), per_block):
            slot = first_slot[frames[start : start + per_block], None] + column
            order = np.argsort(key[slot], axis=1, kind="stable")
            sorted_slot = np.take_along_axis(slot, order, axis=1)
            sorted_key = key[sorted_slot]
            run_begins = np.ones(sorted_key.shape, dtype=bool)
            run_begins[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
            run_ends = np.ones(sorted_key.shape, dtype=bool)
            run_ends[:, :-1] = run_begins[:, 1:]
            run_start = np.maximum.accumulate(np.where(run_begins, column, 0), axis=1)
            run_stop = np.minimum.accumulate(np.where(run_ends, column + 1, width)[:, ::-1], axis=1)[:, ::-1]
            greater[sorted_slot] = run_start
            ties[sorted_slot] = run_stop - run_start
            ties_before[sorted_slot] = column - run_start
    return _Ranks(greater, ties, ties_before)


def _place(ranks: _Ranks, slot: np.ndarray, cap: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Final rank and kept-flag of candidate ``slot``s.

    Without a cap every candidate is kept and its final rank is ``greater``
    plus the ties *after* it in candidate order (the final sort reverses
    ties). With a cap (``no``), the first ``cap`` in (score desc, slot asc)
    order are kept, and only kept ties can precede it.
    """
    greater, ties, before = ranks.greater[slot], ranks.ties[slot], ranks.ties_before[slot]
    if cap is None:
        return greater + ties - before - 1, np.ones(len(slot), dtype=bool)
    kept_ties = np.minimum(ties, cap - greater)
    return greater + kept_ties - before - 1, greater + before < cap


# --------------------------------------------------------------------------- constraints


def _with_candidates(pred: AlignedPredictions, layout: _Layout, matches: _Matches, gt: GroundTruth, pair_weight: np.ndarray):
    """One candidate per row: its argmax predicate. Slots are rows in reference order."""
    dist = pred.distribution
    row_max = np.stack([dist[:, g].max(axis=1) for g in ROW_GROUPS], axis=1)
    # argmax over the full 26-vector: inside the group unless the group is all
    # zeros, then column 0 (looking_at), as numpy's argmax of zeros gives.
    row_arg = np.stack([dist[:, g].argmax(axis=1) + g.start for g in ROW_GROUPS], axis=1)
    row_pred = np.where(row_max > 0, row_arg, 0)
    frame = pred.frame_index
    slot_of_row = 3 * layout.first_pair[frame, None] + np.arange(3) * layout.pairs_per_frame[frame, None] + layout.pair_in_frame[:, None]
    score = np.empty(3 * len(pred))
    score[slot_of_row] = pair_weight[:, None] * row_max
    ranks = _rank_slots(3 * layout.pairs_per_frame, score, np.ones(len(score), dtype=bool))

    is_candidate = row_pred[matches.pair, matches.row] == gt.predicate[matches.triplet]
    slot = slot_of_row[matches.pair, matches.row][is_candidate]
    rank, kept = _place(ranks, slot, None)
    return matches.triplet[is_candidate], rank, kept


def _in_group_slots(pred: AlignedPredictions, layout: _Layout) -> np.ndarray:
    """(N, 26) slot of each pair's in-group cells; frames own ``26P`` slots in
    cell order: row type, then pair, then column."""
    frame = pred.frame_index
    column = np.arange(NUM_PREDICATES)
    start = GROUP_START[ROW_OF_PREDICATE]
    size = GROUP_SIZE[ROW_OF_PREDICATE]
    return (
        NUM_PREDICATES * layout.first_pair[frame, None]
        + start * layout.pairs_per_frame[frame, None]
        + layout.pair_in_frame[:, None] * size
        + (column - start)
    )


def _semi_candidates(pred, layout, matches, gt, pair_weight, threshold: float):
    dist = pred.distribution
    recognised = [dist[:, a] + dist[:, b] > 0 for a, b in SEMI_ROW_TEST]
    valid = np.zeros(dist.shape, dtype=bool)
    att_arg = dist[:, ATTENTION].argmax(axis=1)
    valid[np.arange(len(dist)), att_arg] = recognised[ATTENTION_ROW]
    for row, group in ((SPATIAL_ROW, SPATIAL), (CONTACTING_ROW, CONTACTING)):
        valid[:, group] = (dist[:, group] > threshold) & recognised[row][:, None]
    slot_of_cell = _in_group_slots(pred, layout)
    score = np.empty(NUM_PREDICATES * len(pred))
    flags = np.empty(len(score), dtype=bool)
    score[slot_of_cell] = pair_weight[:, None] * dist
    flags[slot_of_cell] = valid
    ranks = _rank_slots(NUM_PREDICATES * layout.pairs_per_frame, score, flags)

    predicate = gt.predicate[matches.triplet]
    in_group = ROW_OF_PREDICATE[predicate] == matches.row
    slot = slot_of_cell[matches.pair, predicate]
    is_candidate = in_group & flags[slot]
    rank, kept = _place(ranks, slot[is_candidate], None)
    return matches.triplet[is_candidate], rank, kept


def _in_group_cells_before(position: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Number of in-group cells whose flat cell index (``row * 26 + column``,
    rows in reference order) is below ``position``, in a frame of ``pairs`` pairs."""
    row, column = np.divmod(position, NUM_PREDICATES)
    full_rows = [np.clip(row - t * pairs, 0, pairs) for t in range(3)]
    before = sum(GROUP_SIZE[t] * full_rows[t] for t in range(3))
    row_type = row // np.maximum(pairs, 1)
    return before + np.clip(column - GROUP_START[row_type], 0, GROUP_SIZE[row_type])


def _no_candidates(pred, layout, matches, gt, pair_weight, top_k: int):
    dist = pred.distribution
    slot_of_cell = _in_group_slots(pred, layout)
    score = np.empty(NUM_PREDICATES * len(pred))
    score[slot_of_cell] = pair_weight[:, None] * dist
    # Only positive in-group cells are ranked explicitly; every zero cell
    # (in-group zeros and the 52P out-of-group cells) ties at the bottom and
    # is placed by its cell index alone.
    positive = score > 0
    ranks = _rank_slots(NUM_PREDICATES * layout.pairs_per_frame, score, positive)

    predicate = gt.predicate[matches.triplet]
    slot = slot_of_cell[matches.pair, predicate]
    explicit = (ROW_OF_PREDICATE[predicate] == matches.row) & positive[slot]
    rank_e, kept_e = _place(ranks, slot[explicit], top_k)

    zero = ~explicit
    pair = matches.pair[zero]
    frame = pred.frame_index[pair]
    pairs = layout.pairs_per_frame[frame]
    position = (matches.row[zero] * pairs + layout.pair_in_frame[pair]) * NUM_PREDICATES + predicate[zero]
    positive_before = np.concatenate([[0], np.cumsum(positive)])
    frame_first_slot = NUM_PREDICATES * layout.first_pair[frame]
    positives = positive_before[frame_first_slot + NUM_PREDICATES * pairs] - positive_before[frame_first_slot]
    zero_before = position - (positive_before[frame_first_slot + _in_group_cells_before(position, pairs)] - positive_before[frame_first_slot])
    zeros = 3 * NUM_PREDICATES * pairs - positives
    kept_z = positives + zero_before < top_k
    rank_z = positives + np.minimum(zeros, top_k - positives) - zero_before - 1
    return (
        np.concatenate([matches.triplet[explicit], matches.triplet[zero]]),
        np.concatenate([rank_e, rank_z]),
        np.concatenate([kept_e, kept_z]),
    )


# --------------------------------------------------------------------------- public API


def _check_ks(ks: tuple[int, ...]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"recall cut-offs must be positive integers, got {ks}")
    return ks


def evaluate(
    gt: GroundTruth,
    pred: AlignedPredictions,
    settings: EvaluateParams | None = None,
    constraints: tuple[str, ...] | None = None,
    ks: tuple[int, ...] = RECALL_KS,
) -> dict[str, ConstraintResult]:
    """Recall of ``pred`` against ``gt`` for each constraint (default: ``settings.constraints``).

    ``pred`` holds probabilities (attention already softmaxed). A ground-truth
    frame without predictions has recall 0.
    """
    settings = settings or EvaluateParams()
    constraints = tuple(constraints or settings.constraints)
    unknown = [c for c in constraints if c not in CONSTRAINTS]
    if unknown:
        raise ValueError(f"unknown constraint(s) {unknown}; choose from {CONSTRAINTS}")
    ks = _check_ks(ks)
    layout = _Layout.of(pred, gt.num_frames)
    matches = _match_pairs(gt, pred, layout, settings)
    # The reference multiplies subject and object score first, then the predicate score.
    pair_weight = pred.subject_score * pred.object_score
    triplets_per_frame = np.bincount(gt.frame_index, minlength=gt.num_frames)
    predicate_counts = np.bincount(gt.predicate, minlength=NUM_PREDICATES)

    results = {}
    for constraint in constraints:
        if constraint == "with":
            triplet, rank, kept = _with_candidates(pred, layout, matches, gt, pair_weight)
        elif constraint == "semi":
            triplet, rank, kept = _semi_candidates(pred, layout, matches, gt, pair_weight, settings.semi_threshold)
        else:
            triplet, rank, kept = _no_candidates(pred, layout, matches, gt, pair_weight, settings.no_constraint_top_k)
        frame_recall = np.empty((len(ks), gt.num_frames))
        predicate_hits = np.empty((len(ks), NUM_PREDICATES), dtype=np.int64)
        for i, k in enumerate(ks):
            hit = np.zeros(gt.num_triplets, dtype=bool)
            hit[triplet[kept & (rank < k)]] = True  # distinct triplets: several hits count once
            frame_recall[i] = np.bincount(gt.frame_index, weights=hit.astype(np.float64), minlength=gt.num_frames) / triplets_per_frame
            predicate_hits[i] = np.bincount(gt.predicate[hit], minlength=NUM_PREDICATES)
        results[constraint] = ConstraintResult(constraint, ks, frame_recall, predicate_hits, predicate_counts)
    return results


__all__ = [
    "CONSTRAINTS",
    "RECALL_KS",
    "ConstraintResult",
    "evaluate",
    "pairwise_iou",
]

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
  than 100 positive cells (at most 3 pairs), zero-score cells fill the list.
  They are real candidates: the attention row's zero cell for ``holding``
  reads ``(person, holding, object)``. That duplicates the contacting row's
  own ``holding`` cell, which ranks higher, so zero cells only add hits when
  a pair's in-group cell is itself 0 or its labels put the person second.

All candidates are then sorted by ``objscore(subj) * objscore(obj) * p``
with ``argsort()[::-1]`` and frame recall@K counts the distinct ground-truth
triplets hit by the first K (class, predicate and class equal, both IoUs
>= 0.5 with the +1-pixel convention; matching is not one-to-one). A frame
without candidates scores 0. The reference softmaxes attention logits
itself; here the inputs are probabilities, and everything is float64 (the
reference mixes in float32 object scores, which can only move exact ties).

Exact score ties
----------------
``numpy.argsort``'s default sort is not stable, so the reference's order of
equal scores depends on the numpy version and CPU; only for at most 16
elements (numpy < 1.25 insertion sort) is it stable. We fix the order the
reference produces when its sorts are stable: the top-100 cut keeps equal
scores in cell order, and the final ranking puts equal scores in *reverse*
candidate order (the ``[::-1]`` of an ascending stable sort). Ties only
change a result when equal-score candidates straddle a cut-off and differ in
what they hit; with continuous scores and the person as subject that does
not happen, zero cells included.

How the vectorised version works
--------------------------------
A candidate can only hit a ground-truth triplet ``g`` if its pair has the
classes and boxes of ``g`` in the row's orientation, and its predicate is
``g``'s. So instead of listing candidates and matching them, we list
(``g``, pair, row) *matches* once (a join on frame and classes, shared by all
constraints), then ask per constraint whether the cell ``(pair, row,
predicate of g)`` is a candidate and where it ranks in its frame. The rank
counts the frame's candidates with a higher score: frames with the same
number of pairs are stacked into a dense matrix, sorted row-wise, and
binary-searched for all queries at once; exact ties are rare and settled by
comparing against the whole frame. In ``no`` the zero cells are not
materialised: they all tie at the bottom, so a zero cell's rank follows from
its cell position and the count of positive cells before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipeline.boxes import rowwise_iou
from pipeline.constants import (
    ATTENTION,
    CONTACTING,
    GROUPS,
    NUM_OBJECT_CLASSES,
    NUM_PREDICATES,
    SPATIAL,
)
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

    def group_recall(self, k: int) -> dict[str, float]:
        """Dataset-level recall of each predicate group (hits over its triplets); NaN where it has none.

        With constraint a pair yields one candidate per group, so this is the
        group's top-1 accuracy over its pairs (for multi-label spatial pairs,
        the share of their labels one candidate can cover): it says which
        group R@K with constraint loses.
        """
        hits = self.predicate_hits[self.ks.index(k)]
        out = {}
        for name, columns in GROUPS.items():
            count = self.predicate_counts[columns].sum()
            out[name] = float(hits[columns].sum() / count) if count else float("nan")
        return out

    def metrics(self) -> dict[str, float]:
        """``{"R@10": ..., "mR@10": ...}`` in percent (0-100)."""
        out = {f"R@{k}": 100.0 * self.recall(k) for k in self.ks}
        out.update({f"mR@{k}": 100.0 * self.mean_recall(k) for k in self.ks})
        return out


# --------------------------------------------------------------------------- geometry


# --------------------------------------------------------------------------- segments


def segment_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`` without a loop."""
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(offsets - starts, lengths)


def equal_key_pairs(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with ``left[i] == right[j]`` (an inner join on integer keys).

    The shorter side is binary-searched in the sorted longer one, queries in
    sorted order for memory locality.
    """
    if len(left) > len(right):
        j, i = equal_key_pairs(right, left)
        return i, j
    query_order = np.argsort(left, kind="stable")
    table_order = np.argsort(right, kind="stable")
    table = right[table_order]
    queries = left[query_order]
    lo = np.searchsorted(table, queries, side="left")
    count = np.searchsorted(table, queries, side="right") - lo
    return np.repeat(query_order, count), table_order[segment_arange(lo, count)]


@dataclass(frozen=True)
class _Layout:
    """Where each frame's pairs sit in the frame-sorted prediction arrays."""

    frame: np.ndarray  # (N,) frame of each pair, non-decreasing
    pairs_per_frame: np.ndarray  # (F,)
    first_pair: np.ndarray  # (F,)
    pair_in_frame: np.ndarray  # (N,) index of the pair within its frame

    @classmethod
    def of(cls, predictions: AlignedPredictions, num_frames: int) -> _Layout:
        frame = predictions.frame_index
        counts = np.bincount(frame, minlength=num_frames).astype(np.int64)
        first = np.cumsum(counts) - counts
        return cls(frame, counts, first, np.arange(len(frame), dtype=np.int64) - first[frame])

    def cell_position(self, pair: np.ndarray, row: np.ndarray, column: np.ndarray) -> np.ndarray:
        """Index of cell (row type, column) of ``pair`` in its frame's row-major
        ``3P x 26`` matrix, rows in reference order: the reference's cell order."""
        return (row * self.pairs_per_frame[self.frame[pair]] + self.pair_in_frame[pair]) * NUM_PREDICATES + column


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Matches:
    """(GT triplet, pair, row) such that the row's orientation of the pair has the
    triplet's classes and both IoUs pass: the row's cell at the triplet's
    predicate hits it, if that cell is a candidate."""

    triplet: np.ndarray
    pair: np.ndarray
    row: np.ndarray


def _match_pairs(gt: GroundTruth, pred: AlignedPredictions, settings: EvaluateParams) -> _Matches:
    def key(frame, subject_class, object_class):
        return (frame * NUM_OBJECT_CLASSES + subject_class) * NUM_OBJECT_CLASSES + object_class

    gt_key = key(gt.frame_index, gt.subject_class, gt.object_class)

    def oriented(subject_label, object_label, subject_box, object_box) -> tuple[np.ndarray, np.ndarray]:
        t, p = equal_key_pairs(gt_key, key(pred.frame_index, subject_label, object_label))
        ok = (rowwise_iou(gt.subject_box[t], subject_box[p], settings.legacy_plus_one) >= settings.iou_threshold) & (
            rowwise_iou(gt.object_box[t], object_box[p], settings.legacy_plus_one) >= settings.iou_threshold
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


def _row_searchsorted(block: np.ndarray, width: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per query, the number of entries below ``value`` in row ``rows`` of the
    row-sorted, flattened ``block``: a binary search run for all queries at once."""
    lo = np.zeros(len(rows), dtype=np.int64)
    hi = np.full(len(rows), width, dtype=np.int64)
    base = rows * width
    for _ in range(int(width).bit_length()):
        active = lo < hi
        mid = (lo + hi) >> 1
        below = active & (block[base + np.minimum(mid, width - 1)] < values)
        lo = np.where(below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)
    return lo


@dataclass(frozen=True)
class _Candidates:
    """One constraint's candidates, held per pair: ``score[pair, c]`` for each of
    the pair's candidate cells (3 rows in ``with``, 26 in-group cells
    otherwise), -1 where a cell is not a candidate.

    ``order_of(pair, c)`` numbers a cell in its frame's reference candidate
    order (any increasing numbering); it is only needed to break exact score
    ties, so it is computed for those alone.
    """

    score: np.ndarray  # (N, C)
    order_of: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _place(candidates: _Candidates, layout: _Layout, pair: np.ndarray, cell: np.ndarray, cap: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Final rank (0-based) and kept-flag of the candidate cells ``(pair, cell)``.

    A candidate's final rank is the number of candidates of its frame with a
    higher score, plus the equal-score ones *after* it in candidate order
    (the reference's ascending sort is reversed). With a ``cap`` (``no``) only
    the first ``cap`` in (score desc, candidate order) are kept, and only kept
    ties can precede.

    Higher scores are counted by sorting each frame's scores (frames with the
    same number of pairs form one dense matrix) and binary-searching it; the
    rare exact ties are resolved by comparing against the whole frame.
    """
    if len(pair) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    scores = candidates.score
    per_pair = scores.shape[1]
    q_score = scores[pair, cell]
    q_frame = layout.frame[pair]
    greater = np.zeros(len(pair), dtype=np.int64)
    tied = np.zeros(len(pair), dtype=bool)
    q_pairs = layout.pairs_per_frame[q_frame]
    by_size = np.argsort(q_pairs, kind="stable")
    sizes, starts = np.unique(q_pairs[by_size], return_index=True)
    local_row = np.zeros(len(layout.pairs_per_frame), dtype=np.int64)
    for size, members in zip(sizes.tolist(), np.split(by_size, starts[1:]), strict=True):
        frames = np.flatnonzero(layout.pairs_per_frame == size)
        local_row[frames] = np.arange(len(frames))
        width = size * per_pair
        # Ascending -score is descending score; non-candidates (-1) sort last
        # and never equal a candidate's score.
        block = -scores[layout.first_pair[frames, None] + np.arange(size)].reshape(len(frames), width)
        block.sort(axis=1)
        block = block.ravel()
        rows = local_row[q_frame[members]]
        below = _row_searchsorted(block, width, rows, -q_score[members])
        greater[members] = below
        # The query's own score sits at ``below``; an equal neighbour means a tie.
        after = rows * width + np.minimum(below + 1, width - 1)
        tied[members] = (below + 1 < width) & (block[after] == -q_score[members])

    ties = np.ones(len(pair), dtype=np.int64)
    ties_before = np.zeros(len(pair), dtype=np.int64)
    tie = np.flatnonzero(tied)
    if len(tie):
        frame_pairs = layout.pairs_per_frame[q_frame[tie]]
        owner = np.repeat(np.arange(len(tie)), frame_pairs * per_pair)
        other_pair = np.repeat(segment_arange(layout.first_pair[q_frame[tie]], frame_pairs), per_pair)
        other_cell = np.tile(np.arange(per_pair), int(frame_pairs.sum()))
        equal = scores[other_pair, other_cell] == q_score[tie][owner]
        earlier = equal & (candidates.order_of(other_pair, other_cell) < candidates.order_of(pair[tie], cell[tie])[owner])
        ties[tie] = np.bincount(owner, weights=equal, minlength=len(tie)).astype(np.int64)
        ties_before[tie] = np.bincount(owner, weights=earlier, minlength=len(tie)).astype(np.int64)

    if cap is None:
        return greater + ties - ties_before - 1, np.ones(len(pair), dtype=bool)
    return greater + np.minimum(ties, cap - greater) - ties_before - 1, greater + ties_before < cap


# --------------------------------------------------------------------------- constraints
# Each returns, for the matches whose cell is a candidate: the GT triplet,
# the candidate's final rank and whether it is kept.


def _with_ranks(gt: GroundTruth, pred: AlignedPredictions, layout: _Layout, matches: _Matches, pair_weight: np.ndarray):
    """One candidate per row: its argmax predicate."""
    dist = pred.distribution
    row_max = np.stack([dist[:, g].max(axis=1) for g in ROW_GROUPS], axis=1)
    # argmax over the full 26-vector: inside the group unless the group is all
    # zeros, then column 0 (looking_at), as numpy's argmax of zeros gives.
    row_arg = np.stack([dist[:, g].argmax(axis=1) + g.start for g in ROW_GROUPS], axis=1)
    row_pred = np.where(row_max > 0, row_arg, 0)
    candidates = _Candidates(
        score=pair_weight[:, None] * row_max,
        order_of=lambda pair, row: row * layout.pairs_per_frame[layout.frame[pair]] + layout.pair_in_frame[pair],
    )
    is_candidate = row_pred[matches.pair, matches.row] == gt.predicate[matches.triplet]
    rank, kept = _place(candidates, layout, matches.pair[is_candidate], matches.row[is_candidate], cap=None)
    return matches.triplet[is_candidate], rank, kept


def _cell_candidates(layout: _Layout, cell_score: np.ndarray) -> _Candidates:
    """Candidates among the in-group cells: ``cell_score`` is (N, 26), -1 off-candidate."""
    return _Candidates(
        score=cell_score,
        order_of=lambda pair, column: layout.cell_position(pair, ROW_OF_PREDICATE[column], column),
    )


def _semi_ranks(gt, pred, layout, matches, pair_weight, threshold: float):
    dist = pred.distribution
    recognised = [dist[:, a] + dist[:, b] > 0 for a, b in SEMI_ROW_TEST]
    is_candidate = np.zeros(dist.shape, dtype=bool)
    is_candidate[np.arange(len(dist)), dist[:, ATTENTION].argmax(axis=1)] = recognised[ATTENTION_ROW]
    for row, group in ((SPATIAL_ROW, SPATIAL), (CONTACTING_ROW, CONTACTING)):
        is_candidate[:, group] = (dist[:, group] > threshold) & recognised[row][:, None]
    candidates = _cell_candidates(layout, np.where(is_candidate, pair_weight[:, None] * dist, -1.0))
    predicate = gt.predicate[matches.triplet]
    found = (ROW_OF_PREDICATE[predicate] == matches.row) & is_candidate[matches.pair, predicate]
    rank, kept = _place(candidates, layout, matches.pair[found], predicate[found], cap=None)
    return matches.triplet[found], rank, kept


def _no_ranks(gt, pred, layout, matches, pair_weight, top_k: int):
    cell_score = pair_weight[:, None] * pred.distribution
    # Positive in-group cells are ranked explicitly (zeros can neither beat
    # nor tie them, so they may stay in the matrix). Every zero cell (an
    # in-group zero or one of the 52P out-of-group cells) ties at the bottom
    # and is placed by its cell position alone.
    positive = cell_score > 0
    predicate = gt.predicate[matches.triplet]
    explicit = (ROW_OF_PREDICATE[predicate] == matches.row) & positive[matches.pair, predicate]
    rank_e, kept_e = _place(_cell_candidates(layout, cell_score), layout, matches.pair[explicit], predicate[explicit], cap=top_k)

    zero = ~explicit
    pair, row, column = matches.pair[zero], matches.row[zero], predicate[zero]
    frame = layout.frame[pair]
    # Positive cells before a zero cell (in reference cell order): all
    # positives of earlier row types in the frame, those of the same row type
    # in earlier pairs, and those left of the column in the pair's own row.
    per_group = np.stack([positive[:, g].sum(axis=1) for g in ROW_GROUPS], axis=1)  # (N, 3)
    per_frame = np.stack([np.bincount(layout.frame, weights=per_group[:, t], minlength=gt.num_frames) for t in range(3)], axis=1).astype(np.int64)
    earlier_types = np.cumsum(per_frame, axis=1) - per_frame
    upto_pair = np.concatenate([np.zeros((1, 3), dtype=np.int64), np.cumsum(per_group, axis=0)], axis=0)
    first = layout.first_pair[frame]
    start = GROUP_START[row]
    # Left of the column in its own row: none or the whole group for an
    # out-of-group column; a partial count only for (rare) in-group zeros.
    in_row = np.where(column < start, 0, per_group[pair, row])
    partial = np.flatnonzero(ROW_OF_PREDICATE[column] == row)
    if len(partial):
        left_of = np.arange(NUM_PREDICATES) < column[partial, None]
        in_group = ROW_OF_PREDICATE[None, :] == row[partial, None]
        in_row[partial] = (positive[pair[partial]] & left_of & in_group).sum(axis=1)
    positive_before = earlier_types[frame, row] + upto_pair[pair, row] - upto_pair[first, row] + in_row
    positives = per_frame[frame].sum(axis=1)
    zero_before = layout.cell_position(pair, row, column) - positive_before
    zeros = 3 * NUM_PREDICATES * layout.pairs_per_frame[frame] - positives
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
    matches = _match_pairs(gt, pred, settings)
    # The reference multiplies subject and object score first, then the predicate score.
    pair_weight = pred.subject_score * pred.object_score
    triplets_per_frame = np.bincount(gt.frame_index, minlength=gt.num_frames)
    predicate_counts = np.bincount(gt.predicate, minlength=NUM_PREDICATES)

    results = {}
    for constraint in constraints:
        if constraint == "with":
            triplet, rank, kept = _with_ranks(gt, pred, layout, matches, pair_weight)
        elif constraint == "semi":
            triplet, rank, kept = _semi_ranks(gt, pred, layout, matches, pair_weight, settings.semi_threshold)
        else:
            triplet, rank, kept = _no_ranks(gt, pred, layout, matches, pair_weight, settings.no_constraint_top_k)
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
]

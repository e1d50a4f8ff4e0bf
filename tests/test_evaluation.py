"""Hand-computed frames for each constraint of the Action Genome evaluator.

Boxes: the person is (0, 0, 99, 99), a cup (100, 0, 199, 99) and a table
(0, 100, 99, 199); with the legacy +1 convention each is 100 x 100 px.
"""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_cases import (
    CUP,
    CUP_BOX,
    PERSON_BOX,
    TABLE,
    TABLE_BOX,
    dist,
    key,
    pair,
    recalls,
    run,
)

from pipeline.constants import NUM_PREDICATES, PERSON_INDEX, PREDICATE_INDEX
from pipeline.evaluation import rowwise_iou

F1, F2 = key(1), key(2)

# One cup with multi-label ground truth: 1 attention + 2 spatial + 2 contacting = 5 triplets.
MULTI = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"],
               "spatial": ["in_front_of", "beneath"], "contacting": ["holding", "touching"]}]}  # fmt: skip


def multi_probs(**overrides: float) -> np.ndarray:
    probs = {
        "looking_at": 0.7, "not_looking_at": 0.2, "unsure": 0.1,
        "beneath": 0.95, "in_front_of": 0.92, "above": 0.3,
        "holding": 0.96, "touching": 0.5, "carrying": 0.01, "in": 0.05, "writing_on": 0.02,
    }  # fmt: skip
    probs.update(overrides)
    return dist(**probs)


# --------------------------------------------------------------------------- with


def test_with_takes_one_argmax_per_group_so_multilabel_gt_is_partly_hit():
    # looking_at, beneath (reversed pair) and holding hit; in_front_of and touching cannot.
    rows = [pair(F1, CUP, CUP_BOX, multi_probs())]
    assert recalls(MULTI, rows, "with") == {10: 60.0, 20: 60.0, 50: 60.0, 100: 60.0}


def test_spatial_triplets_are_object_to_person():
    # The same pair given as (cup, person): attention/contacting rows now read
    # (cup, person) and the spatial row (person, cup); nothing matches.
    rows = [pair(F1, PERSON_INDEX, PERSON_BOX, multi_probs(), subject_class=CUP, subject_box=CUP_BOX)]
    assert recalls(MULTI, rows, "with")[100] == 0.0
    assert recalls(MULTI, rows, "semi")[100] == 0.0


def test_with_all_zero_group_predicts_looking_at_on_the_row_orientation():
    # The reference's argmax of an all-zero spatial row is column 0, so that row
    # yields (cup, looking_at, person): no hit, but it is still a candidate.
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"]}]}
    probs = dist(looking_at=0.6, not_looking_at=0.4)  # spatial and contacting all 0
    result = run(gt, [pair(F1, CUP, CUP_BOX, probs)], "with")
    assert result.recall(10) == 1.0
    # Labelled the other way round, the zero spatial row is (person, looking_at, cup): a hit.
    swapped = pair(F1, PERSON_INDEX, PERSON_BOX, dist(unsure=1.0), subject_class=CUP, subject_box=CUP_BOX)
    assert run(gt, [swapped], "with").recall(10) == 1.0


def test_exact_score_ties_rank_later_candidates_first():
    # Identical pairs for the cup (GT) and the table (not GT): their attention
    # candidates tie. The reference's ascending sort reversed puts the later
    # pair (the table) first, so R@1 misses and R@2 hits.
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"]}]}
    probs = dist(looking_at=0.9, not_looking_at=0.1, above=0.5, holding=0.4)
    rows = [pair(F1, CUP, CUP_BOX, probs), pair(F1, TABLE, TABLE_BOX, probs)]
    assert recalls(gt, rows, "with", ks=(1, 2)) == {1: 0.0, 2: 100.0}
    assert recalls(gt, rows[::-1], "with", ks=(1, 2)) == {1: 100.0, 2: 100.0}


# --------------------------------------------------------------------------- semi


def test_semi_takes_attention_argmax_and_every_cell_above_threshold():
    # looking_at, beneath (0.95), in_front_of (0.92), holding (0.96); touching 0.5 is below 0.9.
    rows = [pair(F1, CUP, CUP_BOX, multi_probs())]
    assert recalls(MULTI, rows, "semi")[10] == 80.0
    # The threshold is strict and configurable.
    assert recalls(MULTI, rows, "semi", semi_threshold=0.95)[10] == 40.0  # looking_at, holding
    assert recalls(MULTI, rows, "semi", semi_threshold=0.4)[10] == 100.0


def test_semi_rows_are_recognised_by_two_cells_like_the_reference():
    # A contacting row with carrying + covered_by == 0 yields nothing, even with holding at 0.96.
    assert recalls(MULTI, [pair(F1, CUP, CUP_BOX, multi_probs(carrying=0.0))], "semi")[10] == 60.0
    # A spatial row with above + beneath == 0 yields nothing (in_front_of 0.92 is lost).
    assert recalls(MULTI, [pair(F1, CUP, CUP_BOX, multi_probs(above=0.0, beneath=0.0))], "semi")[10] == 40.0
    # An attention row with looking_at + not_looking_at == 0 yields nothing,
    # even when 'unsure' (probability 1) is the right answer.
    unsure = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["unsure"]}]}
    only_unsure = multi_probs(looking_at=0.0, not_looking_at=0.0, unsure=1.0)
    assert recalls(unsure, [pair(F1, CUP, CUP_BOX, only_unsure)], "semi")[10] == 0.0
    assert recalls(unsure, [pair(F1, CUP, CUP_BOX, only_unsure)], "with")[10] == 100.0


# --------------------------------------------------------------------------- no


NO_GT = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["not_looking_at"], "spatial": ["in"], "contacting": ["holding"]}]}
# Column j scores 0.9 - 0.01 j: the cup's cells rank in column order.
DESCENDING = 0.9 - 0.01 * np.arange(NUM_PREDICATES)


def test_no_constraint_ranks_all_cells_and_cuts_at_k():
    # Ranks 1 (not_looking_at), 8 (in) and 14 (holding).
    rows = [pair(F1, CUP, CUP_BOX, DESCENDING)]
    assert recalls(NO_GT, rows, "no") == pytest.approx({10: 200 / 3, 20: 100.0, 50: 100.0, 100: 100.0})
    # A table pair scoring 0.95 everywhere pushes them to ranks 27, 34 and 40.
    rows.append(pair(F1, TABLE, TABLE_BOX, np.full(NUM_PREDICATES, 0.95)))
    assert recalls(NO_GT, rows, "no") == {10: 0.0, 20: 0.0, 50: 100.0, 100: 100.0}
    # Keeping only the top 30 cells keeps rank 27 alone.
    assert recalls(NO_GT, rows, "no", no_constraint_top_k=30)[100] == pytest.approx(100 / 3)


def test_no_constraint_zero_cells_fill_the_top_100():
    # One pair labelled (cup, person): its in-group cells cannot hit, but
    # zero-score out-of-group cells can. Cells are numbered row * 26 + column
    # over the rows (attention, spatial, contacting). The 26 positive cells
    # rank 0..25, then the 52 zeros in reverse cell order:
    #   (cup, beneath, person): attention row cell 4 and contacting row cell 56 -> rank 30;
    #   (person, looking_at, cup): spatial row cell 26 -> rank 54.
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"], "spatial": ["beneath"]}]}
    rows = [pair(F1, PERSON_INDEX, PERSON_BOX, DESCENDING, subject_class=CUP, subject_box=CUP_BOX)]
    assert recalls(gt, rows, "no", ks=(30, 31, 54, 55)) == {30: 0, 31: 50, 54: 50, 55: 100}
    # Top 60 keeps the 34 zero cells with the lowest numbers (3..28, 35..42):
    # cell 56 is out; among the kept, cell 26 ranks 36 and cell 4 ranks 58.
    assert recalls(gt, rows, "no", ks=(36, 37, 58, 59), no_constraint_top_k=60) == {36: 0, 37: 50, 58: 50, 59: 100}
    assert recalls(gt, rows, "with")[100] == 0.0


# --------------------------------------------------------------------------- all constraints


@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_iou_threshold_uses_the_legacy_plus_one_convention(constraint):
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"]}]}
    probs = dist(looking_at=1.0, carrying=0.5, above=0.5)

    def hit(object_box, **settings) -> float:
        return recalls(gt, [pair(F1, CUP, object_box, probs)], constraint, **settings)[100]

    # Against 100 x 100 (+1 px), a 100 x 50 box has IoU exactly 0.5: a hit.
    assert hit((100.0, 0.0, 199.0, 49.0)) == 100.0
    assert hit((100.0, 0.0, 199.0, 49.1)) == 100.0
    assert hit((100.0, 0.0, 199.0, 48.9)) == 0.0
    # Without the +1, the same box is 99 x 49 against 99 x 99: IoU 0.495.
    assert hit((100.0, 0.0, 199.0, 49.0), legacy_plus_one=False) == 0.0
    assert hit((100.0, 0.0, 199.0, 49.0), iou_threshold=0.6) == 0.0


def test_both_boxes_must_overlap():
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"]}]}
    probs = dist(looking_at=1.0)
    good = pair(F1, CUP, CUP_BOX, probs)
    bad_subject = pair(F1, CUP, CUP_BOX, probs, subject_box=(0.0, 0.0, 99.0, 48.9))
    wrong_class = pair(F1, TABLE, CUP_BOX, probs)
    assert recalls(gt, [good], "with")[10] == 100.0
    assert recalls(gt, [bad_subject], "with")[10] == 0.0
    assert recalls(gt, [wrong_class], "with")[10] == 0.0


def test_pairwise_iou_matches_hand_values():
    gt = np.array([[0.0, 0.0, 99.0, 99.0]] * 3)
    pred = np.array([[0.0, 0.0, 99.0, 49.0], [200.0, 200.0, 300.0, 300.0], [50.0, 50.0, 149.0, 149.0]])
    np.testing.assert_array_equal(rowwise_iou(gt, pred), [0.5, 0.0, 2500 / 17500])
    np.testing.assert_allclose(rowwise_iou(gt, pred, legacy_plus_one=False), [99 * 49 / 9801, 0.0, 49 * 49 / (2 * 9801 - 2401)])


@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_frame_without_predictions_scores_zero_and_counts_in_the_mean(constraint):
    gt = {F1: [{"cls": CUP, "box": CUP_BOX}], F2: [{"cls": CUP, "box": CUP_BOX}]}
    rows = [pair(F1, CUP, CUP_BOX, dist(looking_at=1.0, carrying=0.5, above=0.5))]
    result = run(gt, rows, constraint)
    np.testing.assert_array_equal(result.frame_recall[:, 1], 0.0)
    assert result.metrics()["R@20"] == 50.0


@pytest.mark.parametrize("constraint", ["with", "semi", "no"])
def test_a_triplet_hit_by_several_predictions_counts_once(constraint):
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "contacting": ["holding"]}, {"cls": TABLE, "box": TABLE_BOX}]}
    probs = dist(looking_at=1.0, holding=0.99, carrying=0.5, above=0.5)
    shifted = (101.0, 1.0, 200.0, 100.0)  # still IoU > 0.5
    rows = [pair(F1, CUP, CUP_BOX, probs), pair(F1, CUP, shifted, probs), pair(F1, CUP, CUP_BOX, probs)]
    result = run(gt, rows, constraint)
    # 3 GT triplets: cup looking_at, cup holding (both hit), table looking_at (missed).
    assert result.recall(10) == pytest.approx(2 / 3)
    hits = result.predicate_hits[0]
    assert hits[PREDICATE_INDEX["looking_at"]] == 1 and hits[PREDICATE_INDEX["holding"]] == 1


def test_mean_recall_averages_dataset_level_predicate_recall_over_26():
    # Frame 1: cup looking_at + holding; frame 2: cup looking_at. Only frame
    # 1's looking_at and holding are predicted: looking_at 1/2, holding 1/1.
    gt = {F1: [{"cls": CUP, "box": CUP_BOX, "contacting": ["holding"]}], F2: [{"cls": CUP, "box": CUP_BOX}]}
    rows = [pair(F1, CUP, CUP_BOX, dist(looking_at=1.0, holding=0.9))]
    result = run(gt, rows, "with")
    assert result.recall(10) == pytest.approx((1.0 + 0.0) / 2)
    recall = result.predicate_recall(10)
    assert recall[PREDICATE_INDEX["looking_at"]] == 0.5 and recall[PREDICATE_INDEX["holding"]] == 1.0
    assert np.isnan(recall[PREDICATE_INDEX["eating"]])  # no ground truth
    assert result.mean_recall(10) == pytest.approx(1.5 / 26)
    metrics = result.metrics()
    assert metrics["R@10"] == pytest.approx(50.0) and metrics["mR@10"] == pytest.approx(150 / 26)


def test_object_scores_scale_triplet_scores():
    # The table pair is more confident per predicate but its detection score
    # (0.5 * 0.5) ranks its cells below the cup's in 'no'.
    rows = [
        pair(F1, TABLE, TABLE_BOX, np.full(NUM_PREDICATES, 0.95), scores=(0.5, 0.5)),
        pair(F1, CUP, CUP_BOX, DESCENDING),
    ]
    assert recalls(NO_GT, rows, "no")[20] == 100.0


def test_unknown_constraint_and_bad_k_are_refused():
    gt = {F1: [{"cls": CUP, "box": CUP_BOX}]}
    rows = [pair(F1, CUP, CUP_BOX, dist(looking_at=1.0))]
    with pytest.raises(ValueError, match="unknown constraint"):
        run(gt, rows, "none")
    with pytest.raises(ValueError, match="positive"):
        run(gt, rows, "with", ks=(0,))

"""The perfect-classifier ceiling and the per-group recall that say where R@K with constraint is lost."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_cases import CUP, CUP_BOX, TABLE, TABLE_BOX, dist, index_tables, key, pair, run

from pipeline.constants import GROUPS, PREDICATE_INDEX
from pipeline.evaluation.ceiling import FLOOR, perfect_predictions, recall_ceiling

# Frame 1: the cup has two spatial labels, so with constraint one of the frame's 7 triplets is out of reach.
FRAMES = {
    key(1): [
        {"cls": CUP, "box": CUP_BOX, "attention": ["looking_at"], "spatial": ["in_front_of", "on_the_side_of"],
         "contacting": ["holding"]},
        {"cls": TABLE, "box": TABLE_BOX, "attention": ["not_looking_at"], "spatial": ["beneath"],
         "contacting": ["not_contacting"]},
    ],
    key(2): [{"cls": CUP, "box": CUP_BOX, "attention": ["unsure"], "spatial": ["in_front_of"], "contacting": []}],
}  # fmt: skip


def test_perfect_predictions_score_the_labels_one_and_every_other_cell_the_floor():
    frames, objects = index_tables(FRAMES)
    table = perfect_predictions(frames, objects)
    assert table.height == 3 and table["object_label"].to_list() == [CUP, TABLE, CUP]
    spatial = np.array(table["spatial"].to_list()[0])
    labelled = [
        PREDICATE_INDEX[p] - GROUPS["spatial"].start for p in ("in_front_of", "on_the_side_of")
    ]
    assert spatial[labelled].tolist() == [1.0, 1.0]
    assert np.delete(spatial, labelled).tolist() == [FLOOR] * 4
    assert (
        np.array(table["contacting"].to_list()[2]).max() == FLOOR
    )  # no contacting label: nothing scored 1


@pytest.mark.parametrize(
    "constraint, expected", [("with", 100 * (6 / 7 + 2 / 2) / 2), ("semi", 100.0), ("no", 100.0)]
)
def test_the_ceiling_is_the_recall_of_the_perfect_classifier(constraint, expected):
    frames, objects = index_tables(FRAMES)
    ceiling = recall_ceiling(frames, objects, "test", "predcls", ks=(20,))
    assert ceiling[constraint]["R@20"] == pytest.approx(expected)


def test_group_recall_counts_each_groups_hits_over_its_triplets():
    frames = {key(1): FRAMES[key(1)]}
    rows = [  # attention right for the cup only; spatial: one of the cup's two labels, the table's; contacting all wrong
        pair(key(1), CUP, CUP_BOX, dist(looking_at=0.9, in_front_of=0.8, touching=0.7)),
        pair(key(1), TABLE, TABLE_BOX, dist(looking_at=0.9, beneath=0.8, holding=0.7)),
    ]
    recall = run(frames, rows, "with", ks=(20,)).group_recall(20)
    assert recall == {"attention": 0.5, "spatial": pytest.approx(2 / 3), "contacting": 0.0}


def test_a_group_without_ground_truth_has_no_recall():
    frames = {key(2): FRAMES[key(2)]}
    recall = run(
        frames, [pair(key(2), CUP, CUP_BOX, dist(unsure=0.9, in_front_of=0.8))], "with", ks=(20,)
    ).group_recall(20)
    assert (
        recall["attention"] == 1.0 and recall["spatial"] == 1.0 and math.isnan(recall["contacting"])
    )

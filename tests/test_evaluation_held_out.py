"""Held-out (predicate, object) combinations: read from the index, scored by the AG evaluator."""

from __future__ import annotations

import polars as pl
import pytest
from evaluation_cases import CUP, CUP_BOX, TABLE, TABLE_BOX, dist, index_tables, key, pair, table_of

from pipeline.ag.reader import relations_from_objects
from pipeline.constants import PREDICATE_INDEX
from pipeline.evaluation import build_ground_truth
from pipeline.evaluation.held_out import (
    held_out_combinations,
    held_out_recall,
    restrict_ground_truth,
)
from pipeline.params import EvaluateParams

TRAIN = {
    key(1, "train01"): [
        {"cls": CUP, "box": CUP_BOX, "contacting": ["holding"]},
        {"cls": TABLE, "box": TABLE_BOX, "contacting": ["touching"]},
    ],
}
TEST = {
    # drinking_from a cup never occurs in train: held out; touching a table does
    key(1): [
        {"cls": CUP, "box": CUP_BOX, "contacting": ["drinking_from"]},
        {"cls": TABLE, "box": TABLE_BOX, "contacting": ["touching"]},
    ],
    key(2): [{"cls": CUP, "box": CUP_BOX, "contacting": ["holding"]}],
}


def _relations() -> pl.DataFrame:
    objects = pl.concat([index_tables(TRAIN, "train")[1], index_tables(TEST, "test")[1]])
    return relations_from_objects(objects)


def test_held_out_combinations_are_test_contacting_pairs_never_in_train():
    combos = held_out_combinations(_relations())
    assert combos.rows() == [(PREDICATE_INDEX["drinking_from"], CUP)]


def test_restricted_ground_truth_keeps_only_held_out_triplets_and_their_frames():
    truth = build_ground_truth(*index_tables(TEST))
    subset = restrict_ground_truth(truth, held_out_combinations(_relations()))
    assert subset.frames.tolist() == [key(1)] and subset.num_triplets == 1
    assert subset.predicate.tolist() == [PREDICATE_INDEX["drinking_from"]] and subset.object_class.tolist() == [CUP]
    assert restrict_ground_truth(truth, held_out_combinations(_relations()).clear()) is None


@pytest.mark.parametrize("argmax, expected", [("drinking_from", 100.0), ("holding", 0.0)])
def test_held_out_recall_scores_only_the_held_out_triplets(argmax, expected):
    truth = build_ground_truth(*index_tables(TEST))
    rows = [
        pair(key(1), CUP, CUP_BOX, dist(looking_at=0.9, **{argmax: 0.8})),
        pair(key(1), TABLE, TABLE_BOX, dist(looking_at=0.9, touching=0.7)),
        pair(key(2), CUP, CUP_BOX, dist(looking_at=0.9, holding=0.6)),  # a frame without held-out triplets
    ]
    result = held_out_recall(table_of(rows), truth, held_out_combinations(_relations()), EvaluateParams())
    assert result == {"R@20": expected, "argmax_accuracy": expected, "combinations": 1, "pairs": 1, "frames": 1}


def test_no_held_out_combination_gives_none_and_zero_counts():
    truth = build_ground_truth(*index_tables(TEST))
    rows = [pair(key(1), CUP, CUP_BOX, dist(looking_at=0.9, holding=0.8))]
    empty = held_out_combinations(_relations()).clear()
    result = held_out_recall(table_of(rows), truth, empty, EvaluateParams())
    assert result == {"R@20": None, "argmax_accuracy": None, "combinations": 0, "pairs": 0, "frames": 0}


def test_probe_and_evaluator_share_one_definition_of_held_out_triplets():
    from pipeline.ag.held_out import held_out_triplets

    holding, touching = PREDICATE_INDEX["holding"], PREDICATE_INDEX["touching"]
    relations = pl.DataFrame(
        {
            "frame": ["a/1", "b/1", "c/1", "c/2", "d/1"],
            "video": ["a", "b", "c", "c", "d"],
            "split": ["train", "val", "test", "test", "test"],
            "object_class": [CUP, TABLE, CUP, TABLE, TABLE],
            "predicate": [holding, touching, holding, touching, touching],
            "group": ["contacting"] * 5,
        },
        schema_overrides={"object_class": pl.Int16, "predicate": pl.Int16},
    )
    # touching a table is only in val: held out from train, seen once val counts
    assert held_out_triplets(relations)["frame"].to_list() == ["c/2", "d/1"]
    assert held_out_triplets(relations, seen_splits=("train", "val")).height == 0
    combos = held_out_combinations(relations)
    assert combos.rows() == [(touching, TABLE)]

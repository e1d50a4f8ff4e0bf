"""Which detections overlays and `mosa predict` graphs show: score threshold, then class-aware NMS."""

from __future__ import annotations

import polars as pl

from pipeline.viz.detections import MIN_OBJECT_SCORE, shown_pairs


def pairs(rows: list[tuple[int, list[float], float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "frame": ["V.mp4/000001.png"] * len(rows),
            "object_label": [r[0] for r in rows],
            "object_box": [r[1] for r in rows],
            "object_score": [r[2] for r in rows],
        }
    )


def test_low_scores_go_and_same_class_overlaps_keep_the_best_box():
    bag, cup = 2, 11
    table = pairs(
        [
            (bag, [10.0, 10.0, 30.0, 30.0], 0.6),
            (bag, [11.0, 10.0, 31.0, 30.0], 0.9),  # same bag, better score: kept, the 0.6 box goes
            (cup, [10.0, 10.0, 30.0, 30.0], 0.5),  # another class on the same spot stays
            (bag, [100.0, 10.0, 120.0, 30.0], 0.4),  # a second bag elsewhere stays
            (cup, [50.0, 50.0, 60.0, 60.0], MIN_OBJECT_SCORE - 0.01),  # below the threshold
        ]
    )
    shown = shown_pairs(table)
    assert shown["object_score"].to_list() == [0.9, 0.5, 0.4]
    assert shown["object_label"].to_list() == [bag, cup, bag]
    assert shown_pairs(table, min_score=0.0, nms_iou=1.0).height == 5  # nothing filtered


def test_ground_truth_boxes_pass_the_threshold():
    table = pairs([(2, [0.0, 0.0, 10.0, 10.0], 1.0), (2, [0.0, 0.0, 10.0, 10.0], 1.0)])
    # Score 1 passes any threshold; two same-class boxes on one spot still collapse to one.
    assert shown_pairs(table).height == 1
    assert shown_pairs(pairs([])).height == 0

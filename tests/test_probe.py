"""The synthetic benchmark is certified by its probes: motion decides, a single frame does not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipeline.ag.at_hand import AT_HAND_PREDICATES, at_hand_pairs
from pipeline.ag.reader import build_ag_index
from pipeline.ag.synth import HELD_OUT_COMBOS, write_synthetic_ag
from pipeline.constants import OBJECT_INDEX, PREDICATE_INDEX
from pipeline.motion import motion_table
from pipeline.params import MotionParams, SynthParams
from pipeline.probe import (
    GEOMETRY_MAX_ABOVE_CHANCE,
    MOTION_MIN_BALANCED_ACCURACY,
    balanced_accuracy,
    fit_logistic,
    probe_tables,
)

# small frames keep PNG writing cheap; the geometry is in pixels and does not depend on them
PROBE_SYNTH = SynthParams(videos=80, seed=3, width=256, height=192)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe") / "ag"
    write_synthetic_ag(root, PROBE_SYNTH, progress=False)
    index = build_ag_index(root, val_fraction=0.15, split_seed=0, small_box_side=16.0)
    return index, motion_table(index.frames, index.objects, MotionParams())


def test_motion_attributes_decide_and_single_frame_geometry_does_not(benchmark):
    index, motion = benchmark
    result = probe_tables(index.frames, index.objects, motion)
    assert result["motion"]["balanced_accuracy"] >= MOTION_MIN_BALANCED_ACCURACY, result
    assert (
        result["geometry"]["balanced_accuracy"] <= result["chance"] + GEOMETRY_MAX_ABOVE_CHANCE
    ), result
    assert result["passed"]


def test_without_track_speeds_holding_and_at_hand_not_contacting_are_confused(benchmark):
    # the reason track_speed exists: no base attribute says which box moves
    index, _ = benchmark
    params = MotionParams(extras={"relative_displacement": False, "log_area_ratio": False, "scale_change": False,
                                  "track_speed": False})  # fmt: skip
    result = probe_tables(
        index.frames, index.objects, motion_table(index.frames, index.objects, params)
    )
    assert result["motion"]["balanced_accuracy"] < MOTION_MIN_BALANCED_ACCURACY


def test_at_hand_classes_are_balanced_and_every_split_holds_them(benchmark):
    index, _ = benchmark
    pairs = at_hand_pairs(index.objects)
    for split in ("train", "val", "test"):
        present = set(pairs.filter(pl.col("split") == split)["motion_class"].to_list())
        assert present == {PREDICATE_INDEX[name] for name in AT_HAND_PREDICATES}, split
    videos = pairs.select("video", "motion_class").unique().group_by("motion_class").len()["len"]
    assert videos.max() <= 2 * videos.min()


def test_held_out_combinations_never_occur_in_train(benchmark):
    index, _ = benchmark
    objects = index.objects.explode("contacting")
    seen = 0
    for predicate, name in HELD_OUT_COMBOS:
        combo = (pl.col("contacting") == PREDICATE_INDEX[predicate]) & (
            pl.col("object_class") == OBJECT_INDEX[name]
        )
        assert objects.filter(combo & (pl.col("split") != "test")).height == 0, (predicate, name)
        seen += objects.filter(combo & (pl.col("split") == "test")).height
    assert seen > 0


def test_logistic_regression_separates_separable_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    features = rng.normal(size=(150, 2)) * 0.3 + np.array([[0, 0], [3, 0], [0, 3]])[labels]
    mean, std, weights, bias = fit_logistic(features, labels, 3)
    predicted = (((features - mean) / std) @ weights + bias).argmax(axis=1)
    assert balanced_accuracy(labels, predicted) > 0.97
    assert balanced_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1])) == pytest.approx(0.75)

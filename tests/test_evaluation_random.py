"""The vectorised evaluator against the per-frame oracle on random problems."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_oracle import evaluate_oracle, random_problem

from pipeline.evaluation import evaluate
from pipeline.params import EvaluateParams

SETTINGS = {
    "default": EvaluateParams(),
    "modern iou, low threshold, short list": EvaluateParams(legacy_plus_one=False, iou_threshold=0.4, semi_threshold=0.5, no_constraint_top_k=40),
}


@pytest.mark.parametrize("tie_prone", [False, True], ids=["continuous", "tie-prone"])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_fast_evaluator_equals_oracle(tie_prone, name):
    settings = SETTINGS[name]
    gt, pred = random_problem(np.random.default_rng(2024 + tie_prone), 2000, tie_prone=tie_prone)
    ks = (1, 5, 10, 20, 50, 100)
    fast = evaluate(gt, pred, settings, ks=ks)
    for constraint, result in fast.items():
        oracle = evaluate_oracle(gt, pred, constraint, settings, ks=ks)
        np.testing.assert_allclose(result.frame_recall, oracle["frame_recall"], rtol=0, atol=1e-9, err_msg=constraint)
        np.testing.assert_array_equal(result.predicate_hits, oracle["predicate_hits"], err_msg=constraint)
        np.testing.assert_array_equal(result.predicate_counts, oracle["predicate_counts"], err_msg=constraint)
        if constraint == "no":  # the problem is hard enough that the cut-offs matter
            assert 0 < result.recall(10) < result.recall(100)


def test_many_pairs_per_frame_and_empty_frames():
    # Detection-like frames with many pairs (wide rows in the rank matrix).
    gt, pred = random_problem(np.random.default_rng(5), 200, mean_pairs=12.0, tie_prone=True)
    for constraint, result in evaluate(gt, pred).items():
        oracle = evaluate_oracle(gt, pred, constraint)
        np.testing.assert_allclose(result.frame_recall, oracle["frame_recall"], rtol=0, atol=1e-9, err_msg=constraint)


def test_no_predictions_at_all():
    gt, pred = random_problem(np.random.default_rng(1), 20)
    empty = type(pred)(*(getattr(pred, f)[:0] for f in pred.__dataclass_fields__))
    for result in evaluate(gt, empty).values():
        assert result.metrics()["R@100"] == 0.0 and result.metrics()["mR@100"] == 0.0

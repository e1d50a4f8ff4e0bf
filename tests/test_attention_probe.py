"""The attention probe: the person's feature times the object's side reads a gaze label that neither reads alone."""

from __future__ import annotations

import numpy as np
import pytest
from support.training_caches import write_synthetic_caches

from pipeline.attention_probe import FEATURE_SETS, attention_probe, probe_scores


def test_only_the_interaction_reads_a_gaze_times_side_label():
    rng = np.random.default_rng(0)
    n = 800
    gaze = rng.choice([-1.0, 1.0], n)
    person = np.column_stack([gaze + 0.3 * rng.standard_normal(n), rng.standard_normal((n, 3))]).astype(np.float32)
    side = rng.choice([-1.0, 1.0], n).astype(np.float32)
    label = (gaze * side < 0).astype(np.int64)  # looking_at (0) when the object is on the gaze side
    scores = probe_scores(person, side, label, np.arange(n) >= 600)
    assert scores["person_roi_x_side"] > 0.95
    assert abs(scores["person_roi_only"] - 0.5) < 0.1 and abs(scores["side_only"] - 0.5) < 0.1


def test_the_probe_reads_the_index_and_the_roi_cache(tmp_path):
    params = write_synthetic_caches(tmp_path)
    result = attention_probe(params.dataset.index_dir, params.extract.out_dir)
    assert set(result["balanced_accuracy"]) == set(FEATURE_SETS)
    assert result["pairs"]["fit"] > 0 and result["pairs"]["test"] > 0
    assert all(0.0 <= v <= 1.0 for v in result["balanced_accuracy"].values())
    assert result["chance"] == pytest.approx(0.5)

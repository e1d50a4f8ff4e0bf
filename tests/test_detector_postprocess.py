"""AG-style SGDet post-processing on hand-made detector outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.detector.postprocess import ag_class_scores, postprocess_detections
from pipeline.params import DetectionPostprocessParams

# A 3-class detector whose labels are (person, chair, table) in AG indices.
AG_LABELS = np.array([1, 8, 32], dtype=np.int16)
PERSON, CHAIR, TABLE = 0, 1, 2


def make_outputs(
    rows: list[tuple[list[float], dict[int, float]]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposals as (box, {label: score}); every class regresses to the same box; rest is background."""
    boxes = torch.tensor([box * len(AG_LABELS) for box, _ in rows], dtype=torch.float32)
    scores = torch.zeros(len(rows), len(AG_LABELS) + 1)
    for i, (_, label_scores) in enumerate(rows):
        for label, score in label_scores.items():
            scores[i, label] = score
        scores[i, -1] = 1.0 - sum(label_scores.values())
    return boxes, scores


def run(rows, **overrides):
    params = DetectionPostprocessParams(**{"score_threshold": 0.3, "nms_iou": 0.5, **overrides})
    boxes, scores = make_outputs(rows)
    return postprocess_detections(boxes, scores, AG_LABELS, params)


def test_threshold_drops_low_scores():
    dets = run(
        [
            ([0, 0, 10, 10], {PERSON: 0.9}),
            ([20, 20, 30, 30], {CHAIR: 0.2}),
            ([40, 40, 50, 50], {TABLE: 0.4}),
        ]
    )
    assert dets.labels.tolist() == [1, 32]


def test_nms_is_per_class():
    dets = run(
        [
            ([0, 0, 10, 10], {PERSON: 0.9}),
            ([20, 20, 40, 40], {CHAIR: 0.8}),
            ([21, 21, 41, 41], {CHAIR: 0.7}),  # overlaps the first chair: suppressed
            ([20, 20, 40, 40], {TABLE: 0.6}),  # same box, other class: kept
        ]
    )
    assert dets.labels.tolist() == [1, 8, 32]
    assert dets.scores.tolist() == pytest.approx([0.9, 0.8, 0.6])


def test_only_the_best_person_is_kept_and_comes_first():
    rows = [
        ([50, 50, 60, 60], {CHAIR: 0.95}),
        ([0, 0, 10, 10], {PERSON: 0.6}),
        ([30, 0, 40, 10], {PERSON: 0.8}),
    ]
    dets = run(rows)
    assert dets.labels.tolist() == [1, 8]
    assert dets.boxes[0].tolist() == [30, 0, 40, 10]
    assert run(rows, person_top1=False).labels.tolist() == [1, 1, 8]


def test_person_fallback_keeps_best_person_below_threshold():
    rows = [
        ([0, 0, 10, 10], {PERSON: 0.1}),
        ([30, 0, 40, 10], {PERSON: 0.2}),
        ([50, 50, 60, 60], {CHAIR: 0.9}),
    ]
    dets = run(rows)
    assert dets.labels.tolist() == [1, 8]
    assert dets.boxes[0].tolist() == [30, 0, 40, 10]
    assert dets.scores[0].item() == pytest.approx(0.2)
    assert run(rows, person_fallback=False).labels.tolist() == [8]


def test_max_objects_keeps_highest_scores_in_order():
    rows = [([0, 0, 5, 5], {PERSON: 0.9})] + [
        ([10 * i, 50, 10 * i + 8, 58], {CHAIR: 0.3 + 0.05 * i}) for i in range(6)
    ]
    dets = run(rows, max_objects=3)
    assert dets.labels.tolist() == [1, 8, 8, 8]
    assert dets.scores[1:].tolist() == pytest.approx([0.55, 0.5, 0.45])


def test_class_scores_are_the_proposal_distribution_in_ag_columns():
    dets = run([([0, 0, 10, 10], {PERSON: 0.7, CHAIR: 0.2})])
    dist = dets.class_scores[0]
    assert dist.shape == (37,)
    assert dist[1].item() == pytest.approx(0.7)
    assert dist[8].item() == pytest.approx(0.2)
    assert dist[0].item() == pytest.approx(0.1)  # background
    assert dist.sum().item() == pytest.approx(1.0)


def test_ag_class_scores_follows_the_label_map():
    scores = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    out = ag_class_scores(scores, np.array([32, 1, 8]))
    assert out[0, [32, 1, 8, 0]].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert out[0].sum().item() == pytest.approx(1.0)


def test_class_specific_boxes_are_used():
    boxes = torch.tensor([[0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 1, 1]], dtype=torch.float32)
    scores = torch.tensor([[0.5, 0.4, 0.0, 0.1]])
    dets = postprocess_detections(
        boxes, scores, AG_LABELS, DetectionPostprocessParams(score_threshold=0.3)
    )
    assert dets.boxes.tolist() == [[0, 0, 10, 10], [20, 20, 30, 30]]


def test_no_proposals_gives_empty_detections():
    boxes, scores = torch.zeros(0, 12), torch.zeros(0, 4)
    dets = postprocess_detections(boxes, scores, AG_LABELS, DetectionPostprocessParams())
    assert len(dets) == 0 and dets.class_scores.shape == (0, 37)

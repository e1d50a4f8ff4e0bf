"""Can attention be read from the cached features? A linear probe, beside the head's attention recall.

Usage::

    mosa attention-probe              # the default pipeline's index and ROI cache
    result = attention_probe(index_dir, roi_dir)

``looking_at`` against ``not_looking_at`` depends on where the person looks
and on which side of the person the object is. The probe fits the benchmark
probes' class-balanced logistic regression (:func:`pipeline.probe.fit_logistic`)
on ``[f_p, side * f_p, side]``, with ``f_p`` the person's ROI feature in the
frame (the ground-truth box's, as PredCls reads it) and ``side`` the sign of
the object's centre x minus the person's, over the train and validation
pairs labelled with one of the two, and scores balanced accuracy on test.
Controls: ``f_p`` alone and ``side`` alone, each near chance when the label
needs both. A probe well above the head's attention recall on test
(``group_recall_by_split`` in ``metrics/<mode>.json``) says the features
carry the signal and the head does not learn it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipeline.ag.reader import read_index
from pipeline.constants import PERSON_INDEX, PREDICATE_INDEX
from pipeline.extraction.cache import RoiCache
from pipeline.io import DataError
from pipeline.probe import balanced_accuracy, fit_logistic

LABELS = ("looking_at", "not_looking_at")
FEATURE_SETS = ("person_roi_x_side", "person_roi_only", "side_only")


def person_features(cache: RoiCache) -> dict[str, np.ndarray]:
    """Frame key -> the person's ground-truth ROI feature (float32)."""
    out = {}
    for _, video in cache.iter_videos(("frame", "gt_offsets", "gt_labels", "gt_features")):
        for k, frame in enumerate(video["frame"]):
            rows = np.arange(video["gt_offsets"][k], video["gt_offsets"][k + 1])
            person = rows[video["gt_labels"][rows] == PERSON_INDEX]
            if len(person):
                out[str(frame)] = video["gt_features"][person[0]].astype(np.float32)
    return out


def probe_scores(person: np.ndarray, side: np.ndarray, label: np.ndarray, is_test: np.ndarray) -> dict[str, float]:
    """Balanced accuracy on the test rows of each feature set, fitted on the others."""
    sets = {
        "person_roi_x_side": np.hstack([person, person * side[:, None], side[:, None]]),
        "person_roi_only": person,
        "side_only": side[:, None],
    }
    scores = {}
    for name, features in sets.items():
        mean, std, weights, bias = fit_logistic(features[~is_test], label[~is_test], len(LABELS))
        predicted = np.argmax(((features[is_test] - mean) / std) @ weights + bias, axis=1)
        scores[name] = balanced_accuracy(label[is_test], predicted)
    return scores


def attention_probe(index_dir: str | Path, roi_dir: str | Path) -> dict:
    """The probe's balanced accuracies on test and the pair counts it read."""
    index = read_index(index_dir)
    pairs = (
        index.objects.join(index.frames.select("frame", "person_x1", "person_x2"), on="frame")
        .with_columns(pl.col("attention").list.first().alias("label"))
        .filter(pl.col("label").is_in([PREDICATE_INDEX[name] for name in LABELS]))
    )
    with RoiCache(roi_dir) as cache:
        features = person_features(cache)
    pairs = pairs.filter(pl.col("frame").is_in(list(features)))
    is_test = (pairs["split"] == "test").to_numpy()
    if not is_test.any() or is_test.all():
        raise DataError(f"{index_dir}: the attention probe needs labelled pairs in test and in train/val")
    side = np.sign(((pairs["x1"] + pairs["x2"]) - (pairs["person_x1"] + pairs["person_x2"])).to_numpy()).astype(np.float32)
    label = (pairs["label"] == PREDICATE_INDEX["not_looking_at"]).cast(pl.Int64).to_numpy()
    person = np.stack([features[frame] for frame in pairs["frame"].to_list()])
    return {
        "balanced_accuracy": probe_scores(person, side, label, is_test),
        "pairs": {"fit": int((~is_test).sum()), "test": int(is_test.sum())},
        "chance": 1 / len(LABELS),
    }

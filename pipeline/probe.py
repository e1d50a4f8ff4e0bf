"""Benchmark probes: does the data make motion decisive, before any head is trained?

Two linear classifiers are fitted on the train split's *at-hand* pairs
(:mod:`pipeline.ag.at_hand`) and scored by
balanced accuracy on the test split's at-hand pairs:

* **motion** — the cached MFE attributes of the pair's frame, alone;
* **geometry** — the pair's single-frame box geometry, alone: the object box
  relative to the person box (centre offset and size over the person's
  size) and their IoU.

The synthetic default is designed so that the first reaches at least
:data:`MOTION_MIN_BALANCED_ACCURACY` while the second stays within
:data:`GEOMETRY_MAX_ABOVE_CHANCE` of chance: the motion classes are then
separable by motion and by nothing a single frame shows.

The classifier is a class-balanced multinomial logistic regression on
standardised features (full-batch gradient descent, fixed steps: no
dependency, deterministic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from pipeline.ag.at_hand import AT_HAND_PREDICATES, at_hand_pairs
from pipeline.constants import PREDICATE_INDEX
from pipeline.io import DataError, atomic_write_json, read_parquet
from pipeline.motion.attributes import PAIR_KEY_COLUMNS

MOTION_MIN_BALANCED_ACCURACY = 0.90
GEOMETRY_MAX_ABOVE_CHANCE = 0.15
GEOMETRY_FEATURES = ("offset_x", "offset_y", "width_ratio", "height_ratio", "iou")


def geometry_features(pairs: pl.DataFrame) -> pl.DataFrame:
    """Single-frame geometry of (object, person) boxes: needs x1..y2 and person_x1..person_y2."""
    pw = pl.col("person_x2") - pl.col("person_x1")
    ph = pl.col("person_y2") - pl.col("person_y1")
    inter_w = (pl.min_horizontal("x2", "person_x2") - pl.max_horizontal("x1", "person_x1")).clip(
        lower_bound=0
    )
    inter_h = (pl.min_horizontal("y2", "person_y2") - pl.max_horizontal("y1", "person_y1")).clip(
        lower_bound=0
    )
    area_o = (pl.col("x2") - pl.col("x1")) * (pl.col("y2") - pl.col("y1"))
    inter = inter_w * inter_h
    return pairs.select(
        offset_x=((pl.col("x1") + pl.col("x2")) - (pl.col("person_x1") + pl.col("person_x2")))
        / 2
        / pw,
        offset_y=((pl.col("y1") + pl.col("y2")) - (pl.col("person_y1") + pl.col("person_y2")))
        / 2
        / ph,
        width_ratio=(pl.col("x2") - pl.col("x1")) / pw,
        height_ratio=(pl.col("y2") - pl.col("y1")) / ph,
        iou=inter / (area_o + pw * ph - inter),
    )


def fit_logistic(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    steps: int = 2000,
    lr: float = 0.5,
    l2: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression; returns (mean, std, weights, bias)."""
    mean, std = features.mean(axis=0), features.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    x = (features - mean) / std
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    sample_weight = (1.0 / np.maximum(counts, 1.0))[labels]
    sample_weight /= sample_weight.sum()
    onehot = np.eye(classes)[labels]
    weights, bias = np.zeros((x.shape[1], classes)), np.zeros(classes)
    for _ in range(steps):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        grad = (prob - onehot) * sample_weight[:, None]
        weights -= lr * (x.T @ grad + l2 * weights)
        bias -= lr * grad.sum(axis=0)
    return mean, std, weights, bias


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over the classes present in ``truth`` of their recall."""
    recalls = [float((predicted[truth == c] == c).mean()) for c in np.unique(truth)]
    return float(np.mean(recalls)) if recalls else float("nan")


def _score(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, classes: int
) -> float:
    mean, std, weights, bias = fit_logistic(train_x, train_y, classes)
    predicted = (((test_x - mean) / std) @ weights + bias).argmax(axis=1)
    return balanced_accuracy(test_y, predicted)


def probe_tables(frames: pl.DataFrame, objects: pl.DataFrame, motion: pl.DataFrame) -> dict:
    """The probe metrics from an index's frames/objects tables and a motion table."""
    attributes = [c for c in motion.columns if c not in PAIR_KEY_COLUMNS]
    pairs = at_hand_pairs(objects).join(
        frames.select("frame", "person_x1", "person_y1", "person_x2", "person_y2"),
        on="frame",
        how="inner",
    )
    gt_motion = motion.filter(pl.col("source") == "gt").select(
        "frame", pl.col("object_index").alias("object_class"), *attributes
    )
    pairs = pairs.join(
        gt_motion.with_columns(pl.col("object_class").cast(pl.Int16)), on=["frame", "object_class"]
    )
    pairs = pairs.with_columns(geometry_features(pairs))
    names = list(AT_HAND_PREDICATES)
    label_of = {PREDICATE_INDEX[name]: i for i, name in enumerate(AT_HAND_PREDICATES)}
    train = pairs.filter(pl.col("split") == "train")
    test = pairs.filter(pl.col("split") == "test")
    for split, table in (("train", train), ("test", test)):
        if table.height == 0:
            raise DataError(f"probe: no at-hand pairs in the {split} split (objects of a hand-held class "
                            f"whose only contacting label is one of {', '.join(AT_HAND_PREDICATES)})")  # fmt: skip

    def labels(table: pl.DataFrame) -> np.ndarray:
        return np.array([label_of[p] for p in table["motion_class"].to_list()], dtype=np.int64)

    train_y, test_y = labels(train), labels(test)
    classes = len(AT_HAND_PREDICATES)
    chance = 1.0 / len(np.unique(test_y))
    motion_score = _score(
        train.select(attributes).to_numpy().astype(np.float64), train_y,
        test.select(attributes).to_numpy().astype(np.float64), test_y, classes,
    )  # fmt: skip
    geometry_score = _score(
        train.select(GEOMETRY_FEATURES).to_numpy(),
        train_y,
        test.select(GEOMETRY_FEATURES).to_numpy(),
        test_y,
        classes,
    )
    return {
        "classes": names,
        "at_hand_pairs": {
            split: {name: int((y == i).sum()) for i, name in enumerate(names)}
            for split, y in (("train", train_y), ("test", test_y))
        },
        "chance": chance,
        "motion": {"features": attributes, "balanced_accuracy": motion_score},
        "geometry": {"features": list(GEOMETRY_FEATURES), "balanced_accuracy": geometry_score},
        "bounds": {
            "motion_min_balanced_accuracy": MOTION_MIN_BALANCED_ACCURACY,
            "geometry_max_balanced_accuracy": chance + GEOMETRY_MAX_ABOVE_CHANCE,
        },
        "passed": bool(
            motion_score >= MOTION_MIN_BALANCED_ACCURACY
            and geometry_score <= chance + GEOMETRY_MAX_ABOVE_CHANCE
        ),
    }


def run_probe(index_dir: str | Path, motion_path: str | Path, out_path: str | Path) -> dict:
    """The probe stage: read the index and the motion table, write the metrics JSON."""
    index_dir = Path(index_dir)
    frames = read_parquet(index_dir / "frames.parquet", "index")
    objects = read_parquet(index_dir / "objects.parquet", "index")
    motion = read_parquet(Path(motion_path), "motion")
    result = probe_tables(frames, objects, motion)
    atomic_write_json(out_path, result)
    return result

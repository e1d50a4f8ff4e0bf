"""Small builders for hand-written evaluation cases (index tables and prediction rows)."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.ag.reader import FRAME_SCHEMA, OBJECT_SCHEMA
from pipeline.constants import OBJECT_INDEX, PERSON_INDEX, PREDICATE_INDEX
from pipeline.evaluation import (
    align_predictions,
    build_ground_truth,
    evaluate,
    predictions_table,
    validate_predictions,
)
from pipeline.params import EvaluateParams

PERSON_BOX = (0.0, 0.0, 99.0, 99.0)
CUP = OBJECT_INDEX["cup/glass/bottle"]
TABLE = OBJECT_INDEX["table"]
CUP_BOX = (100.0, 0.0, 199.0, 99.0)
TABLE_BOX = (0.0, 100.0, 99.0, 199.0)


def key(number: int, video: str = "vid01") -> str:
    return f"{video}.mp4/{number:06d}.png"


def index_tables(frames: dict[str, list[dict]], split: str = "test") -> tuple[pl.DataFrame, pl.DataFrame]:
    """frames/objects tables from ``{frame key: [object dict, ...]}``.

    An object dict has ``cls``, ``box`` (xyxy) and predicate-name lists
    ``attention``, ``spatial``, ``contacting``, optionally ``small``. Every
    frame's person box is :data:`PERSON_BOX`.
    """
    frame_rows, object_rows = [], []
    for frame_key, objects in frames.items():
        video, name = frame_key.split("/")
        number = int(name.split(".")[0])
        frame_rows.append((frame_key, video, number, split, 320, 240, *PERSON_BOX))
        for o in objects:
            object_rows.append(
                (
                    frame_key, video, number, split, o["cls"], *o["box"],
                    [PREDICATE_INDEX[p] for p in o.get("attention", ["looking_at"])],
                    [PREDICATE_INDEX[p] for p in o.get("spatial", [])],
                    [PREDICATE_INDEX[p] for p in o.get("contacting", [])],
                    o.get("small", False),
                )
            )  # fmt: skip
    return (
        pl.DataFrame(frame_rows, schema=FRAME_SCHEMA, orient="row"),
        pl.DataFrame(object_rows, schema=OBJECT_SCHEMA, orient="row"),
    )


def dist(default: float = 0.0, **probs: float) -> np.ndarray:
    """A 26-vector of predicate probabilities by name; unnamed ones get ``default``."""
    out = np.full(26, default)
    for name, value in probs.items():
        out[PREDICATE_INDEX[name]] = value
    return out


def pair(frame: str, object_class: int, object_box, probs: np.ndarray, *, subject_class: int = PERSON_INDEX,
         subject_box=PERSON_BOX, scores=(1.0, 1.0)) -> dict:  # fmt: skip
    return {
        "frame": frame,
        "subject_box": subject_box,
        "object_box": object_box,
        "subject_label": subject_class,
        "object_label": object_class,
        "subject_score": scores[0],
        "object_score": scores[1],
        "distribution": np.asarray(probs, dtype=np.float64),
    }


def table_of(rows: list[dict]) -> pl.DataFrame:
    dists = np.array([r["distribution"] for r in rows]).reshape(-1, 26)
    return predictions_table(
        frame=[r["frame"] for r in rows],
        subject_box=[r["subject_box"] for r in rows],
        object_box=[r["object_box"] for r in rows],
        subject_label=[r["subject_label"] for r in rows],
        object_label=[r["object_label"] for r in rows],
        subject_score=[r["subject_score"] for r in rows],
        object_score=[r["object_score"] for r in rows],
        attention=dists[:, 0:3],
        spatial=dists[:, 3:9],
        contacting=dists[:, 9:26],
    )


def run(frames: dict[str, list[dict]], rows: list[dict], constraint: str, ks=(10, 20, 50, 100), **settings):
    """Evaluate prediction rows against hand-written frames; the constraint's result."""
    gt = build_ground_truth(*index_tables(frames))
    aligned = align_predictions(validate_predictions(table_of(rows)), gt)
    return evaluate(gt, aligned, EvaluateParams(**settings), constraints=(constraint,), ks=ks)[constraint]


def recalls(frames, rows, constraint, ks=(10, 20, 50, 100), **settings) -> dict[int, float]:
    """``{K: R@K in percent}``."""
    result = run(frames, rows, constraint, ks, **settings)
    return {k: round(100 * result.recall(k), 9) for k in ks}

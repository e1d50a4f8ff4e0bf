"""Timeline of one video: each pair's predicates across its frames, predicted against annotated."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from PIL import Image

from pipeline.constants import PREDICATES
from pipeline.viz.triplets import object_name, predicted_triplets


def _predicted_cells(pairs: pl.DataFrame) -> dict[int, list[tuple[int, int, float]]]:
    """object class -> (frame_number, predicate, probability) of the with-constraint triplets."""
    cells: dict[int, list[tuple[int, int, float]]] = {}
    for pair in pairs.iter_rows(named=True):
        number = int(pair["frame"].rsplit("/", 1)[1].split(".")[0])
        for triplet in predicted_triplets(pair["object_label"], pair["attention"], pair["spatial"], pair["contacting"]):
            cells.setdefault(int(pair["object_label"]), []).append((number, triplet.predicate, float(triplet.score)))
    return cells


def _annotated_cells(objects: pl.DataFrame) -> dict[int, list[tuple[int, int]]]:
    cells: dict[int, list[tuple[int, int]]] = {}
    for obj in objects.iter_rows(named=True):
        for predicate in (*obj["attention"], *obj["spatial"], *obj["contacting"]):
            cells.setdefault(int(obj["object_class"]), []).append((int(obj["frame_number"]), int(predicate)))
    return cells


def render_timeline(video: str, pairs: pl.DataFrame, objects: pl.DataFrame) -> Image.Image:
    """One panel per object class: x = frame number, y = predicate.

    Filled squares are the predicted triplets (colour = probability), open
    circles the annotation, so agreement reads as a square inside a circle.
    ``pairs``: predictions-format rows of the video; ``objects``: its index rows.
    """
    predicted, annotated = _predicted_cells(pairs), _annotated_cells(objects)
    classes = sorted(set(predicted) | set(annotated))
    if not classes:
        raise ValueError(f"{video}: no predicted or annotated pairs to draw")
    heights = [len({p for _, p, *_ in predicted.get(c, []) + annotated.get(c, [])}) for c in classes]
    fig, axes = plt.subplots(
        len(classes), 1, figsize=(9, 0.9 + 0.28 * sum(heights) + 0.5 * len(classes)),
        gridspec_kw={"height_ratios": [h + 1 for h in heights]}, squeeze=False, sharex=True,
    )  # fmt: skip
    scatter = None
    for ax, cls in zip(axes[:, 0], classes, strict=True):
        shown = sorted({p for _, p, *_ in predicted.get(cls, []) + annotated.get(cls, [])})
        row = {p: i for i, p in enumerate(shown)}
        if cls in annotated:
            numbers, preds = np.array(annotated[cls]).T
            ax.scatter(numbers, [row[p] for p in preds], s=140, facecolors="none", edgecolors="black", linewidths=1.2, label="annotated")
        if cls in predicted:
            numbers, preds, probs = np.array(predicted[cls]).T
            scatter = ax.scatter(numbers, [row[int(p)] for p in preds], s=50, marker="s", c=probs, cmap="viridis", vmin=0, vmax=1, label="predicted")
        ax.set_yticks(range(len(shown)), [PREDICATES[p] for p in shown], fontsize=8)
        ax.set_ylim(-0.7, len(shown) - 0.3)
        ax.set_ylabel(object_name(cls), rotation=0, ha="right", va="center", fontsize=9, fontweight="bold")
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_title(f"{video}: predicted (squares, colour = probability) vs annotated (circles)", fontsize=10)
    axes[-1, 0].set_xlabel("frame number")
    if scatter is not None:
        fig.colorbar(scatter, ax=axes[:, 0].tolist(), fraction=0.03, pad=0.01, label="probability")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")

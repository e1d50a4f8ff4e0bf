"""Report figures as PNG data URIs (the page embeds them, so it is one self-contained file)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from pipeline.constants import PREDICATES

MODE_COLOURS = {"predcls": "#0072B2", "sgcls": "#E69F00", "sgdet": "#009E73"}


def png_data_uri(image: Image.Image | Figure) -> str:
    """``data:image/png;base64,...`` of a Pillow image or a matplotlib figure (closed afterwards)."""
    buffer = io.BytesIO()
    if isinstance(image, Figure):
        image.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(image)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def long_tail_figure(train_counts: np.ndarray, recall: dict[str, np.ndarray], k: int) -> Figure:
    """Bars: training triplets per predicate (log scale), most frequent first; dots: each mode's recall.

    ``recall[mode]`` holds 26 percentages, NaN where the test set has none.
    """
    order = np.argsort(-train_counts, kind="stable")
    x = np.arange(len(order))
    fig, bars = plt.subplots(figsize=(11, 4.2))
    bars.bar(x, np.maximum(train_counts[order], 0.8), color="#cccccc", label="training triplets")
    bars.set_yscale("log")
    bars.set_ylabel("training triplets (log)")
    bars.set_xticks(x, [PREDICATES[p] for p in order], rotation=70, ha="right", fontsize=8)
    dots = bars.twinx()
    for mode, values in recall.items():
        dots.plot(x, values[order], "o-", ms=4, lw=1, color=MODE_COLOURS.get(mode), label=f"{mode} R@{k}")
    dots.set_ylim(-2, 102)
    dots.set_ylabel(f"per-predicate R@{k} (%, with constraint)")
    handles = bars.get_legend_handles_labels()[0] + dots.get_legend_handles_labels()[0]
    labels = bars.get_legend_handles_labels()[1] + dots.get_legend_handles_labels()[1]
    dots.legend(handles, labels, loc="upper right", fontsize=8)
    bars.set_title("Long tail: recall against training frequency (predicates sorted by frequency)")
    return fig


def read_live_series(live_dir: Path) -> dict[str, pl.DataFrame]:
    """DVCLive step series under ``live_dir/plots/metrics``: name (``train/loss/total``) -> (step, value)."""
    root = live_dir / "plots" / "metrics"
    series = {}
    for path in sorted(root.rglob("*.tsv")):
        table = pl.read_csv(path, separator="\t")
        name = path.relative_to(root).with_suffix("").as_posix()
        series[name] = table.select(pl.col("step"), pl.col(table.columns[-1]).alias("value"))
    return series


def loss_curves_figure(curves: dict[str, dict[str, pl.DataFrame]]) -> Figure:
    """Per mode: training loss components (left) and validation R@20 / mR@20 (right) by epoch."""
    modes = list(curves)
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 2.8 * len(modes)), squeeze=False)
    for (loss_ax, val_ax), mode in zip(axes, modes, strict=True):
        for name, table in curves[mode].items():
            epochs = table["step"].to_numpy() + 1
            if name.startswith("train/loss/"):
                loss_ax.plot(epochs, table["value"], marker=".", lw=2 if name.endswith("/total") else 1, label=name.removeprefix("train/loss/"))
            elif name.startswith("val/"):
                val_ax.plot(epochs, table["value"], marker=".", label=name.removeprefix("val/"))
        loss_ax.set_title(f"{mode}: training loss")
        val_ax.set_title(f"{mode}: validation (%)")
        for ax in (loss_ax, val_ax):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig

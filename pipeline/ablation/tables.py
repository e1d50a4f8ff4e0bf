"""The ablation's tables: markdown (with learning curves) and CSV, where the report reads them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.ablation.statistics import METRICS, paired_table
from pipeline.io import atomic_write_text
from pipeline.outputs import SELECTION_METRIC


def render_paired_markdown(table: pl.DataFrame, title: str) -> str:
    lines = [f"**{title}**: mean over runs (percent); Δ = paired difference from full with a 95% bootstrap CI "
             "over training seeds and test videos; MDE = the smallest Δ the row could detect (80% power)", "", "| Variant | runs | " + " | ".join(METRICS) + " |",
             "|---|---:|" + "---:|" * len(METRICS)]  # fmt: skip
    for row in table.iter_rows(named=True):
        cells = [str(row["label"]), str(row["runs"])]
        for metric in METRICS:
            mean = row[f"{metric} mean"]
            text = "n/a" if mean is None or math.isnan(mean) else f"{mean:.1f}"
            diff = row.get(f"{metric} diff")
            if diff is not None and not math.isnan(diff):
                text += (f" (Δ {diff:+.1f} [{row[f'{metric} ci_low']:+.1f}, {row[f'{metric} ci_high']:+.1f}], "
                         f"MDE {row[f'{metric} mde']:.1f})")  # fmt: skip
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def learning_curves(runs: dict, variants: Sequence[str] = ("full", "baseline")) -> str:
    """Markdown: per-epoch validation R@20, motion macro recall and train loss, mean over runs."""
    lines = [
        "| variant | epoch | train loss | val R@20 | val motion macro recall |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in variants:
        curves = [r["curve"] for r in runs.values() if r["variant"] == name]
        if not curves:
            continue
        for epoch in range(min(len(c) for c in curves)):
            mean = {
                k: float(np.nanmean([c[epoch][k] for c in curves]))
                for k in ("loss", SELECTION_METRIC, "motion macro recall")
            }
            lines.append(
                f"| {name} | {epoch + 1} | {mean['loss']:.4f} | {mean[SELECTION_METRIC]:.1f} | {mean['motion macro recall']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def write_paired_tables(runs_path: Path, out_dir: Path, resamples: int = 2000) -> Path:
    """Write ``ablation_<mode>_paired.md`` (+ learning curves) and ``.csv`` into ``out_dir``; return the markdown's path."""
    runs = json.loads(Path(runs_path).read_text())
    table = paired_table(runs, resamples)
    mode = next(iter(runs.values()))["mode"]
    data = sorted({r["data"] for r in runs.values()})
    seeds = sorted({r["seed"] for r in runs.values()})
    title = f"{mode}, {len(data)} data seed(s) x training seeds {seeds}"
    markdown = (
        render_paired_markdown(table, title)
        + "\nLearning curves (validation, mean over runs):\n\n"
        + learning_curves(runs)
    )
    stem = Path(out_dir) / f"ablation_{mode}_paired"
    atomic_write_text(stem.with_suffix(".md"), markdown)
    atomic_write_text(stem.with_suffix(".csv"), table.write_csv(float_precision=3))
    return stem.with_suffix(".md")

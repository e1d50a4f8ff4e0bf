"""The ablation's statistics: per-video sufficient statistics, paired bootstrap intervals, power.

Each run keeps, per test video, the counts every metric is a ratio of
(:func:`video_statistics`), so a resample of test videos is a weighted sum
(:func:`metrics_of`). :func:`paired_table` reports, for every variant, the
mean over runs and the paired difference from ``full`` (same data seed, same
training seed), with a 95% percentile bootstrap interval that resamples the
training seeds and the test videos of each data seed (the same resample for
both members of a pair), and the smallest difference each row could detect
(MDE: 2.8 bootstrap standard errors, 80% power at 5%).

Controls:

* ``full, motion permuted``: the full model with the motion attributes
  permuted across the pairs of each test batch (a few videos): if MFE helps
  through motion, this must lose what ``w/o MFE`` loses;
* held-out recall: contacting recall on the test triplets whose
  (predicate, object class) never occurs in train, read from the index
  (:mod:`pipeline.evaluation.held_out`; ASM's compositional claim);
* tail mR@20: mean recall of the tail predicates (the third with the fewest
  train instances), for the category-weighted loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from pipeline.ablation.variants import VARIANTS, Variant
from pipeline.ag.at_hand import AT_HAND_PREDICATES
from pipeline.evaluation import align_predictions, evaluate, validate_predictions
from pipeline.evaluation.ground_truth import ground_truth_for_mode
from pipeline.evaluation.held_out import held_out_combinations, held_out_recall
from pipeline.evaluation.motion import at_hand_predictions
from pipeline.io import DataError
from pipeline.outputs import RECALL_K
from pipeline.params import Params

PERMUTED = "full-motion-permuted"
# (z_{0.975} + z_{0.8}) = 1.96 + 0.84: a difference of 2.8 standard errors is found 80% of the time at 5%
MDE_FACTOR = 2.8
METRICS = (
    "motion macro recall",
    f"R@{RECALL_K} with",
    f"mR@{RECALL_K} with",
    f"mR@{RECALL_K} no",
    "held-out recall",
    f"tail mR@{RECALL_K} with",
)


def video_statistics(table: pl.DataFrame, params: Params, data) -> dict[str, list]:
    """Sufficient statistics of the test split's videos for every metric in :data:`METRICS`."""
    frames = data.index_frames.filter(pl.col("split") == "test")
    objects = data.index_objects.filter(pl.col("split") == "test")
    pairs = at_hand_predictions(
        table, objects, params.evaluate.iou_threshold, params.evaluate.legacy_plus_one
    )
    combinations = held_out_combinations(data.relations)
    stats: dict[str, list] = {k: [] for k in ("video", "frames", "recall_sum", "hits_with", "hits_no", "counts",
                                              "motion_correct", "motion_total", "held_correct", "held_total")}  # fmt: skip
    for video in sorted(frames["video"].unique().to_list()):
        video_frames = frames.filter(pl.col("video") == video)
        truth = ground_truth_for_mode(
            video_frames, objects.filter(pl.col("video") == video), "test", data.mode
        )
        if truth.num_frames == 0:
            continue
        mine = table.filter(pl.col("frame").is_in(video_frames["frame"].implode()))
        aligned = align_predictions(validate_predictions(mine, f"{video} predictions"), truth)
        results = evaluate(truth, aligned, params.evaluate, constraints=("with", "no"), ks=(RECALL_K,))
        video_pairs = pairs.filter(pl.col("video") == video)
        held = held_out_recall(mine, truth, combinations, params.evaluate)
        stats["video"].append(video)
        stats["frames"].append(int(truth.num_frames))
        stats["recall_sum"].append(float(results["with"].frame_recall[0].sum()))
        stats["hits_with"].append(results["with"].predicate_hits[0].tolist())
        stats["hits_no"].append(results["no"].predicate_hits[0].tolist())
        stats["counts"].append(results["with"].predicate_counts.tolist())
        stats["motion_total"].append(
            [int((video_pairs["truth"] == c).sum()) for c in AT_HAND_PREDICATES]
        )
        stats["motion_correct"].append(
            [
                int(((video_pairs["truth"] == c) & (video_pairs["predicted"] == c)).sum())
                for c in AT_HAND_PREDICATES
            ]
        )
        stats["held_total"].append(held["pairs"])
        stats["held_correct"].append(round((held["argmax_accuracy"] or 0.0) * held["pairs"] / 100))
    return stats


def tail_predicates(train_counts: Sequence[int]) -> list[int]:
    """The third of the predicates seen in train with the fewest train instances."""
    seen = sorted((count, i) for i, count in enumerate(train_counts) if count > 0)
    return [i for _, i in seen[: max(1, len(seen) // 3)]]


def metrics_of(
    stats: dict[str, np.ndarray], weights: np.ndarray, tail: Sequence[int]
) -> dict[str, np.ndarray]:
    """Every metric (percent) for each row of ``weights`` ([B, V] video multiplicities)."""

    def total(key: str) -> np.ndarray:
        values = stats[key]
        return weights @ values.reshape(values.shape[0], -1)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)

    counts = total("counts")
    with_recall, no_recall = ratio(total("hits_with"), counts), ratio(total("hits_no"), counts)
    motion = ratio(total("motion_correct"), total("motion_total"))
    return {
        "motion macro recall": 100 * np.nanmean(motion, axis=1),
        f"R@{RECALL_K} with": 100 * ratio(total("recall_sum")[:, 0], total("frames")[:, 0]),
        # a predicate with no ground truth in a resample is left out of its mean, not counted as 0
        f"mR@{RECALL_K} with": 100 * np.nanmean(with_recall, axis=1),
        f"mR@{RECALL_K} no": 100 * np.nanmean(no_recall, axis=1),
        "held-out recall": 100 * ratio(total("held_correct")[:, 0], total("held_total")[:, 0]),
        f"tail mR@{RECALL_K} with": 100 * np.nanmean(with_recall[:, list(tail)], axis=1),
    }


def _bootstrap_weights(rng: np.random.Generator, items: int, resamples: int) -> np.ndarray:
    """[resamples + 1, items] multiplicities: row 0 takes every item once, the rest draw with replacement."""
    return np.vstack([np.ones(items), rng.multinomial(items, np.full(items, 1 / items), size=resamples)])


def _arrays(stats: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in stats.items() if k != "video"}


def paired_table(
    runs: dict, resamples: int = 2000, seed: int = 0, variants: Sequence[Variant] = VARIANTS
) -> pl.DataFrame:
    """Per variant and metric: mean over runs, paired mean difference from full, 95% bootstrap CI."""
    if not runs:
        raise DataError("no runs recorded: run `mosa ablate` first")
    records = list(runs.values())
    data_names = sorted({r["data"] for r in records})
    labels = {v.name: v.label for v in variants} | {
        PERMUTED: "full, motion permuted at test (control)"
    }
    names = [v.name for v in variants if any(r["variant"] == v.name for r in records)]
    if "full" not in names:
        raise DataError("the runs hold no 'full' variant to pair with")
    rng = np.random.default_rng(seed)
    # per data seed: bootstrap weights (row 0 = the sample itself) over the test videos and over
    # the training seeds, one draw shared by every variant and metric, and the runs' metrics under them
    per_data: dict[str, dict[tuple[str, int], dict[str, np.ndarray]]] = {}
    seed_weights: dict[str, tuple[list[int], np.ndarray]] = {}
    for data_name in data_names:
        mine = [r for r in records if r["data"] == data_name]
        videos = len(mine[0]["stats"]["video"])
        weights = _bootstrap_weights(rng, videos, resamples)
        seeds = sorted({r["seed"] for r in mine})
        seed_weights[data_name] = (seeds, _bootstrap_weights(rng, len(seeds), resamples))
        tail = tail_predicates(next(r for r in mine if r["variant"] == "full")["train_counts"])
        table: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        for r in mine:
            if r["stats"]["video"] != mine[0]["stats"]["video"]:
                raise DataError(
                    f"{data_name}: runs disagree on the test videos; rerun them on one index"
                )
            table[(r["variant"], r["seed"])] = metrics_of(_arrays(r["stats"]), weights, tail)
            if r["variant"] == "full" and "permuted_stats" in r:
                table[(PERMUTED, r["seed"])] = metrics_of(
                    _arrays(r["permuted_stats"]), weights, tail
                )
        per_data[data_name] = table
    rows = []
    for name in [*names, PERMUTED]:
        row: dict[str, object] = {"variant": name, "label": labels[name]}
        runs_of = [(d, s) for d in data_names for (v, s) in per_data[d] if v == name]
        if not runs_of:
            continue
        row["runs"] = len(runs_of)
        for metric in METRICS:
            values = np.array([per_data[d][(name, s)][metric][0] for d, s in runs_of])
            row[f"{metric} mean"] = float(np.nanmean(values))
            row[f"{metric} std"] = float(np.nanstd(values, ddof=1)) if len(values) > 1 else math.nan
            if name == "full":
                continue
            # mean over data seeds of the (seed-resampled) mean paired difference, per resample
            per_seed = []
            for d in data_names:
                seeds, draws = seed_weights[d]
                diffs = np.array([
                    per_data[d][(name, s)][metric] - per_data[d][("full", s)][metric]
                    if (name, s) in per_data[d] and ("full", s) in per_data[d] else np.full(resamples + 1, np.nan)
                    for s in seeds
                ]).T  # [resamples + 1, seeds]  # fmt: skip
                present = ~np.isnan(diffs)
                if present.any():
                    with np.errstate(invalid="ignore", divide="ignore"):
                        per_seed.append(np.nansum(draws * diffs, axis=1) / (draws * present).sum(axis=1))
            if not per_seed:  # the metric is undefined on this data (no such pairs)
                for part in ("diff", "ci_low", "ci_high", "mde"):
                    row[f"{metric} {part}"] = math.nan
                continue
            diff = np.nanmean(per_seed, axis=0)
            low, high = np.nanpercentile(diff[1:], [2.5, 97.5])
            row[f"{metric} diff"], row[f"{metric} ci_low"], row[f"{metric} ci_high"] = (
                float(diff[0]),
                float(low),
                float(high),
            )
            # smallest difference this row could detect: 80% power, two-sided 5%
            row[f"{metric} mde"] = float(MDE_FACTOR * np.nanstd(diff[1:]))
        rows.append(row)
    return pl.DataFrame(rows)

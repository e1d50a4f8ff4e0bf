"""The ``evaluate@<mode>`` stage: predict the test split with the kept head and score it.

What it writes, and where, is listed in :mod:`pipeline.outputs`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.constants import GROUPS, PREDICATES, check_mode
from pipeline.evaluation import (
    align_predictions,
    evaluate,
    validate_predictions,
    write_predictions,
)
from pipeline.evaluation.ceiling import recall_ceiling
from pipeline.evaluation.evaluator import ConstraintResult
from pipeline.evaluation.ground_truth import GroundTruth
from pipeline.evaluation.held_out import held_out_combinations, held_out_recall
from pipeline.evaluation.motion import motion_metrics
from pipeline.evaluation.result_formats import per_predicate
from pipeline.io import (
    atomic_path,
    atomic_write_json,
)
from pipeline.model.mosa import MOSA
from pipeline.outputs import RECALL_K, OutputPaths, output_paths
from pipeline.params import Params
from pipeline.training.inference import predict, predict_tables
from pipeline.training.mode_data import ModeData, load_trained, open_mode


def evaluate_mode(params: Params, mode: str, paths: OutputPaths) -> dict:
    """Predict the test split with the selected model, write the predictions, score them.

    ``paths.metrics`` gets ``{constraint: {"R@K": ..., "mR@K": ...}}`` (percent), the at-hand
    motion metrics (``motion``: macro recall, confusion matrix; see
    :mod:`pipeline.evaluation.motion`) and per-predicate R@20 per constraint (``predicate_recall``);
    ``paths.predicate_recall`` a CSV of per-predicate recall@20 for each
    constraint; ``paths.relation_embeddings`` the ASM embedding of each
    predictions row (``[N, D]`` float32; ``[N, 0]`` without ASM).

    Also in ``paths.metrics``: ``held_out`` (recall on the test split's
    (predicate, object) combinations that train never has,
    :mod:`pipeline.evaluation.held_out`), ``asm_alone`` (with ASM: R@20 and
    mR@20 with constraint and the held-out recall of ASM's logits alone, no
    classifier), ``calibration`` (the group temperatures applied to the
    written scores), ``score_offset`` (the semi offsets added after them) and ``motion_by_split`` (motion macro recall of the same
    model on its own train split, on validation and on test).

    Where R@K is lost: ``group_recall`` (per constraint, R@20 of each
    predicate group's triplets), ``group_recall_by_split`` (with constraint,
    the same model on train, validation and test: a group near 100 on train
    and near chance elsewhere is memorised) and ``ceiling`` (R@20 / mR@20 of a
    perfect classifier, :mod:`pipeline.evaluation.ceiling`).
    """
    with open_mode(params, mode) as data:
        model = load_trained(params, data)
        scores = ("combined", "asm") if model.asm is not None else ("combined",)
        tables, embeddings = predict_tables(model, data.batches(params, "test"), mode, scores)
        table, asm_table = tables["combined"], tables.get("asm")
        truth = data.ground_truth("test")
        seen_splits = {split: diagnose_split(model, data, params, split) for split in ("train", "val")}
        ceiling = recall_ceiling(data.index_frames, data.index_objects, "test", mode, params.evaluate, ks=(RECALL_K,))
    write_predictions(table, paths.predictions)
    with atomic_path(paths.relation_embeddings, suffix=".npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, embeddings)  # a handle: given a path, np.save would append its own ".npy"
    results = evaluate(truth, align_predictions(validate_predictions(table, str(paths.predictions)), truth), params.evaluate)
    metrics = {constraint: result.metrics() for constraint, result in results.items()}
    recall = {constraint: per_predicate(result) for constraint, result in results.items()}
    test_objects = data.index_objects.filter(pl.col("split") == "test")
    metrics["motion"] = motion_metrics(table, test_objects, params.evaluate.iou_threshold, params.evaluate.legacy_plus_one)
    metrics["predicate_recall"] = {
        constraint: {name: entry[f"R@{RECALL_K}"] for name, entry in by_name.items()}
        for constraint, by_name in recall.items()
    }
    held_out = held_out_combinations(data.relations)
    metrics["held_out"] = held_out_recall(table, truth, held_out, params.evaluate)
    if asm_table is not None:
        metrics["asm_alone"] = asm_alone_metrics(asm_table, truth, held_out, params)
    metrics["group_recall"] = {constraint: percent_group_recall(result) for constraint, result in results.items()}
    with_test = results["with"] if "with" in results else with_constraint(table, truth, params)
    metrics["group_recall_by_split"] = {
        **{split: groups for split, (_, groups) in seen_splits.items()},
        "test": percent_group_recall(with_test),
    }
    metrics["ceiling"] = ceiling
    metrics["motion_by_split"] = {
        **{split: motion for split, (motion, _) in seen_splits.items()},
        "test": metrics["motion"]["motion_macro_recall"],
    }
    metrics["calibration"] = {group: float(t) for group, t in zip(GROUPS, model.temperature.tolist(), strict=True)}
    metrics["score_offset"] = {group: float(b) for group, b in zip(GROUPS, model.score_offset.tolist(), strict=True)}
    atomic_write_json(paths.metrics, metrics)
    first = next(iter(recall.values()))
    per_predicate_table = pl.DataFrame(
        [
            {
                "predicate": name,
                "group": first[name]["group"],
                "gt_count": first[name]["gt_count"],
                **{f"{c}_R@{RECALL_K}": recall[c][name][f"R@{RECALL_K}"] for c in recall},
            }
            for name in PREDICATES
        ]
    )
    with atomic_path(paths.predicate_recall, suffix=".csv") as tmp:
        per_predicate_table.write_csv(tmp, float_precision=4)
    return metrics


def diagnose_split(model: MOSA, data: ModeData, params: Params, split: str) -> tuple[float | None, dict[str, float]]:
    """Motion macro recall and with-constraint group recall of ``model`` on ``split``.

    Beside test's they tell memorising from learning: a head near 100 on the
    videos it trained on and far lower on validation and test has learnt its
    training videos, not the motion (or gaze) that defines the labels
    (docs/usage.md, "Reading the motion metrics").
    """
    objects = data.index_objects.filter(pl.col("split") == split)
    table = predict(model, data.batches(params, split), data.mode)
    motion = motion_metrics(table, objects, params.evaluate.iou_threshold, params.evaluate.legacy_plus_one)
    groups = percent_group_recall(with_constraint(table, data.ground_truth(split), params))
    return motion["motion_macro_recall"], groups


def with_constraint(table: pl.DataFrame, truth: GroundTruth, params: Params, source: str = "predictions") -> ConstraintResult:
    """The with-constraint result at R@20 of a predictions table (``source`` names it in errors)."""
    aligned = align_predictions(validate_predictions(table, source), truth)
    return evaluate(truth, aligned, params.evaluate, constraints=("with",), ks=(RECALL_K,))["with"]


def percent_group_recall(result: ConstraintResult) -> dict[str, float | None]:
    """R@20 of each predicate group in percent; None (JSON null, not NaN) where a group has no ground truth."""
    return {group: None if np.isnan(recall) else 100 * recall for group, recall in result.group_recall(RECALL_K).items()}


def asm_alone_metrics(table: pl.DataFrame, truth: GroundTruth, held_out: pl.DataFrame, params: Params) -> dict:
    """R@20 / mR@20 with constraint and the held-out recall of the ASM-alone predictions (percent)."""
    result = with_constraint(table, truth, params, "ASM-alone predictions")
    return {
        "with": {f"R@{RECALL_K}": 100 * result.recall(RECALL_K), f"mR@{RECALL_K}": 100 * result.mean_recall(RECALL_K)},
        "held_out": held_out_recall(table, truth, held_out, params.evaluate),
    }


def run_evaluate_stage(params: Params, mode: str) -> dict:
    """The ``evaluate@<mode>`` stage: test predictions, embeddings, AG metrics, per-predicate recall."""
    metrics = evaluate_mode(params, check_mode(mode), output_paths(mode))
    for constraint in params.evaluate.constraints:
        print(f"{mode} {constraint}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics[constraint].items()))
    macro = metrics["motion"]["motion_macro_recall"]
    print(f"{mode} motion macro recall: " + ("no at-hand pairs" if macro is None else f"{macro:.2f}"))
    by_split = ", ".join(f"{split} " + ("-" if v is None else f"{v:.2f}") for split, v in metrics["motion_by_split"].items())
    print(f"{mode} motion macro recall by split: {by_split}")
    by_group = metrics["group_recall_by_split"]
    print(f"{mode} R@{RECALL_K} with by group (" + " / ".join(by_group) + "): " + ", ".join(
        f"{group} " + " / ".join("-" if by_group[split][group] is None else f"{by_group[split][group]:.1f}" for split in by_group)
        for group in GROUPS))  # fmt: skip
    print(f"{mode} ceiling (a perfect classifier): " + ", ".join(
        f"{constraint} R@{RECALL_K} {entry[f'R@{RECALL_K}']:.1f}" for constraint, entry in metrics["ceiling"].items()))  # fmt: skip
    for name, entry in (("full", metrics["held_out"]), ("ASM alone", metrics.get("asm_alone", {}).get("held_out"))):
        if entry is not None and entry["pairs"]:
            print(f"{mode} held-out ({name}): R@20 {entry['R@20']:.2f}, argmax accuracy {entry['argmax_accuracy']:.2f} "
                  f"over {entry['pairs']} pairs of {entry['combinations']} combinations")  # fmt: skip
    if "asm_alone" in metrics:
        print(f"{mode} ASM alone with: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics["asm_alone"]["with"].items()))
    return metrics

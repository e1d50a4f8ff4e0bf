"""The ``report`` stage: one self-contained HTML page from the pipeline's outputs.

Every section reads the files the other stages write (paths from
``pipeline.outputs``). A missing input
becomes a visible note in its section instead of an error, so a partial
pipeline still gets a page that says what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from pipeline.ag.reader import predicate_counts, read_index
from pipeline.constants import PREDICATES
from pipeline.evaluation import align_predictions, evaluate, ground_truth_for_mode
from pipeline.evaluation.predictions import load_predictions
from pipeline.io import DataError, atomic_write_text
from pipeline.outputs import RECALL_K, live_dir, output_paths
from pipeline.params import Params
from pipeline.report import html
from pipeline.report.figures import (
    long_tail_figure,
    loss_curves_figure,
    png_data_uri,
    read_live_series,
)
from pipeline.viz.detections import MIN_OBJECT_SCORE
from pipeline.viz.drawing import blank_frame, load_frame, render_frame

METRIC_COLUMNS = ("R@10", "R@20", "R@50", "R@100", "mR@10", "mR@20", "mR@50", "mR@100")


def metrics_section(params: Params) -> str:
    rows, group_rows, missing = [], [], []
    for mode in params.train.modes:
        path = output_paths(mode).metrics
        if not path.is_file():
            missing.append(f"{mode} ({path})")
            continue
        metrics = json.loads(path.read_text())
        for constraint in params.evaluate.constraints:
            values = metrics.get(constraint, {})
            rows.append([mode, constraint, *(values.get(name) for name in METRIC_COLUMNS)])
        by_split = metrics.get("group_recall_by_split", {})
        ceiling = metrics.get("ceiling", {}).get("with", {}).get(f"R@{RECALL_K}")
        for group in by_split.get("test", {}):
            group_rows.append([mode, group, *(by_split.get(split, {}).get(group) for split in ("train", "val", "test")), ceiling])
    parts = [html.table(["mode", "constraint", *METRIC_COLUMNS], rows)] if rows else []
    parts.append(html.note("Test split, percent. with: the best predicate per group; semi: also every "
                           f"spatial/contacting predicate above {params.evaluate.semi_threshold}; no: the top "
                           f"{params.evaluate.no_constraint_top_k} cells per frame."))  # fmt: skip
    if group_rows:
        parts.append(html.table(["mode", "group", "train", "val", "test", f"ceiling R@{RECALL_K} with"], group_rows))
        parts.append(html.note(f"Where R@{RECALL_K} with constraint is lost: each predicate group's recall by split "
                               "(near 100 on train and near chance elsewhere: memorised), and what a perfect "
                               "classifier reaches (one predicate per group and pair)."))  # fmt: skip
    if missing:
        parts.append(html.note("Not evaluated yet: " + ", ".join(missing), missing=True))
    return html.section("Scene graph metrics", *parts)


def motion_section(params: Params) -> str:
    """The benchmark probes and, per mode, the at-hand motion metrics (pipeline/evaluation/motion.py)."""
    parts = []
    probe_path = Path("metrics/probe.json")
    if probe_path.is_file():
        probe = json.loads(probe_path.read_text())
        four, geometry = probe["four_attributes"]["balanced_accuracy"], probe["geometry"]["balanced_accuracy"]
        bounds = probe["bounds"]
        parts.append(html.note(
            f"Benchmark probes (at-hand pairs, balanced accuracy, train cross-validation / test): MOSA's four "
            f"attributes {100 * four['cv']:.1f}% / {100 * four['test']:.1f}% (bound >= {100 * bounds['four_attributes_min']:.0f}%), "
            f"single-frame geometry {100 * geometry['cv']:.1f}% / {100 * geometry['test']:.1f}% (chance {100 * probe['chance']:.0f}%, "
            f"bound <= {100 * bounds['geometry_max']:.0f}%); every preregistered bound holds: {probe['passed']}."
        ))  # fmt: skip
    rows, confusion = [], []
    for mode in params.train.modes:
        path = output_paths(mode).metrics
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        motion = metrics.get("motion")
        if not motion:
            continue
        # the same model on the videos it trained on: far above test means it memorised them
        seen = metrics.get("motion_by_split", {})
        rows.append([mode, motion["motion_macro_recall"], seen.get("train"), seen.get("val"), *motion["motion_class_recall"].values()])
        if mode == params.report.gallery_mode:
            names = list(next(iter(motion["confusion"].values())))
            confusion = [[truth, *row.values()] for truth, row in motion["confusion"].items()]
            confusion_header = ["true \\ predicted", *names]
    if rows:
        classes = list(json.loads(output_paths(rows[0][0]).metrics.read_text())["motion"]["motion_class_recall"])
        parts.append(html.table(["mode", "motion macro recall", "same on train", "same on val", *classes], rows))
    if confusion:
        parts.append(html.note(f"At-hand confusion matrix ({params.report.gallery_mode}, test pairs):"))
        parts.append(html.table(confusion_header, confusion))
    if not parts:
        parts.append(html.note("No probe or motion metrics yet (probe and evaluate stages).", missing=True))
    return html.section("Motion (at-hand contact classes)", *parts)


def long_tail_section(params: Params, relations: pl.DataFrame) -> str:
    counts = predicate_counts(relations)
    column = f"with_R@{RECALL_K}"
    recall = {}
    for mode in params.train.modes:
        path = output_paths(mode).predicate_recall
        if path.is_file():
            table = pl.read_csv(path)
            by_name = dict(zip(table["predicate"], table[column].cast(pl.Float64), strict=True))
            recall[mode] = np.array([np.nan if by_name.get(p) is None else by_name[p] for p in PREDICATES])
    if not recall:
        return html.section("Long tail", html.note("No per-predicate recall yet (evaluate stages).", missing=True))
    order = np.argsort(-counts, kind="stable")
    rows = [[PREDICATES[p], int(counts[p]), *(recall[m][p] for m in recall)] for p in order]
    return html.section(
        "Long tail",
        html.figure(png_data_uri(long_tail_figure(counts, recall, RECALL_K)),
                    f"Per-predicate R@{RECALL_K} (with constraint) against the number of training triplets.",
                    "per-predicate recall against training frequency"),  # fmt: skip
        html.table(["predicate", "training triplets", *(f"{m} R@{RECALL_K}" for m in recall)], rows),
    )


def loss_section(params: Params) -> str:
    curves = {mode: read_live_series(live_dir(mode)) for mode in params.train.modes}
    curves = {mode: series for mode, series in curves.items() if series}
    if not curves:
        return html.section("Training curves", html.note("No DVCLive logs yet (train stages).", missing=True))
    return html.section(
        "Training curves",
        html.figure(png_data_uri(loss_curves_figure(curves)), "Per epoch, from DVCLive: loss components and validation recall.", "loss curves"),
    )


def ablation_section(params: Params) -> str:
    tables = sorted(Path(params.report.ablation_dir).glob("ablation_*.csv"))
    if not tables:
        return html.section("Ablations", html.note("No experiments yet: run `mosa ablate`, then `mosa ablation-table`."))
    parts = []
    for path in tables:
        table = pl.read_csv(path)
        parts.append(f"<h3>{html.escape(path.stem.removeprefix('ablation_').replace('_', ', '))}</h3>")
        parts.append(html.table(table.columns, table.rows()))
    return html.section("Ablations", *parts)


def search_section(params: Params) -> str:
    path = Path(params.search.metrics_path)
    if not path.is_file():
        return html.section("Relation search", html.note("No search index yet (search_index stage).", missing=True))
    metrics = json.loads(path.read_text())
    k = params.search.precision_k
    precision, base = metrics.get(f"precision@{k}", {}), metrics.get("base_rate", {})
    rows = [[name, precision.get(name), base.get(name)] for name in PREDICATES]
    summary = (f"{metrics.get('vectors')} test pairs, index {metrics.get('index')}; mean precision@{k} "
               f"{metrics.get(f'mean_precision@{k}') or 0:.3f} over {metrics.get('predicates_scored')} predicates "
               f"(random ranking: {metrics.get('mean_base_rate') or 0:.3f}).")  # fmt: skip
    parts = [html.note(summary), html.table(["predicate query", f"precision@{k}", "base rate"], rows, digits=3)]
    paraphrase = metrics.get("paraphrase")
    if paraphrase:
        parts += paraphrase_parts(paraphrase, k)
    return html.section("Relation search", *parts)


def paraphrase_parts(paraphrase: dict, k: int) -> list[str]:
    """Summary and per-query table (worst first) of the paraphrase queries."""
    rows = sorted(paraphrase["per_query"], key=lambda r: (r[f"precision@{k}"], r["query"]))
    summary = (f"Paraphrase queries ({paraphrase['queries']} over {paraphrase['combinations']} (predicate, object) "
               f"combinations), searched by relation: mean precision@{k} {paraphrase[f'mean_precision@{k}'] or 0:.3f}; "
               f"ASM-embedding neighbours {paraphrase[f'embedding_mean_precision@{k}'] or 0:.3f}; "
               f"random ranking {paraphrase['mean_base_rate'] or 0:.3f}. Worst first.")  # fmt: skip
    header = ["query", "predicate", "object", "read as", "test pairs", f"precision@{k}", "embedding", "base rate"]
    table = [[r["query"], r["predicate"], r["object"], r["read_as"], r["test_pairs"], r[f"precision@{k}"],
              r[f"embedding_precision@{k}"], r["base_rate"]] for r in rows]  # fmt: skip
    return [f"<h3>Paraphrase queries</h3>{html.note(summary)}", html.table(header, table, digits=3)]


def detector_section(params: Params) -> str:
    path = Path(params.detector.metrics_path)
    if not path.is_file():
        return html.section("Detector", html.note(f"No detector metrics yet ({path}).", missing=True))
    metrics = json.loads(path.read_text())
    if not metrics.get("trained", True):
        return html.section("Detector", html.note(f"User checkpoint {metrics.get('checkpoint')}: not evaluated here."))
    summary = (f"bbox mAP@0.5 {metrics.get('bbox_mAP_50', 0):.3f}, mAP@0.5:0.95 {metrics.get('bbox_mAP', 0):.3f} on the "
               f"{metrics.get('eval_split')} split ({metrics.get('eval_images')} frames); trained "
               f"{metrics.get('iterations')} iterations.")  # fmt: skip
    classes = metrics.get("per_class", {})
    rows = sorted(([name, c["instances"], c["AP50"], c["AP"]] for name, c in classes.items()), key=lambda row: (row[2], row[0]))
    parts = [html.note(summary)]
    if rows:
        parts.append(html.table(["class (worst first)", "instances", "AP@0.5", "AP@0.5:0.95"], rows, digits=3))
    return html.section("Detector", *parts)


def _frame_image(params: Params, frame: str):
    try:
        return load_frame(params.dataset.root, frame), ""
    except DataError:
        return blank_frame(256, 192), " (image not found)"


def gallery_section(params: Params, frames: pl.DataFrame, objects: pl.DataFrame) -> str:
    settings = params.report
    mode, k = settings.gallery_mode, settings.gallery_k
    path = output_paths(mode).predictions
    if settings.gallery_frames == 0:
        return ""
    if not path.is_file():
        return html.section("Best and worst frames", html.note(f"No {mode} predictions yet ({path}).", missing=True))
    truth = ground_truth_for_mode(frames, objects, "test", mode)
    table, predictions = load_predictions(path)
    recall = evaluate(truth, align_predictions(predictions, truth, str(path)), params.evaluate, constraints=("with",), ks=(k,))["with"].frame_recall[0]
    keys = np.asarray(truth.frames, dtype=object)
    # Ties are broken by frame key so the gallery is the same on every run.
    ranked = sorted(range(len(keys)), key=lambda i: (-recall[i], keys[i]))
    count = min(settings.gallery_frames, len(ranked) // 2 or len(ranked))
    parts = []
    for title, chosen in (("Best", ranked[:count]), ("Worst", ranked[::-1][:count])):
        tiles = []
        for i in chosen:
            frame = str(keys[i])
            image, missing = _frame_image(params, frame)
            rendered = render_frame(image, table.filter(pl.col("frame") == frame), objects.filter(pl.col("frame") == frame),
                                    f"{frame}  R@{k} {100 * recall[i]:.0f}%{missing}")  # fmt: skip
            tiles.append(html.figure(png_data_uri(rendered), f"{title}: {frame}, R@{k} = {100 * recall[i]:.1f}%", frame))
        parts.append(f"<h3>{title} {mode} frames by R@{k} (with constraint)</h3><div class=\"gallery\">{''.join(tiles)}</div>")
    return html.section("Best and worst frames", *parts)


def footage_section(params: Params) -> str:
    """Overlays that `mosa predict` drew for the unseen-seed videos (stage footage_gallery), evenly spaced."""
    folder = Path(params.report.footage_dir)
    videos = sorted(p for p in folder.glob("*/overlays") if p.is_dir()) if folder.is_dir() else []
    title = "Predicted scene graphs on unseen footage"
    if not videos:
        return html.section(title, html.note(f"No footage predictions yet ({folder}, stage footage_gallery).", missing=True))
    parts = [html.note(f"Synthetic videos generated with seed {params.report.footage_seed} (the dataset uses "
                       f"{params.synth.seed}), predicted by `mosa predict` (SGDet, no annotation): boxes with "
                       f"object score >= {MIN_OBJECT_SCORE} after class-aware NMS, each object's triplets with their probabilities.")]  # fmt: skip
    for overlays in videos:
        frames = sorted(overlays.glob("*.png"))
        count = max(1, params.report.gallery_frames)
        chosen = [frames[round(i * (len(frames) - 1) / max(count - 1, 1))] for i in range(min(count, len(frames)))]
        video = overlays.parent.name
        tiles = [html.figure(png_data_uri(Image.open(path).convert("RGB")), f"{video}.mp4/{path.name}", path.name) for path in chosen]
        parts.append(f"<h3>{html.escape(video)}.mp4</h3><div class=\"gallery\">{''.join(tiles)}</div>")
    return html.section(title, *parts)


def build_report(params: Params) -> str:
    """The page as a string."""
    index = read_index(params.dataset.index_dir)
    sections = [
        metrics_section(params),
        detector_section(params),
        motion_section(params),
        long_tail_section(params, index.relations),
        loss_section(params),
        ablation_section(params),
        search_section(params),
        gallery_section(params, index.frames, index.objects),
        footage_section(params),
    ]
    # No timestamp: the same inputs give the same bytes, so DVC sees an unchanged output.
    subtitle = f"Dataset {params.dataset.root}, modes {', '.join(params.train.modes)}."
    return html.page("MOSA dynamic scene graph report", subtitle, [s for s in sections if s])


def run_report_stage(params: Params) -> Path:
    out = Path(params.report.out_path)
    atomic_write_text(out, build_report(params))
    return out

"""Train and evaluate one mode from the caches: what the train and evaluate stages call.

What each stage writes, and where, is listed in :mod:`pipeline.outputs`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from pipeline.ag.reader import predicate_counts, read_index
from pipeline.constants import GROUPS, PREDICATES, check_mode
from pipeline.distributed import SINGLE_PROCESS, Ranks, process_group
from pipeline.evaluation import (
    align_predictions,
    evaluate,
    validate_predictions,
    write_predictions,
)
from pipeline.evaluation.ground_truth import GroundTruth, ground_truth_for_mode
from pipeline.evaluation.held_out import held_out_combinations, held_out_recall
from pipeline.evaluation.motion import motion_metrics
from pipeline.evaluation.result_formats import per_predicate
from pipeline.extraction.cache import RoiCache
from pipeline.io import (
    DataError,
    atomic_path,
    atomic_write_json,
    disk_full_as_error,
    read_parquet,
    sha256_file,
    tree_size,
)
from pipeline.loss import RelationLoss
from pipeline.model.mosa import MOSA, FeatureSpec
from pipeline.motion.attributes import BASE_ATTRIBUTES, EXTRA_ATTRIBUTES
from pipeline.outputs import RECALL_K, OutputPaths, head_model_path, live_dir, output_paths
from pipeline.params import RUN_ONLY_KEYS, Params
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.calibration import calibrate
from pipeline.training.data import BoundedCache, VideoBatches, rank_share
from pipeline.training.inference import predict_tables
from pipeline.training.pack import PACK_SPLITS, PackedSource, pack_path, reusable, write_split
from pipeline.training.sources import CacheSource
from pipeline.training.text import read_text_embeddings
from pipeline.training.trainer import FitResult, fit, resumable


@dataclass
class ModeData:
    """Everything one mode trains or evaluates on, opened from the caches."""

    mode: str
    source: CacheSource
    cached: BoundedCache
    spec: FeatureSpec
    index_frames: pl.DataFrame  # the unfiltered index
    index_objects: pl.DataFrame
    relations: pl.DataFrame
    packed: PackedSource | None = None  # the train/val splits as packed by the pack stage

    def batches(
        self, params: Params, split: str, shuffle: bool = False, ranks: Ranks = SINGLE_PROCESS, pin_memory: bool = False
    ) -> VideoBatches:
        """Batches of ``split``; an unshuffled (prediction) split is cut into one block per rank.

        Training batches cover the whole split on every rank; each rank takes
        its part of every step (:meth:`VideoBatches.rank_steps`). Splits of the
        pack (when opened with one) are read from it, with prefetching, and
        their features put in pinned memory when ``pin_memory`` (GPU training).
        """
        from_pack = self.packed is not None and split in PACK_SPLITS
        source = self.packed if from_pack else self.cached
        videos = source.videos(split)
        if not shuffle:
            videos = rank_share(videos, ranks.rank, ranks.world_size)
        return VideoBatches(
            source,
            videos,
            params.train.batch_videos,
            params.model.temporal_window,
            with_object_dist=self.mode == "sgdet",
            shuffle=shuffle,
            seed=params.train.seed,
            prefetch=params.train.prefetch_batches if from_pack else 0,
            pin_memory=from_pack and pin_memory,
        )

    def __enter__(self) -> ModeData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.cache.close()

    def ground_truth(self, split: str) -> GroundTruth:
        return ground_truth_for_mode(self.index_frames, self.index_objects, split, self.mode)


def open_mode(params: Params, mode: str, packed: bool = False, attributes: tuple[str, ...] | None = None) -> ModeData:
    """The caches of one mode; ``packed``: train/val batches come from the pack (which must match them).

    ``attributes`` overrides ``model.mfe_attributes`` (the pack stage takes every one the motion table has).
    """
    index = read_index(params.dataset.index_dir)
    cache = RoiCache(params.extract.out_dir)
    motion_path = Path(params.motion.out_path)
    motion = read_parquet(motion_path, "motion")
    text = read_text_embeddings(params.text.out_path)
    source = CacheSource(
        mode, cache, index.frames, index.objects, motion, attributes or params.model.mfe_attributes,
        params.train.sgdet_match_iou, motion_path,
    )  # fmt: skip
    spec = FeatureSpec(
        roi_dim=cache.feature_dim,
        union_dim=cache.feature_dim,
        class_embeddings=text.class_embeddings,
        prompt_embeddings=text.prompt_embeddings,
        motion_dim=len(source.motion_columns),
    )
    cached = BoundedCache(source, params.train.feature_cache_mb * 2**20)
    pack = None
    if packed:
        pack = PackedSource(params.train.pack_dir, mode, pack_inputs(params, mode, cache), source.motion_columns)
    return ModeData(mode, source, cached, spec, index.frames, index.objects, index.relations, pack)


def pack_inputs(params: Params, mode: str, cache: RoiCache) -> dict:
    """What a pack is built from: a pack whose record differs is refused (see :mod:`pipeline.training.pack`).

    Small inputs are hashed; the ROI cache (gigabytes) is known by its extractor identity and size.
    """
    index_dir = Path(params.dataset.index_dir)
    hashed = [index_dir / "frames.parquet", index_dir / "objects.parquet", Path(params.motion.out_path)]
    record = {
        "mode": mode,
        "sgdet_match_iou": params.train.sgdet_match_iou,
        "roi": {**cache.identity, "bytes": cache.path.stat().st_size},
        **{path.name: sha256_file(path) for path in hashed},
    }
    return json.loads(json.dumps(record, default=str))


def motion_attribute_names(params: Params) -> tuple[str, ...]:
    """Every MFE attribute the motion table of these params has (a pack keeps them all)."""
    extras = params.motion.extras.model_dump()
    return (*BASE_ATTRIBUTES, *(name for name in EXTRA_ATTRIBUTES if extras.get(name, False)))


def pack_mode(params: Params, mode: str) -> dict[str, dict[str, int]]:
    """The ``pack`` stage: write (or keep, when complete and intact) the train and val packs of one mode."""
    summary = {}
    with open_mode(params, mode, attributes=motion_attribute_names(params)) as data:
        inputs = pack_inputs(params, mode, data.source.cache)
        for split in PACK_SPLITS:
            path = pack_path(params.train.pack_dir, mode, split)
            if reusable(path, inputs):
                summary[split] = {"reused": 1}
                continue
            summary[split] = write_split(data.source, split, path, inputs, mode, data.source.motion_columns)
    return summary


def build_model(params: Params, data: ModeData) -> MOSA:
    torch.manual_seed(params.train.seed)
    return MOSA(params.model, data.spec, classify_objects=data.mode != "predcls")


def make_validator(data: ModeData, params: Params):
    """Validation R@20 / mR@20 (with constraint, percent) of a predictions table."""
    truth = data.ground_truth("val")

    def validate(table: pl.DataFrame) -> dict[str, float]:
        aligned = align_predictions(validate_predictions(table, f"{data.mode} validation predictions"), truth)
        result = evaluate(truth, aligned, params.evaluate, constraints=("with",), ks=(RECALL_K,))["with"]
        return {f"R@{RECALL_K}": 100 * result.recall(RECALL_K), f"mR@{RECALL_K}": 100 * result.mean_recall(RECALL_K)}

    return validate


def run_settings(params: Params, mode: str) -> dict:
    """The settings a trained model depends on.

    Under the ``plateau`` schedule epochs are excluded (a longer run may resume
    a shorter one); under ``warmup_cosine`` the epoch count shapes every
    step's learning rate, so a run with other epochs is another run.
    """
    exclude = {"modes", *RUN_ONLY_KEYS["train"]}
    if params.train.schedule == "plateau":
        exclude.add("epochs")
    train = params.train.model_dump(exclude=exclude)
    return {"mode": mode, "model": params.model.model_dump(), "train": train, "dataset": params.dataset.model_dump()}


def build_training(params: Params, data: ModeData) -> tuple[MOSA, RelationLoss]:
    """The model with MFE normalised on the train split, and the loss weighted by train counts."""
    model = build_model(params, data)
    if model.mfe is not None:
        mean, std = data.source.motion_statistics(data.source.videos("train"))
        model.mfe.set_normalization(torch.as_tensor(mean), torch.as_tensor(std))
    counts = predicate_counts(data.relations) if params.model.loss.category_weighted else None
    return model, RelationLoss(params.model.loss, counts)


def set_threads(threads: int | None, ranks: Ranks = SINGLE_PROCESS) -> int:
    """Set torch's intra-op threads: ``threads``, or (0/None) this process's share of the usable cores."""
    if not threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world_size if ranks.distributed else 1))
        threads = max(1, cores // max(1, local_ranks))
    torch.set_num_threads(threads)
    return threads


def train_mode(params: Params, mode: str, live_dir: Path | None = None) -> FitResult:
    """Train one mode; under ``torchrun`` as one of several DDP ranks (see :func:`fit`)."""
    with process_group(params.train.device, "train.device") as ranks, open_mode(params, mode, packed=True) as data:
        threads = set_threads(params.train.threads, ranks)
        if ranks.is_main:
            print(f"{mode}: {threads} torch threads per process (train.threads={params.train.threads})", flush=True)
        if not data.source.videos("val"):
            raise DataError(
                f"{params.dataset.index_dir}: the val split is empty; model selection needs it "
                "(raise dataset.val_fraction)"
            )
        model, loss_fn = build_training(params, data)
        if ranks.device.type != "cpu":
            model, loss_fn = model.to(ranks.device), loss_fn.to(ranks.device)
        pinned = ranks.device.type == "cuda"
        out_dir = Path(params.train.out_dir) / mode
        inputs = [Path(params.dataset.index_dir), Path(params.extract.out_dir), Path(params.motion.out_path), Path(params.text.out_path)]
        settings = run_settings(params, mode)
        run_fingerprint = checkpoint.fingerprint(settings, inputs)
        live = None
        if live_dir is not None and ranks.is_main:
            from dvclive import Live

            # dvcyaml=False: the metrics and plots are declared in the project's dvc.yaml.
            resume = resumable(out_dir, run_fingerprint)
            live = Live(dir=str(live_dir), resume=resume, save_dvc_exp=False, dvcyaml=False)
        try:
            # the checkpoints write through atomic_path; dvclive's files do not
            with disk_full_as_error(out_dir, lambda: tree_size(out_dir) + (tree_size(live_dir) if live_dir else 0)):
                result = fit(
                    model, loss_fn, params.train,
                    data.batches(params, "train", shuffle=True, pin_memory=pinned),
                    data.batches(params, "val", ranks=ranks, pin_memory=pinned),
                    make_validator(data, params), mode, out_dir, run_fingerprint, settings, live, ranks,
                )  # fmt: skip
                if params.train.calibrate and ranks.is_main:
                    result.calibration = calibrate_kept_model(model, head_model_path(params.train.out_dir, mode), data.batches(params, "val"))
                return result
        finally:
            if live is not None:
                live.end()


def calibrate_kept_model(model: MOSA, path: Path, val_batches: VideoBatches) -> dict:
    """Fit the group temperatures of the kept model (``path``) on validation and store them in it.

    The fit reads raw logits, so rerunning it on a calibrated model.pt gives the same temperatures.
    """
    payload = checkpoint.load(path)
    model.load_state_dict(payload["model"])
    report = calibrate(model, val_batches)
    checkpoint.save(path, {**payload, "model": model.state_dict(), "calibration": report})
    return report


def load_trained(params: Params, data: ModeData) -> MOSA:
    path = head_model_path(params.train.out_dir, data.mode)
    state = checkpoint.load(path)
    if state.get("settings") != run_settings(params, data.mode):
        raise DataError(f"{path}: trained with other settings than params.yaml; rerun the train stage")
    model = build_model(params, data)
    model.load_state_dict(state["model"])
    return model


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
    classifier) and ``calibration`` (the group temperatures applied to the
    written scores).
    """
    with open_mode(params, mode) as data:
        model = load_trained(params, data)
        scores = ("combined", "asm") if model.asm is not None else ("combined",)
        tables, embeddings = predict_tables(model, data.batches(params, "test"), mode, scores)
        table, asm_table = tables["combined"], tables.get("asm")
        truth = data.ground_truth("test")
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
    metrics["calibration"] = {group: float(t) for group, t in zip(GROUPS, model.temperature.tolist(), strict=True)}
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


def asm_alone_metrics(table: pl.DataFrame, truth: GroundTruth, held_out: pl.DataFrame, params: Params) -> dict:
    """R@20 / mR@20 with constraint and the held-out recall of the ASM-alone predictions (percent)."""
    aligned = align_predictions(validate_predictions(table, "ASM-alone predictions"), truth)
    result = evaluate(truth, aligned, params.evaluate, constraints=("with",), ks=(RECALL_K,))["with"]
    return {
        "with": {f"R@{RECALL_K}": 100 * result.recall(RECALL_K), f"mR@{RECALL_K}": 100 * result.mean_recall(RECALL_K)},
        "held_out": held_out_recall(table, truth, held_out, params.evaluate),
    }


def run_train_stage(params: Params, mode: str) -> FitResult:
    """The ``train@<mode>`` stage (also under ``torchrun``): train, log the selected epoch on rank 0."""
    result = train_mode(params, check_mode(mode), live_dir=live_dir(mode))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns the same result
        best = ", ".join(f"{k} {v:.2f}" for k, v in result.best_validation.items())
        print(f"{mode}: selected epoch {result.best_epoch + 1} (validation {best})")
        for group, fitted in (result.calibration or {}).items():
            print(
                f"{mode} calibration {group}: T {fitted['temperature']:.3f}, validation NLL "
                f"{fitted['nll_before']:.4f} -> {fitted['nll_after']:.4f} ({fitted['pairs']} pairs)"
            )
    return result


def run_evaluate_stage(params: Params, mode: str) -> dict:
    """The ``evaluate@<mode>`` stage: test predictions, embeddings, AG metrics, per-predicate recall."""
    metrics = evaluate_mode(params, check_mode(mode), output_paths(mode))
    for constraint in params.evaluate.constraints:
        print(f"{mode} {constraint}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics[constraint].items()))
    macro = metrics["motion"]["motion_macro_recall"]
    print(f"{mode} motion macro recall: " + ("no at-hand pairs" if macro is None else f"{macro:.2f}"))
    for name, entry in (("full", metrics["held_out"]), ("ASM alone", metrics.get("asm_alone", {}).get("held_out"))):
        if entry is not None and entry["pairs"]:
            print(f"{mode} held-out ({name}): R@20 {entry['R@20']:.2f}, argmax accuracy {entry['argmax_accuracy']:.2f} "
                  f"over {entry['pairs']} pairs of {entry['combinations']} combinations")  # fmt: skip
    if "asm_alone" in metrics:
        print(f"{mode} ASM alone with: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics["asm_alone"]["with"].items()))
    return metrics


def run_pack_stage(params: Params, mode: str) -> dict:
    """The ``pack@<mode>`` stage: the mode's train/val packs, keeping complete, intact ones."""
    summary = pack_mode(params, check_mode(mode))
    for split, counts in summary.items():
        print(f"{mode} {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return summary


__all__ = ["ModeData", "pack_mode", "run_pack_stage", "evaluate_mode", "load_trained", "make_validator", "open_mode", "train_mode"]

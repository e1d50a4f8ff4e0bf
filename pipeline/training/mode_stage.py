"""Train and evaluate one mode from the caches: what the train and evaluate stages call.

Outputs per mode, under ``train.out_dir/<mode>/``:

* ``model.pt`` (selected on validation), ``checkpoint/last.pt`` (resume);
* ``dvclive/<mode>/``: per-epoch losses and validation R@20/mR@20;
* ``predictions/<mode>.parquet``, ``predictions/<mode>_relation_embeddings.npy``
  (ASM's text-space embedding of each predictions row, read by the search
  stage so it does not run the head again), ``metrics/<mode>.json`` and
  ``plots/predicate_recall/<mode>.csv`` (evaluate).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from pipeline.ag.reader import read_index
from pipeline.constants import PREDICATES
from pipeline.distributed import SINGLE_PROCESS, Ranks, process_group
from pipeline.evaluation import (
    align_predictions,
    evaluate,
    validate_predictions,
    write_predictions,
)
from pipeline.evaluation.ground_truth import MODES, GroundTruth, ground_truth_for_mode
from pipeline.evaluation.report import per_predicate
from pipeline.extraction.cache import RoiCache
from pipeline.io import (
    DataError,
    atomic_path,
    atomic_write_json,
    disk_full_as_error,
    read_parquet,
    tree_size,
)
from pipeline.loss import RelationLoss, predicate_counts
from pipeline.model.mosa import MOSA, FeatureSpec
from pipeline.params import RUN_ONLY_KEYS, Params
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.data import BoundedCache, VideoBatches, rank_share
from pipeline.training.inference import predict
from pipeline.training.sources import CacheSource
from pipeline.training.text import read_text_embeddings
from pipeline.training.trainer import SELECTION_METRIC, FitResult, fit, resumable

VALIDATION_K = 20


@dataclass(frozen=True)
class OutputPaths:
    """Where the evaluate stage writes; dvc.yaml declares the same paths."""

    predictions: Path
    relation_embeddings: Path
    metrics: Path
    predicate_recall: Path


def output_paths(mode: str, root: Path = Path(".")) -> OutputPaths:
    """The evaluate stage's outputs for ``mode``, relative to the project root ``root``."""
    return OutputPaths(
        predictions=root / "predictions" / f"{mode}.parquet",
        relation_embeddings=root / "predictions" / f"{mode}_relation_embeddings.npy",
        metrics=root / "metrics" / f"{mode}.json",
        predicate_recall=root / "plots" / "predicate_recall" / f"{mode}.csv",
    )


def live_dir(mode: str) -> Path:
    """dvclive folder of a mode's training curves (declared in dvc.yaml)."""
    return Path("dvclive") / mode


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

    def batches(self, params: Params, split: str, shuffle: bool = False, ranks: Ranks = SINGLE_PROCESS) -> VideoBatches:
        """Batches of ``split``; an unshuffled (prediction) split is cut into one block per rank.

        Training batches cover the whole split on every rank; each rank takes
        its part of every step (:meth:`VideoBatches.rank_steps`).
        """
        videos = self.source.videos(split)
        if not shuffle:
            videos = rank_share(videos, ranks.rank, ranks.world_size)
        return VideoBatches(
            self.cached,
            videos,
            params.train.batch_videos,
            params.model.temporal_window,
            with_object_dist=self.mode == "sgdet",
            shuffle=shuffle,
            seed=params.train.seed,
        )

    def __enter__(self) -> ModeData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.cache.close()

    def ground_truth(self, split: str) -> GroundTruth:
        return ground_truth_for_mode(self.index_frames, self.index_objects, split, self.mode)


def open_mode(params: Params, mode: str) -> ModeData:
    index = read_index(params.dataset.index_dir)
    cache = RoiCache(params.extract.out_dir)
    motion_path = Path(params.motion.out_path)
    motion = read_parquet(motion_path, "motion")
    text = read_text_embeddings(params.text.out_path)
    source = CacheSource(
        mode, cache, index.frames, index.objects, motion, params.model.mfe_attributes,
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
    return ModeData(mode, source, cached, spec, index.frames, index.objects, index.relations)


def build_model(params: Params, data: ModeData) -> MOSA:
    torch.manual_seed(params.train.seed)
    return MOSA(params.model, data.spec, classify_objects=data.mode != "predcls")


def make_validator(data: ModeData, params: Params):
    """Validation R@20 / mR@20 (with constraint, percent) of a predictions table."""
    truth = data.ground_truth("val")

    def validate(table: pl.DataFrame) -> dict[str, float]:
        aligned = align_predictions(validate_predictions(table, f"{data.mode} validation predictions"), truth)
        result = evaluate(truth, aligned, params.evaluate, constraints=("with",), ks=(VALIDATION_K,))["with"]
        return {f"R@{VALIDATION_K}": 100 * result.recall(VALIDATION_K), f"mR@{VALIDATION_K}": 100 * result.mean_recall(VALIDATION_K)}

    return validate


def run_settings(params: Params, mode: str) -> dict:
    """The settings a trained model depends on (epochs excluded: more epochs may resume)."""
    train = params.train.model_dump(exclude={"epochs", "modes", *RUN_ONLY_KEYS["train"]})
    return {"mode": mode, "model": params.model.model_dump(), "train": train, "dataset": params.dataset.model_dump()}


def build_training(params: Params, data: ModeData) -> tuple[MOSA, RelationLoss]:
    """The model with MFE normalised on the train split, and the loss weighted by train counts."""
    model = build_model(params, data)
    if model.mfe is not None:
        mean, std = data.source.motion_statistics(data.source.videos("train"))
        model.mfe.set_normalization(torch.as_tensor(mean), torch.as_tensor(std))
    counts = predicate_counts(data.relations) if params.model.loss.category_weighted else None
    return model, RelationLoss(params.model.loss, counts)


def train_mode(params: Params, mode: str, live_dir: Path | None = None) -> FitResult:
    """Train one mode; under ``torchrun`` as one of several DDP ranks (see :func:`fit`)."""
    with process_group(params.train.device, "train.device") as ranks, open_mode(params, mode) as data:
        if not data.source.videos("val"):
            raise DataError(
                f"{params.dataset.index_dir}: the val split is empty; model selection needs it "
                "(raise dataset.val_fraction)"
            )
        model, loss_fn = build_training(params, data)
        if ranks.device.type != "cpu":
            model, loss_fn = model.to(ranks.device), loss_fn.to(ranks.device)
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
                return fit(
                    model, loss_fn, params.train,
                    data.batches(params, "train", shuffle=True), data.batches(params, "val", ranks=ranks),
                    make_validator(data, params), mode, out_dir, run_fingerprint, settings, live, ranks,
                )  # fmt: skip
        finally:
            if live is not None:
                live.end()


def load_trained(params: Params, data: ModeData) -> MOSA:
    path = Path(params.train.out_dir) / data.mode / "model.pt"
    state = checkpoint.load(path)
    if state.get("settings") != run_settings(params, data.mode):
        raise DataError(f"{path}: trained with other settings than params.yaml; rerun the train stage")
    model = build_model(params, data)
    model.load_state_dict(state["model"])
    return model


def evaluate_mode(params: Params, mode: str, paths: OutputPaths) -> dict:
    """Predict the test split with the selected model, write the predictions, score them.

    ``paths.metrics`` gets ``{constraint: {"R@K": ..., "mR@K": ...}}`` (percent);
    ``paths.predicate_recall`` a CSV of per-predicate recall@20 for each
    constraint; ``paths.relation_embeddings`` the ASM embedding of each
    predictions row (``[N, D]`` float32; ``[N, 0]`` without ASM).
    """
    metrics_path, plots_path = paths.metrics, paths.predicate_recall
    with open_mode(params, mode) as data:
        model = load_trained(params, data)
        table, embeddings = predict(model, data.batches(params, "test"), mode, with_embeddings=True)
        truth = data.ground_truth("test")
    write_predictions(table, paths.predictions)
    with atomic_path(paths.relation_embeddings, suffix=".npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, embeddings)  # a handle: given a path, np.save would append its own ".npy"
    predictions_path = paths.predictions
    results = evaluate(truth, align_predictions(validate_predictions(table, str(predictions_path)), truth), params.evaluate)
    metrics = {constraint: result.metrics() for constraint, result in results.items()}
    atomic_write_json(metrics_path, metrics)
    recall = {constraint: per_predicate(result) for constraint, result in results.items()}
    first = next(iter(recall.values()))
    per_predicate_table = pl.DataFrame(
        [
            {
                "predicate": name,
                "group": first[name]["group"],
                "gt_count": first[name]["gt_count"],
                **{f"{c}_R@{VALIDATION_K}": recall[c][name][f"R@{VALIDATION_K}"] for c in recall},
            }
            for name in PREDICATES
        ]
    )
    with atomic_path(plots_path, suffix=".csv") as tmp:
        per_predicate_table.write_csv(tmp, float_precision=4)
    return metrics


def run_train_stage(params: Params, mode: str) -> FitResult:
    """The ``train@<mode>`` stage (also under ``torchrun``): train, log the selected epoch on rank 0."""
    result = train_mode(params, checked_mode(mode), live_dir=live_dir(mode))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns the same result
        best = ", ".join(f"{k} {v:.2f}" for k, v in result.best_validation.items())
        print(f"{mode}: selected epoch {result.best_epoch + 1} (validation {best})")
    return result


def run_evaluate_stage(params: Params, mode: str) -> dict:
    """The ``evaluate@<mode>`` stage: test predictions, embeddings, AG metrics, per-predicate recall."""
    metrics = evaluate_mode(params, checked_mode(mode), output_paths(mode))
    for constraint, values in metrics.items():
        print(f"{mode} {constraint}: " + ", ".join(f"{k} {v:.2f}" for k, v in values.items()))
    return metrics


def checked_mode(mode: str) -> str:
    if mode not in MODES:
        raise DataError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


__all__ = ["SELECTION_METRIC", "ModeData", "OutputPaths", "evaluate_mode", "live_dir", "output_paths", "load_trained", "make_validator", "open_mode", "train_mode"]

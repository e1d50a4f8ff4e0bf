"""The ``train@<mode>`` stage: fit the MOSA head on a mode's caches, keep it, calibrate it.

What it writes, and where, is listed in :mod:`pipeline.outputs`.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import torch

from pipeline.ag.reader import predicate_counts
from pipeline.constants import check_mode
from pipeline.distributed import SINGLE_PROCESS, Ranks, process_group
from pipeline.evaluation import (
    align_predictions,
    evaluate,
    validate_predictions,
)
from pipeline.io import (
    DataError,
    disk_full_as_error,
    sha256_file,
    tree_size,
    usable_cores,
)
from pipeline.loss import RelationLoss
from pipeline.model.mosa import MOSA
from pipeline.outputs import RECALL_K, head_model_path, live_dir
from pipeline.params import Params
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.calibration import calibrate, labelled_logits
from pipeline.training.mode_data import ModeData, build_model, open_mode, pack_inputs, run_settings
from pipeline.training.semi_calibration import fit_semi_offsets
from pipeline.training.trainer import FitResult, fit, resumable


def make_validator(data: ModeData, params: Params):
    """Validation R@20 / mR@20 (with constraint, percent) of a predictions table."""
    truth = data.ground_truth("val")

    def validate(table: pl.DataFrame) -> dict[str, float]:
        aligned = align_predictions(validate_predictions(table, f"{data.mode} validation predictions"), truth)
        result = evaluate(truth, aligned, params.evaluate, constraints=("with",), ks=(RECALL_K,))["with"]
        return {f"R@{RECALL_K}": 100 * result.recall(RECALL_K), f"mR@{RECALL_K}": 100 * result.mean_recall(RECALL_K)}

    return validate


def build_training(params: Params, data: ModeData) -> tuple[MOSA, RelationLoss]:
    """The model with MFE normalised on the train split, and the loss weighted by train counts."""
    model = build_model(params, data)
    if model.mfe is not None:
        mean, std = data.source.motion_statistics(data.source.videos("train"))
        model.mfe.set_normalization(torch.as_tensor(mean), torch.as_tensor(std))
    counts = predicate_counts(data.relations) if params.model.loss.category_weighted else None
    return model, RelationLoss(params.model.loss, counts)


def run_inputs(params: Params, data: ModeData) -> dict:
    """What a training run reads, by content: the pack's input record plus the relations and text files.

    The ROI cache is known by its extractor identity and size, as the pack
    knows it (:func:`~pipeline.training.mode_data.pack_inputs`): hashing
    gigabytes of features at every train stage would cost more than the
    resume saves.
    """
    relations = Path(params.dataset.index_dir) / "relations.parquet"
    text = Path(params.text.out_path)
    return {
        **pack_inputs(params, data.mode, data.source.cache),
        relations.name: sha256_file(relations),
        text.name: sha256_file(text),
    }


def set_threads(threads: int | None, ranks: Ranks = SINGLE_PROCESS) -> int:
    """Set torch's intra-op threads: ``threads``, or (0/None) this process's share of the usable cores."""
    if not threads:
        cores = usable_cores()
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
        settings = run_settings(params, mode)
        run_fingerprint = checkpoint.fingerprint(settings, run_inputs(params, data))
        live = None
        if live_dir is not None and ranks.is_main:
            from dvclive import Live

            # dvcyaml=False: the metrics and plots are declared in the project's dvc.yaml.
            resume = resumable(out_dir, run_fingerprint, model)
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
                    result.calibration = calibrate_kept_model(model, head_model_path(params.train.out_dir, mode), data, params)
                return result
        finally:
            if live is not None:
                live.end()


def calibrate_kept_model(model: MOSA, path: Path, data: ModeData, params: Params) -> dict:
    """Fit the group temperatures of the kept model (``path``) on validation and store them in it.

    NLL first; with ``train.semi_calibration`` spatial and contacting then get
    their semi offsets (:mod:`pipeline.training.semi_calibration`; reported
    under ``semi``). Both fits read raw logits, so rerunning them on a
    calibrated model.pt gives the same values.
    """
    payload = checkpoint.load(path)
    model.load_state_dict(payload["model"])
    labelled = labelled_logits(model, data.batches(params, "val"))  # raw logits: one pass serves both fits
    report = calibrate(model, labelled)
    if params.train.semi_calibration:
        semi = fit_semi_offsets(model, labelled, params.evaluate.semi_threshold)
        for group, search in semi.items():
            report[group] = {**report[group], "semi": search}
    checkpoint.save(path, {**payload, "model": model.state_dict(), "calibration": report})
    return report


def run_train_stage(params: Params, mode: str) -> FitResult:
    """The ``train@<mode>`` stage (also under ``torchrun``): train, log the selected epoch on rank 0."""
    result = train_mode(params, check_mode(mode), live_dir=live_dir(mode))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns the same result
        best = ", ".join(f"{k} {v:.2f}" for k, v in result.best_validation.items())
        print(f"{mode}: selected epoch {result.best_epoch + 1} (validation {best})")
        for group, fitted in (result.calibration or {}).items():
            semi = f", semi offset {fitted['semi']['offset']:.2f}" if "semi" in fitted else ""
            print(
                f"{mode} calibration {group}: T {fitted['temperature']:.3f}, validation NLL "
                f"{fitted['nll_before']:.4f} -> {fitted['nll_after']:.4f} ({fitted['pairs']} pairs){semi}"
            )
    return result

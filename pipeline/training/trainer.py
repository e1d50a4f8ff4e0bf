"""The training loop: AdamW, gradient clipping, a fixed LR schedule, model selection, calibration.

Schedule (``train.schedule``). ``warmup_cosine`` (default) sets the
learning rate of optimiser step s (0-based, counted over the whole run) from
the step alone, with S steps per epoch, W = S * warmup_epochs and
T = S * epochs:

    lr_s = lr * (s + 1) / W                                   s < W
    lr_s = lr * 0.5 * (1 + cos(pi * (s - W) / (T - W)))       s >= W

The same for every variant and never driven by the validation score: on a
small validation split that score is noisy, and a cut it triggers would give
each ablation row its own budget. Because lr_s is a function of (epoch,
step), a resumed run needs no scheduler state. ``plateau`` keeps the old
rule (ReduceLROnPlateau on validation R@20, ``lr_patience``, ``lr_factor``).

Validation (R@20, mR@20 with constraint) is still computed and logged after
every epoch; it picks the kept epoch only under ``train.selection: best``.
Only the validation split is used for decisions; the test split belongs to
the evaluate stage. Each epoch reseeds torch from (seed, epoch) and
reshuffles from the same pair, so a run resumed from ``checkpoint/last.pt``
reproduces an uninterrupted one.

After training, the train stage fits one temperature per predicate group
on the validation split (``train.calibrate``,
:mod:`pipeline.training.calibration`) and stores it in the kept model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline.distributed import (
    SINGLE_PROCESS,
    Ranks,
    broadcast_from_main,
    gather_on_main,
    sum_over_ranks,
)
from pipeline.loss import RelationLoss
from pipeline.model.mosa import MOSA
from pipeline.outputs import HEAD_MODEL_NAME, SELECTION_METRIC
from pipeline.params import TrainParams
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training.data import VideoBatches, to_device
from pipeline.training.inference import predict

# The validation metric that selects the model under ``selection: best`` (and drives the ``plateau`` schedule).

Validator = Callable[[pl.DataFrame], dict[str, float]]


@dataclass
class EpochRecord:
    epoch: int
    losses: dict[str, float]
    validation: dict[str, float]
    lr: float
    frames_per_second: float


@dataclass
class FitResult:
    best_epoch: int
    best_validation: dict[str, float]
    history: list[EpochRecord] = field(default_factory=list)
    resumed_from: int = 0
    # group -> fitted temperature and validation NLL before/after (train.calibrate; set by the train stage)
    calibration: dict[str, dict[str, float]] | None = None


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def warmup_cosine_factor(step: int, steps_per_epoch: int, epochs: int, warmup_epochs: int) -> float:
    """lr_s / lr of the ``warmup_cosine`` schedule (module docstring) for global step ``step``."""
    total = max(steps_per_epoch * epochs, 1)
    warmup = min(steps_per_epoch * warmup_epochs, total)
    if step < warmup:
        return (step + 1) / warmup
    if total == warmup:  # the whole run is warm-up
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup)))


def scheduled_lr(params: TrainParams, steps_per_epoch: int, epoch: int, step: int) -> float:
    """The ``warmup_cosine`` learning rate of step ``step`` of epoch ``epoch``."""
    factor = warmup_cosine_factor(epoch * steps_per_epoch + step, steps_per_epoch, params.epochs, params.warmup_epochs)
    return params.lr * factor


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_epoch(
    model: torch.nn.Module,
    loss_fn: RelationLoss,
    optimizer: torch.optim.Optimizer,
    batches: VideoBatches,
    grad_clip: float,
    progress: tqdm | None = None,
    ranks: Ranks = SINGLE_PROCESS,
    step_lr: Callable[[int], float] | None = None,
) -> tuple[dict[str, float], int]:
    """One pass; returns the mean of each loss component (over batches, all ranks) and the frame count.

    ``step_lr(i)``, when given, is the learning rate of the epoch's i-th step
    (counted whether or not the step trains, so the schedule depends on the
    step's position alone). Under DDP (``model`` wrapped, ``ranks.distributed``)
    each rank trains on its part of every step (:meth:`VideoBatches.rank_steps`).
    """
    model.train()
    sums: dict[str, float] = {}
    steps = frames = 0
    if ranks.distributed:
        parts = batches.rank_steps(ranks.rank, ranks.world_size)
    else:
        parts = ((batch, meta, 1.0) for batch, meta in batches)
    for step, (batch, meta, weight) in enumerate(parts):
        if step_lr is not None:
            set_learning_rate(optimizer, step_lr(step))
        if ranks.device.type != "cpu":
            batch = to_device(batch, ranks.device)
        output = model(batch)
        losses = loss_fn(output, batch)
        total = losses["total"]
        if ranks.distributed:
            # DDP all-reduces inside backward: every rank must run it in every
            # step, if need be with a zero loss still connected to the model.
            total = total * weight if total.requires_grad else 0.0 * sum(t.sum() for t in output.logits.values())
        elif not total.requires_grad:
            continue  # a batch without any labelled pair (possible in SGDet)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if weight == 0.0 or not losses["total"].requires_grad:
            continue
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + float(value.detach())
        steps += 1
        frames += len(meta.frames)
        if progress is not None:
            progress.update(len(meta.frames))
            progress.set_postfix(loss=f"{float(losses['total'].detach()):.3f}")
    if ranks.distributed:
        # Loss components are the same on every rank (the loss always returns all of them).
        names = sorted(sums)
        *totals, steps, frames = sum_over_ranks([sums[n] for n in names] + [steps, frames], ranks)
        sums, steps, frames = dict(zip(names, totals, strict=True)), int(steps), int(frames)
    return {name: total / max(steps, 1) for name, total in sums.items()}, frames


def validate_on_ranks(
    model: MOSA, val_batches: VideoBatches, validate: Validator, mode: str, ranks: Ranks
) -> dict[str, float]:
    """Each rank predicts its share of the validation videos; rank 0 scores all of them.

    Every rank gets rank 0's metrics, so their LR schedules stay in step.
    """
    table = predict(model, val_batches, mode)
    if not ranks.distributed:
        return validate(table)
    tables = gather_on_main(ranks, table)
    validation = validate(pl.concat(tables).sort("frame", maintain_order=True)) if tables is not None else None
    return broadcast_from_main(ranks, validation)


def resumable(out_dir: Path, run_fingerprint: str, model: torch.nn.Module | None = None) -> bool:
    """True when ``out_dir`` holds a last checkpoint of this very run (same settings and inputs).

    Given ``model``, its weights must also fit it, name by name and shape by
    shape: a checkpoint written by code with other layers or buffers (the
    same settings, an older head) starts a fresh run instead of failing.
    """
    last_path, best_path = out_dir / "checkpoint" / "last.pt", out_dir / HEAD_MODEL_NAME
    if not (last_path.is_file() and best_path.is_file()):
        return False
    state = checkpoint.load(last_path)
    if state.get("fingerprint") != run_fingerprint:
        return False
    if model is None:
        return True
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    return {name: tuple(value.shape) for name, value in state["model"].items()} == expected


def fit(
    model: MOSA,
    loss_fn: RelationLoss,
    params: TrainParams,
    train_batches: VideoBatches,
    val_batches: VideoBatches,
    validate: Validator,
    mode: str,
    out_dir: Path,
    run_fingerprint: str,
    model_settings: dict[str, Any],
    live: Any | None = None,
    ranks: Ranks = SINGLE_PROCESS,
) -> FitResult:
    """Train for ``params.epochs``, keeping the selected epoch in ``out_dir/model.pt``.

    ``params.selection``: ``best`` keeps the best validation R@20 epoch,
    ``last`` the last epoch.

    Under torchrun (``ranks.distributed``) every rank calls this with its
    share of ``val_batches``; rank 0 alone writes checkpoints, ``live`` logs
    and progress.
    """
    trained: torch.nn.Module = model
    if ranks.distributed:
        if ranks.device.type == "cuda":
            # BatchNorm statistics over the whole step, as in one process (gloo on CPU has no SyncBatchNorm).
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # Unused parameters exist in some ablations (e.g. no MIM) and in zero-weight steps.
        trained = DistributedDataParallel(
            model, device_ids=[ranks.device] if ranks.device.type == "cuda" else None, find_unused_parameters=True
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    plateau = params.schedule == "plateau"
    scheduler = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=params.lr_factor, patience=params.lr_patience
        )
        if plateau
        else None
    )
    steps_per_epoch = len(train_batches)
    last_path = out_dir / "checkpoint" / "last.pt"
    best_path = out_dir / HEAD_MODEL_NAME
    result = FitResult(best_epoch=-1, best_validation={SELECTION_METRIC: -math.inf})

    # A run killed while saving leaves a hidden temp file; out_dir is a
    # persisted DVC output, so it must not be cached and pushed with the model.
    if ranks.is_main:
        for leftover in out_dir.rglob(".*.tmp"):
            leftover.unlink()
    start_epoch = 0
    if resumable(out_dir, run_fingerprint, model):
        state = checkpoint.load(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        start_epoch = result.resumed_from = int(state["epoch"]) + 1
        result.best_epoch = int(state["best_epoch"])
        result.best_validation = dict(state["best_validation"])

    for epoch in range(start_epoch, params.epochs):
        torch.manual_seed(epoch_seed(params.seed, epoch))
        train_batches.set_epoch(epoch)
        started = time.perf_counter()
        description = f"{mode} epoch {epoch + 1}/{params.epochs}"
        step_lr = None if plateau else partial(scheduled_lr, params, steps_per_epoch, epoch)
        with tqdm(desc=description, unit="frame", leave=False, disable=not ranks.is_main) as progress:
            losses, frames = train_epoch(
                trained, loss_fn, optimizer, train_batches, params.grad_clip, progress, ranks, step_lr
            )
        speed = frames / max(time.perf_counter() - started, 1e-9)
        validation = validate_on_ranks(model, val_batches, validate, mode, ranks)
        if scheduler is not None:
            scheduler.step(validation[SELECTION_METRIC])
        record = EpochRecord(epoch, losses, validation, optimizer.param_groups[0]["lr"], speed)
        result.history.append(record)
        # "last": the budget decides, not a noisy validation maximum (ablations compare equal budgets)
        if params.selection == "last" or validation[SELECTION_METRIC] > result.best_validation[SELECTION_METRIC]:
            result.best_epoch, result.best_validation = epoch, dict(validation)
            if ranks.is_main:
                checkpoint.save(best_path, {"model": model.state_dict(), "settings": model_settings, "epoch": epoch})
        if not ranks.is_main:
            continue
        checkpoint.save(
            last_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                # warmup_cosine: the LR follows from the epoch; no scheduler state to keep
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "epoch": epoch,
                "best_epoch": result.best_epoch,
                "best_validation": result.best_validation,
                "fingerprint": run_fingerprint,
            },
        )
        if live is not None:
            log_epoch(live, record)
        loss_text = f"loss {losses['total']:.4f}" if "total" in losses else _NO_PAIR_TEXT
        tqdm.write(
            f"{mode} epoch {epoch + 1}/{params.epochs}: {loss_text}, "
            + ", ".join(f"val {k} {v:.4f}" for k, v in validation.items())
            + f", {speed:.0f} frames/s"
        )
    return result


# An epoch in which no batch held a labelled pair trains nothing. In SGDet
# this means the detector kept no object box that matches an annotated one,
# e.g. random weights or a score threshold above every class score.
_NO_PAIR_TEXT = (
    "no training step (no batch holds a labelled pair; in SGDet: no detected object matches an "
    "annotated one, check the detector and detector.postprocess.score_threshold)"
)


def log_epoch(live: Any, record: EpochRecord) -> None:
    """Per-epoch dvclive metrics; the step is the epoch so a resumed run lines up."""
    live.step = record.epoch
    for name, value in record.losses.items():
        live.log_metric(f"train/loss/{name}", value)
    for name, value in record.validation.items():
        live.log_metric(f"val/{name}", value)
    live.log_metric("train/lr", record.lr)
    # No throughput here: it changes from run to run, and these files are
    # hashed by DVC (the epoch line printed to the console carries it).
    live.next_step()

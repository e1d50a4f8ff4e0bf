"""The ablation runner: every (data seed, variant, training seed), in one process, over the caches.

Every run opens the caches of one data seed, trains one variant with one
training seed for the same budget (:func:`~pipeline.ablation.variants.budget_overrides`:
the last epoch is kept, no LR cuts), predicts the test split, and keeps *per
test video* sufficient statistics (:mod:`pipeline.ablation.statistics`).
Each record stores its full parameter overrides and the ``dvc exp run``
command that repeats it through the pipeline's stages.

Records go to ``runs.json`` after each run, so an interrupted ablation
resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import torch
import yaml

from pipeline.ablation.statistics import video_statistics
from pipeline.ablation.variants import (
    VARIANTS,
    Variant,
    apply_overrides,
    budget_overrides,
    dvc_exp_command,
)
from pipeline.ag.reader import predicate_counts
from pipeline.evaluation.motion import motion_metrics
from pipeline.io import atomic_write_json
from pipeline.outputs import SELECTION_METRIC
from pipeline.params import parse_params
from pipeline.training.inference import predict
from pipeline.training.mode_data import open_mode, run_settings
from pipeline.training.train_stage import build_training, make_validator
from pipeline.training.trainer import fit


def _permuted_motion(batches, seed: int) -> Iterator:
    generator = torch.Generator().manual_seed(seed)
    for batch, meta in batches:
        order = torch.randperm(batch.motion.shape[0], generator=generator)
        yield dataclasses.replace(batch, motion=batch.motion[order]), meta


def run_one(settings: dict, overrides: Sequence[str], mode: str) -> dict:
    """Train and evaluate one (data seed, variant, training seed); the record kept in runs.json."""
    params = parse_params(apply_overrides(settings, overrides))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir, open_mode(params, mode) as data:
        model, loss_fn = build_training(params, data)
        base = make_validator(data, params)
        val_objects = data.index_objects.filter(pl.col("split") == "val")

        def validate(table: pl.DataFrame) -> dict[str, float]:
            motion = motion_metrics(
                table, val_objects, params.evaluate.iou_threshold, params.evaluate.legacy_plus_one
            )
            return {**base(table), "motion macro recall": motion["motion_macro_recall"] or math.nan}

        result = fit(
            model, loss_fn, params.train, data.batches(params, "train", shuffle=True), data.batches(params, "val"),
            validate, mode, Path(out_dir), "paired-ablation", run_settings(params, mode),
        )  # fmt: skip
        table = predict(model, data.batches(params, "test"), mode)
        record = {
            "overrides": list(overrides),
            "curve": [
                {"epoch": r.epoch, "loss": r.losses.get("total"), **r.validation}
                for r in result.history
            ],
            "train_counts": predicate_counts(data.relations).tolist(),
            "stats": video_statistics(table, params, data),
        }
        if model.mfe is not None:
            permuted = predict(
                model, _permuted_motion(data.batches(params, "test"), params.train.seed), mode
            )
            record["permuted_stats"] = video_statistics(permuted, params, data)
    record["seconds"] = time.perf_counter() - started
    return record


def run_paired_ablation(
    params_path: Path,
    data_overrides: dict[str, Sequence[str]],
    train_seeds: Sequence[int],
    epochs: int,
    mode: str,
    runs_path: Path,
    variants: Sequence[Variant] = VARIANTS,
    log=print,
) -> dict:
    """Run every (data seed, variant, training seed) not yet in ``runs_path``; save after each run."""
    settings = yaml.safe_load(Path(params_path).read_text())
    runs = json.loads(runs_path.read_text()) if runs_path.is_file() else {}
    # seed-major order: a run cut short still leaves complete pairs for every variant
    for data_name, data_sets in data_overrides.items():
        for seed in train_seeds:
            for variant in variants:
                key = f"{data_name}/{variant.name}/s{seed}"
                if key in runs:
                    continue
                overrides = [
                    *data_sets,
                    *budget_overrides(epochs),
                    f"train.seed={seed}",
                    *variant.overrides,
                ]
                record = run_one(settings, overrides, mode)
                runs[key] = {
                    "data": data_name,
                    "variant": variant.name,
                    "seed": seed,
                    "mode": mode,
                    "repeat": dvc_exp_command(overrides, key.replace("/", "-")),
                    **record,
                }
                atomic_write_json(runs_path, runs)
                last = record["curve"][-1]
                log(f"{key}: {record['seconds']:.0f}s, last epoch val {SELECTION_METRIC} {last[SELECTION_METRIC]:.1f}, "
                    f"val motion {last['motion macro recall']:.1f}")  # fmt: skip
    return runs


def run_ablation(
    params_path: Path,
    out_dir: Path,
    train_seeds: Sequence[int],
    data_seeds: Sequence[int],
    epochs: int,
    mode: str = "predcls",
    variants: Sequence[Variant] = VARIANTS,
    extra: Sequence[str] = (),
    log=print,
) -> Path:
    """The whole ablation: caches of every data seed, every run, the tables; returns the markdown table.

    ``out_dir`` (``report.ablation_dir``) receives ``runs.json`` (resumed when
    present), the probe of each extra data seed (``probe_d<seed>.json``) and
    ``ablation_<mode>_paired.{md,csv}``. ``extra``: overrides for every run.
    """
    from pipeline.ablation.tables import write_paired_tables

    data_overrides = prepare_data_seeds(params_path, out_dir, data_seeds, extra, log)
    runs_path = Path(out_dir) / "runs.json"
    run_paired_ablation(params_path, data_overrides, train_seeds, epochs, mode, runs_path, variants, log)
    write_paired_tables(runs_path, out_dir)
    return Path(out_dir) / f"ablation_{mode}_paired.md"


def prepare_data_seeds(
    params_path: Path, out_dir: Path, data_seeds: Sequence[int], extra: Sequence[str] = (), log=print
) -> dict[str, list[str]]:
    """Build (or reuse) the caches of every data seed; its overrides for the runner, by data name.

    The default data seed is the pipeline's own caches; every other one gets
    its own root, detector and features, and its probe goes to
    ``out_dir/probe_d<seed>.json``. ``extra``: overrides for every run.
    """
    from pipeline.ablation.data_seeds import (
        build_data_seed,
        build_default_caches,
        data_name,
        data_seed_overrides,
    )
    from pipeline.params import load_params
    from pipeline.probe import run_probe, summary_line

    settings = yaml.safe_load(Path(params_path).read_text())
    params = load_params(params_path)
    default_seed = params.synth.seed
    data_overrides: dict[str, list[str]] = {}
    for seed in data_seeds:
        if seed == default_seed:
            build_default_caches(params, log)
        else:
            seed_params = load_params(build_data_seed(settings, seed, default_seed, log))
            probe_path = Path(out_dir) / f"probe_{data_name(seed)}.json"
            probe = run_probe(seed_params.dataset.index_dir, seed_params.motion.out_path, probe_path, seed_params.motion.still_fraction)
            log(f"{probe_path}: {summary_line(probe)}")
        data_overrides[data_name(seed)] = [*data_seed_overrides(seed, default_seed), *extra]
    return data_overrides

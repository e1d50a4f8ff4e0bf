"""Paired ablation table: differences from full, bootstrap intervals over test videos."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import yaml
from support.training_caches import write_synthetic_caches

from pipeline.ablation.runner import run_paired_ablation
from pipeline.ablation.statistics import METRICS, metrics_of, paired_table, tail_predicates
from pipeline.ablation.tables import render_paired_markdown, write_paired_tables
from pipeline.ablation.variants import VARIANTS, Variant
from pipeline.constants import NUM_PREDICATES


def _stats(rng, videos: int, motion_accuracy: float) -> dict:
    counts = rng.integers(0, 3, size=(videos, NUM_PREDICATES))
    total = rng.integers(1, 6, size=(videos, 4))
    return {
        "video": [f"v{i}" for i in range(videos)],
        "frames": [5] * videos,
        "recall_sum": rng.uniform(2, 4, size=videos).tolist(),
        "hits_with": (counts // 2).tolist(),
        "hits_no": counts.tolist(),
        "counts": counts.tolist(),
        "motion_total": total.tolist(),
        "motion_correct": np.round(total * motion_accuracy).astype(int).tolist(),
        "held_correct": [1] * videos,
        "held_total": [2] * videos,
    }


def _runs(accuracy: dict[str, float]) -> dict:
    runs = {}
    for data in ("d0", "d1"):
        for variant, value in accuracy.items():
            for seed in (0, 1, 2):
                rng = np.random.default_rng(
                    [len(data), seed]
                )  # same videos for every variant of a data seed
                stats = _stats(rng, 20, value)
                runs[f"{data}/{variant}/s{seed}"] = {
                    "data": data, "variant": variant, "seed": seed, "mode": "predcls", "train_counts": list(range(26)),
                    "curve": [{"epoch": 0, "loss": 1.0, "R@20": 50.0, "motion macro recall": value * 100}],
                    "stats": stats, **({"permuted_stats": _stats(rng, 20, 0.25) | {"video": stats["video"]}}
                                       if variant == "full" else {}),
                }  # fmt: skip
    return runs


def test_a_variant_that_loses_motion_gets_a_negative_interval_excluding_zero():
    table = paired_table(_runs({"full": 1.0, "no-mfe": 0.5, "no-asm": 1.0}), resamples=300)
    rows = {row["variant"]: row for row in table.iter_rows(named=True)}
    assert list(rows) == ["full", "no-mfe", "no-asm", "full-motion-permuted"]
    no_mfe = rows["no-mfe"]
    assert no_mfe["motion macro recall diff"] < 0 and no_mfe["motion macro recall ci_high"] < 0
    no_asm = rows["no-asm"]
    assert (
        no_asm["motion macro recall diff"] == 0
        and no_asm["motion macro recall ci_low"] <= 0 <= no_asm["motion macro recall ci_high"]
    )
    assert rows["full-motion-permuted"]["motion macro recall ci_high"] < 0
    assert "Δ" in render_paired_markdown(table, "t")


def test_metrics_follow_the_definitions_on_the_plain_sample():
    stats = {
        k: np.asarray(v, dtype=float)
        for k, v in _stats(np.random.default_rng(0), 4, 1.0).items()
        if k != "video"
    }
    values = metrics_of(stats, np.ones((1, 4)), tail=[0])
    assert set(values) == set(METRICS)
    assert values["motion macro recall"][0] == 100.0 and values["held-out recall"][0] == 50.0
    assert np.isclose(values["R@20 with"][0], 100 * stats["recall_sum"].sum() / 20)


def test_a_predicate_without_ground_truth_is_left_out_of_mean_recall():
    stats = {
        k: np.asarray(v, dtype=float)
        for k, v in _stats(np.random.default_rng(0), 4, 1.0).items()
        if k != "video"
    }
    stats["counts"][:, 5] = 0
    stats["hits_with"][:, 5] = 0
    present = stats["counts"].sum(axis=0) > 0
    expected = 100 * np.mean(stats["hits_with"].sum(axis=0)[present] / stats["counts"].sum(axis=0)[present])
    assert np.isclose(metrics_of(stats, np.ones((1, 4)), tail=[0])["mR@20 with"][0], expected)


def test_the_interval_resamples_training_seeds_too():
    # every video agrees, but one training seed of three loses all its motion recall: the
    # interval must reach from that seed's loss to the others' 0, and the MDE must see the spread
    runs = {}
    for seed, accuracy in enumerate((0.0, 1.0, 1.0)):
        for variant, value in (("full", 1.0), ("no-asm", accuracy)):
            stats = _stats(np.random.default_rng(seed), 20, value) | {"motion_total": [[1, 1, 1, 1]] * 20}
            stats["motion_correct"] = [[int(value)] * 4] * 20
            runs[f"d0/{variant}/s{seed}"] = {
                "data": "d0", "variant": variant, "seed": seed, "mode": "predcls", "train_counts": list(range(26)),
                "curve": [], "stats": stats,
            }  # fmt: skip
    row = next(r for r in paired_table(runs, resamples=400).iter_rows(named=True) if r["variant"] == "no-asm")
    assert np.isclose(row["motion macro recall diff"], -100 / 3)
    assert row["motion macro recall ci_low"] <= -99 and row["motion macro recall ci_high"] >= -1
    assert row["motion macro recall mde"] > 30


def test_variants_differ_from_full_in_one_switch_and_baseline_keeps_gamma():
    by_name: dict[str, Variant] = {v.name: v for v in VARIANTS}
    assert all(len(v.overrides) == 1 for n, v in by_name.items() if n not in ("full", "baseline"))
    assert not any("gamma" in o for o in by_name["baseline"].overrides)
    assert by_name["gamma-0"].overrides == ("model.loss.gamma=0",)
    assert tail_predicates([0, 5, 1, 9, 3, 7]) == [2]


def test_in_process_runs_train_every_variant_and_render(tmp_path):
    params = write_synthetic_caches(tmp_path / "world")
    small = [
        "model.d_model=16",
        "model.heads=2",
        "model.mim_heads=2",
        "model.temporal_layers=1",
        "train.batch_videos=2",
    ]
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    variants = tuple(v for v in VARIANTS if v.name in ("full", "no-mfe"))
    runs_path = tmp_path / "runs.json"
    runs = run_paired_ablation(
        params_path, {"d0": small}, [0], 2, "predcls", runs_path, variants, log=lambda _: None
    )
    assert set(runs) == {"d0/full/s0", "d0/no-mfe/s0"}
    full = runs["d0/full/s0"]
    assert (
        len(full["curve"]) == 2
        and "permuted_stats" in full
        and "permuted_stats" not in runs["d0/no-mfe/s0"]
    )
    assert (
        "train.selection=last" in full["overrides"]
        and "model.mfe=false" in runs["d0/no-mfe/s0"]["overrides"]
    )
    # resuming skips finished runs
    resumed = run_paired_ablation(
        params_path, {"d0": small}, [0], 2, "predcls", runs_path, variants, log=None
    )
    assert (
        set(resumed) == set(runs)
        and resumed["d0/full/s0"]["seconds"] == runs["d0/full/s0"]["seconds"]
    )
    markdown = write_paired_tables(runs_path, tmp_path, resamples=50)
    assert markdown == tmp_path / "ablation_predcls_paired.md"
    assert pl.read_csv(tmp_path / "ablation_predcls_paired.csv")["variant"].to_list() == ["full", "no-mfe", "full-motion-permuted"]
    assert markdown.read_text().count("| full |") == 2  # both learning curve epochs
    # every record says how to repeat it through the pipeline's stages
    assert runs["d0/no-mfe/s0"]["repeat"].startswith("dvc exp run --name d0-no-mfe-s0 ")
    assert "-S model.mfe=false" in runs["d0/no-mfe/s0"]["repeat"]


def test_mosa_ablate_runs_end_to_end_and_the_table_renders_again(tmp_path):
    """One command: caches present, every chosen (variant, seed) run, the tables in --out-dir; then re-rendered."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    params = write_synthetic_caches(tmp_path / "world")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    out = tmp_path / "ablations"
    small = ["model.d_model=16", "model.heads=2", "model.mim_heads=2", "model.temporal_layers=1", "train.batch_videos=2"]
    args = ["ablate", "--params", str(params_path), "--out-dir", str(out), "--seeds", "0",
            "--data-seeds", str(params.synth.seed), "--epochs", "1", "--variants", "full,no-asm"]  # fmt: skip
    for override in small:
        args += ["-S", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "runs.json").read_text())
    assert set(runs) == {"d0/full/s0", "d0/no-asm/s0"}
    assert all(o in runs["d0/no-asm/s0"]["overrides"] for o in small)
    first = (out / "ablation_predcls_paired.md").read_text()
    assert "w/o ASM" in first and "MOSA (full)" in first
    (out / "ablation_predcls_paired.md").unlink()
    again = CliRunner().invoke(app, ["ablation-table", "--params", str(params_path), "--out-dir", str(out)])
    assert again.exit_code == 0, again.output
    assert (out / "ablation_predcls_paired.md").read_text() == first


def test_ablation_table_without_runs_is_a_one_line_error(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["ablation-table", "--out-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no ablation runs; run `mosa ablate` first" in result.output

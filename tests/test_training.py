"""Data path, training loop, checkpoints and evaluation on a tiny hand-built set of caches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from support.training_caches import SPURIOUS_LABEL, write_synthetic_caches

from pipeline.ag.reader import read_index
from pipeline.constants import NUM_OBJECT_CLASSES, NUM_PREDICATES, PREDICATES
from pipeline.evaluation import read_predictions
from pipeline.extraction.cache import RoiCache
from pipeline.io import DataError
from pipeline.outputs import output_paths
from pipeline.params import Params
from pipeline.training import head_checkpoint as checkpoint
from pipeline.training import trainer
from pipeline.training.data import BoundedCache, VideoBatches
from pipeline.training.evaluate_stage import evaluate_mode
from pipeline.training.matching import greedy_match
from pipeline.training.mode_data import open_mode
from pipeline.training.semi_calibration import (
    SEMI_GROUPS,
    SEMI_OFFSETS,
    asserted_f1,
    best_offset_index,
)
from pipeline.training.sources import CacheSource
from pipeline.training.text import read_text_embeddings
from pipeline.training.train_stage import train_mode


def override(params: Params, section: str, **values) -> Params:
    return params.model_copy(update={section: getattr(params, section).model_copy(update=values)})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Params:
    params = write_synthetic_caches(tmp_path_factory.mktemp("world"))
    params = override(params, "model", d_model=16, heads=2, mim_heads=2, temporal_layers=1)
    return override(params, "train", epochs=2, batch_videos=2)


def with_out_dir(params: Params, out_dir: Path, **train) -> Params:
    return override(params, "train", out_dir=str(out_dir), **train)


# --------------------------------------------------------------------------- data path


def test_predcls_pairs_carry_index_targets_and_motion_rows(world):
    data = open_mode(world, "predcls")
    pairs = data.source.load("V0.mp4")
    assert pairs.num_pairs == 8 and len(pairs.frames) == 4  # small objects stay in PredCls
    assert pairs.has_relation.all()
    assert set(pairs.object_label.tolist()) == {2, 10}
    # class 10 in frame 0: attention 10 % 3, spatial 3 + 10 % 6, contacting {9 + 10, 9 + 11}
    row = int(np.nonzero((pairs.pair_frame == 0) & (pairs.object_label == 10))[0][0])
    assert pairs.target_attention[row] == 1
    assert np.nonzero(pairs.target_spatial[row])[0].tolist() == [(3 + 10 % 6) - 3]
    assert np.nonzero(pairs.target_contacting[row])[0].tolist() == [10, 11]
    motion = pl.read_parquet(world.motion.out_path).filter(
        (pl.col("source") == "gt") & (pl.col("frame") == pairs.frames[0]) & (pl.col("object_index") == 10)
    )
    assert np.allclose(pairs.motion[row], motion.select(*data.source.motion_columns).row(0))
    assert data.source.motion_columns[-2:] == ["dx", "dy"]  # velocity's vector ends MOSA's four by default


def test_sgcls_drops_small_objects(world):
    pairs = open_mode(world, "sgcls").source.load("V0.mp4")
    assert pairs.num_pairs == 7
    assert pairs.object_dist is None  # ground-truth boxes have no detector distribution


def test_sgdet_matches_detections_to_ground_truth_by_iou(world):
    pairs = open_mode(world, "sgdet").source.load("V1.mp4")
    spurious = pairs.object_label == SPURIOUS_LABEL
    assert spurious.sum() == 4
    assert not pairs.has_relation[spurious].any() and (pairs.target_object[spurious] == 0).all()
    assert pairs.has_relation[~spurious].all()
    assert np.array_equal(pairs.target_object[~spurious], pairs.object_label[~spurious])
    assert pairs.object_dist.shape == (pairs.num_pairs, NUM_OBJECT_CLASSES)
    assert np.allclose(pairs.subject_score, 0.9)


def test_missing_motion_attribute_is_a_one_line_error(world):
    motion = pl.read_parquet(world.motion.out_path).drop("scale_change")
    index = read_index(world.dataset.index_dir)
    with RoiCache(world.extract.out_dir) as cache, pytest.raises(DataError, match="scale_change.*motion.extras"):
        CacheSource("predcls", cache, index.frames, index.objects, motion, ("distance", "scale_change"))


def test_batches_hold_several_videos_and_reshuffle_per_epoch(world):
    data = open_mode(world, "predcls")
    batches = VideoBatches(data.cached, ["V0.mp4", "V1.mp4", "V2.mp4"], 2, 2, False, shuffle=True, seed=3)
    sizes = [len(meta.frames) for _, meta in batches]
    assert sizes in ([8, 4], [4, 8]) and len(batches) == 2
    orders = set()
    for epoch in range(6):
        batches.set_epoch(epoch)
        orders.add(tuple(meta.frames[0] for _, meta in batches))
    assert len(orders) > 1
    batch, meta = next(iter(batches))
    assert batch.frame_pairs.shape[0] == len(meta.frames)
    assert (batch.subject_box >= 0).all() and (batch.subject_box <= 1).all()


def test_bounded_cache_never_exceeds_its_budget(world):
    data = open_mode(world, "predcls")
    one = data.source.load("V0.mp4").nbytes
    cached = BoundedCache(data.source, budget_bytes=int(one * 1.5))
    for video in ["V0.mp4", "V1.mp4", "V2.mp4", "V0.mp4"]:
        cached.load(video)
        assert cached.used <= cached.budget
    assert len(cached.entries) == 1
    assert cached.load("V0.mp4") is cached.load("V0.mp4")


def test_semi_offset_is_the_best_f1_and_a_tie_keeps_the_smaller_offset():
    assert SEMI_OFFSETS[0] == 0.0 and list(SEMI_OFFSETS) == sorted(set(SEMI_OFFSETS))
    assert best_offset_index([50.0, 52.0, 51.0]) == 1
    assert best_offset_index([50.0, 53.0, 53.0, 40.0]) == 1
    assert best_offset_index([50.0, 50.0]) == 0


def test_asserted_f1_counts_the_cells_above_the_threshold():
    logits = torch.tensor([[3.0, 1.0, -2.0], [0.5, 2.5, -1.0]])
    target = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # at T = 1, b = 0 and 0.9 (logit 2.197): cells 3.0 and 2.5 pass, both true; one true label (1.0) missed
    assert asserted_f1(logits, target, 1.0, 0.0, 0.9) == pytest.approx(2 * 2 / (2 * 2 + 1))
    # b = 1.5: 1.0 passes too (all three true, none wrong)
    assert asserted_f1(logits, target, 1.0, 1.5, 0.9) == pytest.approx(1.0)
    # b = 3: 0.5 passes as well (wrong); b = 3.5: -1.0 too (wrong)
    assert asserted_f1(logits, target, 1.0, 3.0, 0.9) == pytest.approx(2 * 3 / (2 * 3 + 1))
    assert asserted_f1(logits, target, 1.0, 3.5, 0.9) == pytest.approx(2 * 3 / (2 * 3 + 2))
    assert asserted_f1(logits, target, 2.0, 0.0, 0.9) == 0.0  # a higher temperature: nothing passes


def test_greedy_match_is_one_to_one_highest_iou_first():
    truths = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=float)
    dets = np.array([[1, 1, 10, 10], [0, 0, 10, 10], [21, 21, 30, 30], [50, 50, 60, 60]], dtype=float)
    assert greedy_match(dets, truths, 0.5).tolist() == [-1, 0, 1, -1]


# --------------------------------------------------------------------------- training


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(path)["model"]


def test_train_and_evaluate_write_checkpoints_logs_and_metrics(world, tmp_path):
    params = with_out_dir(world, tmp_path / "models")
    result = train_mode(params, "predcls", live_dir=tmp_path / "live")
    assert len(result.history) == 2 and 0 <= result.best_epoch < 2
    assert (tmp_path / "models" / "predcls" / "model.pt").is_file()
    state = torch.load(tmp_path / "models" / "predcls" / "checkpoint" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    logged = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert {"R@20", "mR@20"} <= set(logged["val"]) and "total" in logged["train"]["loss"]

    # calibration: fitted on validation, stored in the kept model, reported and applied by evaluate
    kept = checkpoint.load(tmp_path / "models" / "predcls" / "model.pt")
    fitted = [kept["calibration"][group]["temperature"] for group in ("attention", "spatial", "contacting")]
    assert torch.allclose(kept["model"]["temperature"], torch.tensor(fitted))
    assert result.calibration == kept["calibration"]
    for report in kept["calibration"].values():
        assert report["nll_after"] <= report["nll_before"] + 1e-9
    # then the semi offsets of the two thresholded groups: the best validation F1 of each search
    assert "semi" not in kept["calibration"]["attention"]
    offsets = kept["model"]["score_offset"].tolist()
    assert offsets[0] == 0.0
    for index, group in enumerate(("attention", "spatial", "contacting")):
        if group not in SEMI_GROUPS:
            continue
        semi = kept["calibration"][group]["semi"]
        assert offsets[index] == semi["offset"] and len(semi["f1"]) == len(SEMI_OFFSETS)
        assert semi["f1"][f"{semi['offset']:.2f}"] == max(semi["f1"].values())

    paths = output_paths("predcls", tmp_path)
    metrics = evaluate_mode(params, "predcls", paths)
    assert set(metrics) == {
        "with", "semi", "no", "motion", "predicate_recall", "held_out", "asm_alone", "calibration", "score_offset",
        "motion_by_split", "group_recall", "group_recall_by_split", "ceiling",
    }  # fmt: skip
    assert set(metrics["motion_by_split"]) == {"train", "val", "test"}
    assert metrics["motion_by_split"]["test"] == metrics["motion"]["motion_macro_recall"]
    assert set(metrics["group_recall_by_split"]) == {"train", "val", "test"}
    assert metrics["group_recall_by_split"]["test"] == metrics["group_recall"]["with"]
    assert set(metrics["group_recall"]["with"]) == {"attention", "spatial", "contacting"}
    # the perfect classifier bounds the model on every constraint
    for constraint in ("with", "semi", "no"):
        assert metrics[constraint]["R@20"] <= metrics["ceiling"][constraint]["R@20"] + 1e-9
    assert 0 <= metrics["with"]["R@20"] <= 100
    assert metrics["calibration"] == pytest.approx(dict(zip(("attention", "spatial", "contacting"), fitted, strict=True)))
    assert metrics["score_offset"] == dict(zip(("attention", "spatial", "contacting"), offsets, strict=True))
    assert set(metrics["asm_alone"]["with"]) == {"R@20", "mR@20"}
    assert {"R@20", "argmax_accuracy", "combinations", "pairs"} <= set(metrics["held_out"])
    assert set(metrics["asm_alone"]["held_out"]) == set(metrics["held_out"])
    assert set(metrics["predicate_recall"]["with"]) == set(PREDICATES)
    assert {"motion_macro_recall", "confusion"} <= set(metrics["motion"])
    assert len(read_predictions(paths.predictions)) == 8  # the test video: 4 frames x 2 objects
    assert pl.read_csv(paths.predicate_recall).height == NUM_PREDICATES
    embeddings = np.load(paths.relation_embeddings)
    assert embeddings.shape[0] == 8 and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("mode", ["sgcls", "sgdet"])
def test_object_classifying_modes_train_and_predict_real_object_labels(world, tmp_path, mode):
    params = with_out_dir(world, tmp_path, epochs=1)
    train_mode(params, mode)
    paths = output_paths(mode, tmp_path)
    evaluate_mode(params, mode, paths)
    predictions = read_predictions(paths.predictions)
    assert (predictions.object_label >= 2).all()
    if mode == "sgdet":
        assert np.allclose(predictions.subject_score, 0.9)


def test_same_seed_gives_identical_weights_and_metrics(world, tmp_path):
    results = []
    for run in ("a", "b"):
        params = with_out_dir(world, tmp_path / run)
        history = train_mode(params, "predcls").history
        results.append(([r.validation for r in history], _weights(tmp_path / run / "predcls" / "model.pt")))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(results[0][1][k], results[1][1][k]) for k in results[0][1])


class Interrupted(Exception):
    pass


def test_resume_continues_exactly_where_an_interrupted_run_stopped(world, tmp_path, monkeypatch):
    """A run killed during epoch 2 resumes from epoch 1's checkpoint; the warm-up/cosine LR follows from the epoch."""
    straight = with_out_dir(world, tmp_path / "straight", epochs=3)
    train_mode(straight, "predcls")
    interrupted = with_out_dir(world, tmp_path / "resumed", epochs=3)
    validate = trainer.validate_on_ranks
    calls = []

    def validate_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # killed after training epoch 2, before its checkpoint
            raise Interrupted
        return validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate_on_ranks", validate_then_stop)
    with pytest.raises(Interrupted):
        train_mode(interrupted, "predcls")
    monkeypatch.setattr(trainer, "validate_on_ranks", validate)
    resumed = train_mode(interrupted, "predcls")
    assert resumed.resumed_from == 1 and [r.epoch for r in resumed.history] == [1, 2]
    a = _weights(tmp_path / "straight" / "predcls" / "checkpoint" / "last.pt")
    b = _weights(tmp_path / "resumed" / "predcls" / "checkpoint" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_settings_start_fresh_instead_of_resuming(world, tmp_path):
    train_mode(with_out_dir(world, tmp_path, epochs=1), "predcls")
    changed = with_out_dir(world, tmp_path, epochs=2, lr=5e-4)
    assert train_mode(changed, "predcls").resumed_from == 0


def test_resume_follows_input_contents_not_file_times(world, tmp_path):
    """last.pt is in a DVC output: a clone whose inputs have new mtimes must write the same fingerprint."""
    text = tmp_path / "text.h5"
    text.write_bytes(Path(world.text.out_path).read_bytes())
    params = override(with_out_dir(world, tmp_path / "run", epochs=1, schedule="plateau"), "text", out_path=str(text))
    train_mode(params, "predcls")
    first = checkpoint.load(tmp_path / "run" / "predcls" / "checkpoint" / "last.pt")["fingerprint"]
    for path in [text, *Path(world.dataset.index_dir).iterdir(), Path(world.motion.out_path)]:
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    longer = override(params, "train", epochs=2)
    assert train_mode(longer, "predcls").resumed_from == 1
    assert checkpoint.load(tmp_path / "run" / "predcls" / "checkpoint" / "last.pt")["fingerprint"] == first
    with h5py.File(text, "a") as handle:  # same embeddings, other bytes: another input
        handle.attrs["touched"] = 1
    assert train_mode(override(params, "train", epochs=3), "predcls").resumed_from == 0


def test_a_checkpoint_of_an_older_head_starts_a_fresh_run(world, tmp_path):
    """Same settings and inputs, but weights written by code without a buffer the head now has."""
    params = with_out_dir(world, tmp_path / "run", epochs=1, schedule="plateau")
    train_mode(params, "predcls")
    last = tmp_path / "run" / "predcls" / "checkpoint" / "last.pt"
    state = checkpoint.load(last)
    checkpoint.save(last, {**state, "model": {k: v for k, v in state["model"].items() if k != "score_offset"}})
    longer = override(params, "train", epochs=2)
    assert train_mode(longer, "predcls").resumed_from == 0  # it would resume from epoch 1 otherwise


def test_more_epochs_resume_only_under_the_plateau_schedule(world, tmp_path):
    """Under warmup_cosine the epoch count shapes every step's LR: another count is another run."""
    train_mode(with_out_dir(world, tmp_path / "cosine", epochs=1), "predcls")
    assert train_mode(with_out_dir(world, tmp_path / "cosine", epochs=2), "predcls").resumed_from == 0
    train_mode(with_out_dir(world, tmp_path / "plateau", epochs=1, schedule="plateau"), "predcls")
    longer = with_out_dir(world, tmp_path / "plateau", epochs=2, schedule="plateau")
    assert train_mode(longer, "predcls").resumed_from == 1


def test_warmup_cosine_rises_linearly_over_the_warmup_then_decays_to_zero():
    steps, epochs = 4, 5
    factors = [trainer.warmup_cosine_factor(s, steps, epochs, warmup_epochs=1) for s in range(steps * epochs)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0)  # the cosine starts at the peak
    decay = factors[4:]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False)) and 0.0 < decay[-1] < 0.01
    assert decay[8] == pytest.approx(0.5)  # half-way through the decay
    # no warm-up, or a run that is all warm-up
    assert trainer.warmup_cosine_factor(0, steps, epochs, warmup_epochs=0) == pytest.approx(1.0)
    assert trainer.warmup_cosine_factor(3, steps, 1, warmup_epochs=2) == pytest.approx(4 / 4)


def test_training_follows_the_schedule_not_the_validation_score(world, tmp_path):
    params = with_out_dir(world, tmp_path, epochs=3, lr=1e-3)
    history = train_mode(params, "predcls").history
    steps = 2  # three train videos, two per batch
    expected = [1e-3 * trainer.warmup_cosine_factor(e * steps + steps - 1, steps, 3, 1) for e in range(3)]
    assert [r.lr for r in history] == pytest.approx(expected)


def test_evaluate_refuses_a_model_trained_with_other_settings(world, tmp_path):
    params = with_out_dir(world, tmp_path, epochs=1)
    train_mode(params, "predcls")
    other = override(params, "model", mim=False)
    with pytest.raises(DataError, match="rerun the train stage"):
        evaluate_mode(other, "predcls", output_paths("predcls", tmp_path))


def test_text_cache_with_another_predicate_order_is_refused(tmp_path):
    path = tmp_path / "text.h5"
    with h5py.File(path, "w") as handle:
        handle["class_embeddings"] = np.zeros((NUM_OBJECT_CLASSES, 4), np.float32)
        handle["prompt_embeddings"] = np.zeros((NUM_PREDICATES, 4), np.float32)
        handle["predicates"] = np.array(list(reversed(PREDICATES)), dtype=object).astype("S")
    with pytest.raises(DataError, match="'predicates' is not in this code's order"):
        read_text_embeddings(path)
    with h5py.File(path, "a") as handle:
        del handle["predicates"]
        del handle["prompt_embeddings"]
        handle["prompt_embeddings"] = np.zeros((NUM_PREDICATES, 5), np.float32)
    with pytest.raises(DataError, match="prompt_embeddings has shape"):
        read_text_embeddings(path)


def test_two_column_motion_attributes_size_the_mfe_input(world, tmp_path):
    """relative_displacement is two motion columns (dx, dy): MFE must take 5 inputs for these 4 names."""
    names = ("distance", "velocity", "relative_displacement", "scale_change")
    params = override(with_out_dir(world, tmp_path, epochs=1), "model", mfe_attributes=names)
    with open_mode(params, "predcls") as data:
        assert data.spec.motion_dim == 5
        assert data.source.load("V0.mp4").motion.shape[1] == 5
    train_mode(params, "predcls")

"""Training packs: the same batches as the ROI-cache path, refusal of stale or foreign files, prefetching."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from support.training_caches import write_synthetic_caches

from pipeline.extraction.cache import RoiCache, load_detection_table
from pipeline.io import DataError
from pipeline.model.batch import pad_groups, window_tables
from pipeline.params import Params
from pipeline.training.data import VideoBatches, index_tables, prefetched
from pipeline.training.mode_data import open_mode
from pipeline.training.pack import pack_path, reusable, verify
from pipeline.training.pack_stage import pack_mode
from pipeline.training.train_stage import set_threads

SPLITS = {f"V{i}.mp4": ("train" if i < 7 else "val" if i < 10 else "test") for i in range(11)}


def override(params: Params, section: str, **values) -> Params:
    return params.model_copy(update={section: getattr(params, section).model_copy(update=values)})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Params:
    params = write_synthetic_caches(
        tmp_path_factory.mktemp("packs"), splits=SPLITS, frames_per_video=5
    )
    return override(params, "train", batch_videos=2)


def assert_same_batches(first: list, second: list) -> None:
    assert len(first) == len(second) > 1
    for (batch_a, meta_a), (batch_b, meta_b) in zip(first, second, strict=True):
        for field in fields(batch_a):
            a, b = getattr(batch_a, field.name), getattr(batch_b, field.name)
            assert (a is None) == (b is None), field.name
            if a is not None:
                assert a.dtype == b.dtype and torch.equal(a, b), field.name
        for field in fields(meta_a):
            a, b = getattr(meta_a, field.name), getattr(meta_b, field.name)
            assert a == b if isinstance(a, list) else np.array_equal(a, b), field.name


@pytest.mark.parametrize("mode", ["predcls", "sgcls", "sgdet"])
@pytest.mark.parametrize("window", [1, 3])
def test_packed_batches_equal_the_roi_cache_batches(world, mode, window):
    params = override(
        world, "model", temporal_window=window, mfe_attributes=("distance", "velocity")
    )
    with open_mode(params, mode, packed=True) as data:
        for split in ("train", "val"):
            packed = data.batches(params, split, shuffle=True)
            packed.set_epoch(3)
            direct = VideoBatches(
                data.cached, data.source.videos(split), params.train.batch_videos, window,
                with_object_dist=mode == "sgdet", shuffle=True, seed=params.train.seed,
            )  # fmt: skip
            direct.set_epoch(3)
            assert packed.prefetch == world.train.prefetch_batches > 0
            assert_same_batches(list(packed), list(direct))


def test_index_tables_equal_the_per_frame_lists():
    rng = np.random.default_rng(0)
    for _ in range(50):
        frames_per_video = rng.integers(1, 6, size=rng.integers(1, 4))
        pairs_per_frame = rng.integers(0, 4, size=int(frames_per_video.sum()))
        starts = np.cumsum(frames_per_video) - frames_per_video
        for video, start in enumerate(
            starts
        ):  # every video has a pair (empty videos never reach a batch)
            if not pairs_per_frame[start : start + frames_per_video[video]].any():
                pairs_per_frame[start] = 1
        pair_frame = np.repeat(np.arange(len(pairs_per_frame)), pairs_per_frame)
        window = int(rng.integers(1, 4))
        frame_pairs, window_pairs, window_position = index_tables(
            pair_frame, frames_per_video, window
        )
        rows = np.split(np.arange(len(pair_frame)), np.cumsum(pairs_per_frame)[:-1])
        kept = [r.tolist() for r in rows if r.size]
        kept_frames = [f for f in range(len(rows)) if rows[f].size]
        video_of = np.searchsorted(np.cumsum(frames_per_video), kept_frames, side="right")
        video_frames = [
            [i for i, v in enumerate(video_of) if v == video]
            for video in range(len(frames_per_video))
        ]
        expected_rows, expected_positions = window_tables(
            kept, [f for f in video_frames if f], window
        )
        assert torch.equal(frame_pairs, pad_groups(kept))
        assert torch.equal(window_pairs, expected_rows)
        assert torch.equal(window_position, expected_positions)


def test_training_without_a_pack_names_the_stage(world, tmp_path):
    params = override(world, "train", pack_dir=str(tmp_path / "nowhere"))
    with pytest.raises(
        DataError,
        match=r"no training pack for sgcls; rerun the pack stage \(dvc repro pack@sgcls\)",
    ):
        open_mode(params, "sgcls", packed=True)


def test_a_roi_cache_or_a_stale_pack_is_refused(world, tmp_path):
    pack_dir = tmp_path / "pack"
    for split in ("train", "val"):
        pack_path(pack_dir, "predcls", split).parent.mkdir(parents=True, exist_ok=True)
        # A file written by the extract stage (today's cache format) in the pack's place.
        pack_path(pack_dir, "predcls", split).write_bytes(
            (Path(world.extract.out_dir) / "roi.h5").read_bytes()
        )
    params = override(world, "train", pack_dir=str(pack_dir))
    with pytest.raises(
        DataError,
        match=r"not a predcls training pack .*rerun the pack stage \(dvc repro pack@predcls\)",
    ):
        open_mode(params, "predcls", packed=True)
    other = override(world, "train", sgdet_match_iou=0.3)
    with pytest.raises(DataError, match=r"other caches or settings .*dvc repro pack@predcls"):
        open_mode(other, "predcls", packed=True)


def test_pack_stage_keeps_intact_parts_and_redoes_damaged_ones(world, tmp_path):
    params = override(world, "train", pack_dir=str(tmp_path / "pack"))
    first = pack_mode(params, "predcls")
    assert first["train"]["videos"] == 7 and first["val"]["videos"] == 3
    assert pack_mode(params, "predcls") == {"train": {"reused": 1}, "val": {"reused": 1}}
    path = pack_path(params.train.pack_dir, "predcls", "train")
    with h5py.File(path, "r+") as handle:
        handle["union"][0, 0] += 1  # a flipped value
        inputs = json.loads(handle.attrs["inputs"])
    assert verify(path) == ["union"] and not reusable(path, inputs)
    assert pack_mode(params, "predcls")["train"]["videos"] == 7
    assert verify(path) == [] and reusable(path, inputs)


def test_prefetched_keeps_order_and_raises_where_the_producer_failed():
    assert list(prefetched(iter(range(20)), 3)) == list(range(20))

    def failing():
        yield 1
        raise ValueError("bad video")

    seen = []
    with pytest.raises(ValueError, match="bad video"):
        for item in prefetched(failing(), 2):
            seen.append(item)
    assert seen == [1]
    stopped = prefetched(iter(range(100)), 2)
    assert next(stopped) == 0
    stopped.close()  # the consumer leaves early: the thread ends


def test_threads_default_to_all_cores():
    previous = torch.get_num_threads()
    try:
        assert set_threads(3) == 3 == torch.get_num_threads()
        assert set_threads(0) == torch.get_num_threads() >= 1
        assert set_threads(None) == torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def test_detection_table_equals_the_rows_of_whole_groups(world):
    table = load_detection_table(world.extract.out_dir)
    with RoiCache(world.extract.out_dir) as roi:
        for video in roi.videos():
            arrays = roi.read_video(video)
            rows = table.filter(pl.col("video") == video)
            offsets = arrays["det_offsets"]
            frame_of_row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
            assert rows["frame"].to_list() == arrays["frame"][frame_of_row].tolist()
            assert (
                rows["det_index"].to_list()
                == (np.arange(len(frame_of_row)) - offsets[frame_of_row]).tolist()
            )
            np.testing.assert_array_equal(
                rows.select("x1", "y1", "x2", "y2").to_numpy(), arrays["det_boxes"]
            )
            np.testing.assert_array_equal(rows["score"].to_numpy(), arrays["det_scores"])
            assert rows["label"].to_list() == arrays["det_labels"].tolist()

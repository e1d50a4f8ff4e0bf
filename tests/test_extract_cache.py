"""The ROI cache: schema, agreement with direct mmdet calls, resume, identity, errors."""

from __future__ import annotations

import h5py
import numpy as np
import polars as pl
import pytest
import torch
from support.tiny_detector import write_random_checkpoint, write_tiny_config, write_tiny_dataset

from pipeline.detector.model import load_detector
from pipeline.extraction import cache
from pipeline.extraction.cache import RoiCache, load_detection_table, require_same_extractor
from pipeline.extraction.driver import extract_cache
from pipeline.extraction.frame_records import load_frame_records
from pipeline.io import DataError
from pipeline.params import DetectionPostprocessParams, ExtractParams

# Random weights score every class near 1/37, so a low threshold yields detections.
POSTPROCESS = DetectionPostprocessParams(score_threshold=0.026, nms_iou=0.5, max_objects=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    write_tiny_dataset(root / "ag", root / "index", videos=4, frames_per_video=3)
    config = write_tiny_config(root / "tiny.py")
    checkpoint = write_random_checkpoint(config, root / "tiny.pth")
    detector = load_detector(config, checkpoint)
    records = load_frame_records(root / "index", root / "ag")
    return root, detector, records


def run_extract(detector, records, out_dir, **overrides):
    params = ExtractParams(
        out_dir=str(out_dir), videos_per_shard=1, batch_frames=2, decode_workers=0, **overrides
    )
    return extract_cache(detector, records, params, POSTPROCESS)


@pytest.fixture(scope="module")
def extracted(setup):
    root, detector, records = setup
    report = run_extract(detector, records, root / "roi")
    return root / "roi", report


def read_all(path) -> dict[str, dict[str, np.ndarray]]:
    with RoiCache(path) as roi:
        return {video: roi.read_video(video) for video in roi.videos()}


def assert_same_cache(first, second) -> None:
    a, b = read_all(first), read_all(second)
    assert a.keys() == b.keys()
    for video in a:
        for name in cache.SCHEMA:
            np.testing.assert_array_equal(a[video][name], b[video][name], err_msg=f"{video}/{name}")
    with h5py.File(first / cache.CACHE_FILE) as fa, h5py.File(second / cache.CACHE_FILE) as fb:
        assert dict(fa.attrs) == dict(fb.attrs)


def test_schema_and_attributes(setup, extracted):
    _, detector, records = setup
    roi_dir, report = extracted
    assert report.frames == 12 and report.videos == 4 and report.extracted_frames == 12
    with RoiCache(roi_dir) as roi:
        assert roi.videos() == sorted(records)
        assert roi.identity == {"format_version": 1, **detector.identity()}
        assert roi.attrs["feature_layer"].startswith("roi_head.bbox_head shared FC")
        assert roi.attrs["postprocess"] == POSTPROCESS.model_dump()
        assert roi.attrs["skipped_frames"] == []
        with h5py.File(roi.path) as handle:
            features = handle[roi.videos()[0]]["gt_features"]
            assert features.compression == "gzip" and features.chunks is not None
        for video, frames in records.items():
            arrays = roi.read_video(video)
            for name, column in cache.SCHEMA.items():
                assert arrays[name].dtype == (
                    object if name == "frame" else np.dtype(column.dtype)
                ), name
            assert arrays["frame"].tolist() == [r.frame for r in frames]
            assert np.diff(arrays["gt_offsets"]).tolist() == [len(r.gt_labels) for r in frames]
            np.testing.assert_array_equal(
                arrays["gt_boxes"], np.concatenate([r.gt_boxes for r in frames])
            )
            # One pair per ground-truth object, subject = the frame's person row.
            gt_pairs, offsets = arrays["gt_pairs"], arrays["gt_offsets"]
            assert len(gt_pairs) == len(arrays["gt_labels"]) - len(frames)
            assert (arrays["gt_labels"][gt_pairs[:, 0]] == 1).all() and (
                arrays["gt_labels"][gt_pairs[:, 1]] != 1
            ).all()
            assert set(gt_pairs[:, 0].tolist()) == set(offsets[:-1].tolist())
            # Detections: exactly one person (fallback on), then at most max_objects objects.
            det_offsets = arrays["det_offsets"]
            for f in range(len(frames)):
                labels = arrays["det_labels"][det_offsets[f] : det_offsets[f + 1]]
                assert (
                    labels[0] == 1
                    and (labels[1:] != 1).all()
                    and len(labels) <= 1 + POSTPROCESS.max_objects
                )
            np.testing.assert_allclose(arrays["det_class_scores"].sum(axis=1), 1.0, rtol=1e-5)
            assert (
                len(arrays["det_union_features"])
                == len(arrays["det_pairs"])
                == len(arrays["det_labels"]) - len(frames)
            )
            assert arrays["gt_features"].shape[1] == detector.feature_dim


def mmdet_box_features(detector, record, boxes: np.ndarray) -> np.ndarray:
    """Reference: mmdet's own pipeline scales the boxes (as gt annotations) and its
    ``_bbox_forward`` pools them; the shared-FC output is captured with a hook."""
    from mmengine.dataset import Compose

    cfg = detector.cfg
    pipeline = Compose(
        [cfg.test_pipeline[0], dict(type="LoadAnnotations", with_bbox=True), *cfg.test_pipeline[1:]]
    )
    instances = [dict(bbox=box.tolist(), bbox_label=0, ignore_flag=0) for box in boxes]
    packed = pipeline(dict(img_path=str(record.path), img_id=0, instances=instances))
    model = detector.model
    data = model.data_preprocessor(
        {"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, False
    )
    captured = []
    hook = model.roi_head.bbox_head.shared_fcs[-1].register_forward_hook(
        lambda m, i, o: captured.append(o)
    )
    with torch.no_grad():
        feats = model.extract_feat(data["inputs"])
        scaled = data["data_samples"][0].gt_instances.bboxes
        rois = torch.cat([torch.zeros(len(scaled), 1), scaled], dim=1)
        model.roi_head._bbox_forward(feats, rois)
    hook.remove()
    return torch.relu(captured[0]).numpy()


def test_cached_features_equal_direct_mmdet_call(setup, extracted):
    _, detector, records = setup
    roi_dir, _ = extracted
    video = sorted(records)[1]
    record = records[video][2]
    with RoiCache(roi_dir) as roi:
        arrays = roi.read_video(video)
    gt = slice(*arrays["gt_offsets"][2:4])
    pairs = slice(*arrays["gt_pair_offsets"][2:4])
    det = slice(*arrays["det_offsets"][2:4])
    for boxes, features in (
        (arrays["gt_boxes"][gt], arrays["gt_features"][gt]),
        (arrays["gt_union_boxes"][pairs], arrays["gt_union_features"][pairs]),
        (arrays["det_boxes"][det], arrays["det_features"][det]),
    ):
        reference = mmdet_box_features(detector, record, boxes)
        assert np.abs(reference).max() > 0
        np.testing.assert_allclose(features.astype(np.float32), reference, rtol=2e-3, atol=2e-3)


def test_union_boxes_cover_both_members(extracted):
    roi_dir, _ = extracted
    for arrays in read_all(roi_dir).values():
        for prefix in ("gt", "det"):
            boxes, pairs, union = (
                arrays[f"{prefix}_boxes"],
                arrays[f"{prefix}_pairs"],
                arrays[f"{prefix}_union_boxes"],
            )
            for member in (0, 1):
                inner = boxes[pairs[:, member]]
                assert (union[:, :2] <= inner[:, :2] + 1e-4).all() and (
                    union[:, 2:] >= inner[:, 2:] - 1e-4
                ).all()


def test_detection_table_matches_cache(extracted):
    roi_dir, _ = extracted
    table = load_detection_table(roi_dir)
    assert dict(table.schema) == cache.DETECTION_SCHEMA
    arrays = read_all(roi_dir)
    assert table.height == sum(len(a["det_labels"]) for a in arrays.values())
    first = arrays[sorted(arrays)[0]]
    rows = table.filter(pl.col("frame") == first["frame"][1])
    start, stop = first["det_offsets"][1:3]
    assert rows["det_index"].to_list() == list(range(stop - start))
    np.testing.assert_array_equal(
        rows.select("x1", "y1", "x2", "y2").to_numpy(), first["det_boxes"][start:stop]
    )
    assert rows["label"].to_list() == first["det_labels"][start:stop].tolist()
    assert (rows["width"] == 64).all() and (rows["height"] == 48).all()


def test_failed_run_resumes_from_finished_shards_and_redoes_corrupt_ones(
    setup, extracted, tmp_path
):
    _, detector, records = setup
    reference, _ = extracted
    videos = sorted(records)
    missing = records[videos[2]][0].path
    saved = missing.read_bytes()
    missing.unlink()
    try:
        with pytest.raises(
            DataError, match=rf"{missing}: frame .* is missing .*skip_missing_frames"
        ):
            run_extract(detector, records, tmp_path / "roi")
    finally:
        missing.write_bytes(saved)
    parts = tmp_path / "roi.parts"
    assert sorted(p.name for p in parts.glob("*.json")) == ["shard-00000.json", "shard-00001.json"]
    # A truncated shard must be detected and redone, not read.
    shard = parts / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    report = run_extract(detector, records, tmp_path / "roi")
    assert report.extracted_frames == 9  # shard 0 (3 frames) was reused
    assert_same_cache(reference, tmp_path / "roi")
    assert not parts.exists()


def test_missing_frame_can_be_skipped_and_listed(setup, tmp_path):
    _, detector, records = setup
    target = records[sorted(records)[0]][1]
    records = {video: list(frames) for video, frames in records.items()}
    records[target.video][1] = type(target)(**{**target.__dict__, "path": tmp_path / "nowhere.png"})
    report = run_extract(detector, records, tmp_path / "roi", skip_missing_frames=True)
    assert report.skipped_frames == [target.frame] and report.frames == 11
    with RoiCache(tmp_path / "roi") as roi:
        assert roi.attrs["skipped_frames"] == [target.frame]
        assert target.frame not in roi.read_video(target.video)["frame"].tolist()


def test_caches_of_different_detectors_are_not_mixed(setup, extracted, tmp_path):
    root, detector, records = setup
    other = load_detector(
        root / "tiny.py", write_random_checkpoint(root / "tiny.py", tmp_path / "other.pth", seed=1)
    )
    with RoiCache(extracted[0]) as roi:
        with pytest.raises(DataError, match="checkpoint_sha256 differs"):
            require_same_extractor(
                roi.identity, {"format_version": 1, **other.identity()}, "other cache"
            )


def test_unreadable_cache_is_a_one_line_error(tmp_path):
    (tmp_path / "roi.h5").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        RoiCache(tmp_path)
    with pytest.raises(DataError, match="ROI cache not found"):
        RoiCache(tmp_path / "absent")


def test_undecodable_frame_names_the_file(setup, tmp_path):
    _, detector, records = setup
    target = records[sorted(records)[0]][0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    records = {target.video: [type(target)(**{**target.__dict__, "path": broken})]}
    with pytest.raises(DataError, match=rf"{broken}: frame {target.frame} cannot be decoded"):
        run_extract(detector, records, tmp_path / "roi")

"""STTran's detector in mmdet equals a plain-PyTorch transcription of jwyang's code.

Seeded random weights in jwyang's key layout (``{'model': ..., 'pooling_mode':
'align'}``) go through ``mosa import-detector sttran``'s conversion and are
loaded strictly into ``configs/detector/faster_rcnn_r101_c4_sttran_ag.py``.
The mmdet model and the oracle in ``support/sttran_oracle.py`` then see the
same frames. To keep CI fast the ResNet has one block per stage instead of
(3, 4, 23, 3); keys, shapes per block and every code path are those of
ResNet-101. Frames are tiny (40x30 and 36x60 pixels) but are resized to a
600 px short side, so the resize, the anchor grid (1900 and 2346 locations)
and the 6000/100 proposal limits all act at full scale.

Each negative control changes one convention back to mmdet's and must
break the comparison.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from support import sttran_oracle as oracle

from pipeline.io import DataError

SHIPPED = Path(__file__).resolve().parents[1] / "configs/detector/faster_rcnn_r101_c4_sttran_ag.py"
STAGE_BLOCKS = (1, 1, 1, 1)
# Tolerances: float32 through a different summation order (conv, RoIAlign, mean).
FEATURE_ATOL, PROB_ATOL, BOX_ATOL = 1e-4, 1e-5, 1e-4

STTRAN_POST = dict(
    score_threshold=0.1,
    nms_iou=0.4,
    nms_offset=1,
    max_objects=None,
    person_top1=True,
    person_fallback=False,
    det_features="proposal",
    det_labels="renormalised",
)

REDUCED = f"""
_base_ = [{str(SHIPPED)!r}]
model = dict(
    backbone=dict(stage_blocks={STAGE_BLOCKS[:3]!r}),
    roi_head=dict(shared_head=dict(num_blocks={STAGE_BLOCKS[3]})))
"""

CONTROLS = {
    "pool_padding_1": "model = dict(backbone=dict(stem_pool=dict(padding=1, ceil_mode=False)))",
    "roi_align_aligned": "model = dict(roi_head=dict(bbox_roi_extractor=dict(roi_layer=dict(aligned=True))))",
    "mmdet_anchors": "model = dict(rpn_head=dict(anchor_generator=dict(type='AnchorGenerator')))",
    "legacy_coder": (
        "model = dict(rpn_head=dict(bbox_coder=dict(_delete_=True, type='LegacyDeltaXYWHBBoxCoder')),"
        " roi_head=dict(bbox_head=dict(bbox_coder=dict(_delete_=True, type='LegacyDeltaXYWHBBoxCoder',"
        " target_means=[0.0, 0.0, 0.0, 0.0], target_stds=[0.1, 0.1, 0.2, 0.2]))))"
    ),
    "nms_offset_0": "model = dict(test_cfg=dict(rpn=dict(nms=dict(offset=0))))",
    "pad_to_32": "model = dict(data_preprocessor=dict(pad_size_divisor=32))",
}


def write_config(folder: Path, name: str, control: str = "") -> Path:
    """The reduced-depth config, or a child of it that changes one thing (dicts merge)."""
    path = folder / f"{name}.py"
    reduced = folder / "reduced.py"
    if not reduced.exists():
        reduced.write_text(REDUCED)
    path.write_text(f"_base_ = [{str(reduced)!r}]\n{control}\n" if control else REDUCED)
    return path


def random_frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth random BGR frame (so that the resize interpolates something)."""
    small = rng.integers(0, 256, size=(max(height // 4, 2), max(width // 4, 2), 3)).astype(np.uint8)
    frame = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(frame.astype(np.int16) + rng.integers(-20, 21, frame.shape), 0, 255).astype(
        np.uint8
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Frames on disk, the jwyang checkpoint, the oracle's outputs and the imported mmdet weights."""
    from pipeline.detector.import_sttran import import_sttran

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sttran")
    rng = np.random.default_rng(13)
    # Two frames of one size (a batch, as STTran batches a video) and one of another.
    groups = [[random_frame(rng, 30, 40), random_frame(rng, 30, 40)], [random_frame(rng, 60, 36)]]
    paths = []
    for g, frames in enumerate(groups):
        paths.append([])
        for f, frame in enumerate(frames):
            path = folder / f"frame_{g}_{f}.png"
            cv2.imwrite(str(path), frame)
            paths[-1].append(path)
    jw_model = oracle.JwyangFasterRCNN(stage_blocks=STAGE_BLOCKS).eval()
    state = oracle.random_jwyang_state(seed=13, stage_blocks=STAGE_BLOCKS)
    jw_model.load_state_dict(state, strict=True)
    blob, im_info = oracle.image_batch([cv2.imread(str(paths[0][0]))])
    state = oracle.calibrate_classifier(state, jw_model(blob, im_info)[4][0])
    jw_model.load_state_dict(state, strict=True)
    jw_path = folder / "faster_rcnn_ag.pth"
    torch.save({"model": state, "pooling_mode": "align", "session": 1, "epoch": 7}, jw_path)
    config = write_config(folder, "reduced")
    converted = import_sttran(jw_path, folder / "imported", config_path=config)

    # Ground-truth boxes (original pixels) per frame: person first, then two objects.
    gt = {}
    for frames_paths in paths:
        for path in frames_paths:
            height, width = cv2.imread(str(path)).shape[:2]
            corners = rng.uniform(0, 1, size=(3, 4)) * [width, height, width, height]
            boxes = np.concatenate(
                [
                    np.minimum(corners[:, :2], corners[:, 2:]),
                    np.maximum(corners[:, :2], corners[:, 2:]) + 2,
                ],
                axis=1,
            )
            gt[path] = torch.tensor(boxes, dtype=torch.float32)

    expected = {}
    for frames_paths in paths:
        images = [cv2.imread(str(p)) for p in frames_paths]
        blob, im_info = oracle.image_batch(images)
        outputs = jw_model(blob, im_info)
        detections = oracle.sgdet_postprocess(jw_model, outputs, im_info)
        for i, path in enumerate(frames_paths):
            gt_boxes = gt[path]
            unions = torch.cat(
                [
                    torch.minimum(gt_boxes[:1, :2], gt_boxes[1:, :2]),
                    torch.maximum(gt_boxes[:1, 2:], gt_boxes[1:, 2:]),
                ],
                1,
            )
            gt_features, gt_distribution = oracle.box_features(
                jw_model, outputs[3], gt_boxes, i, im_info[0, 2]
            )
            union_features, _ = oracle.box_features(jw_model, outputs[3], unions, i, im_info[0, 2])
            pred_boxes = oracle.decode(
                outputs[0][i, :, 1:5], outputs[2][i] * torch.tensor(oracle.BBOX_STDS).repeat(37)
            )
            pred_boxes = (
                oracle.clip(pred_boxes, float(im_info[i, 0]), float(im_info[i, 1])) / im_info[0, 2]
            )
            expected[path] = {
                "conv4": outputs[3][i],
                "proposals": outputs[0][i, :, 1:5],
                "probs": outputs[1][i],
                "boxes": pred_boxes,
                "features": outputs[4][i],
                "gt_features": gt_features,
                "gt_distribution": gt_distribution,
                "union_features": union_features,
                "unions": unions,
                "detections": detections[i],
            }
    return {
        "folder": folder,
        "paths": paths,
        "gt": gt,
        "expected": expected,
        "jw_path": jw_path,
        "checkpoint": converted,
        "config": config,
    }


@torch.no_grad()
def run_mmdet(config: Path, checkpoint: Path, paths: list[Path], gt: dict):
    """Our production path: load_detector, decode_and_detect (test_pipeline + detect_proposals), box_features, postprocess."""
    from pipeline.detector.model import box_features, decode_and_detect, load_detector
    from pipeline.detector.postprocess import postprocess_detections
    from pipeline.params import DetectionPostprocessParams

    detector = load_detector(config, checkpoint)
    model = detector.model
    feats, raw, samples = decode_and_detect(detector, paths)
    post = DetectionPostprocessParams(**STTRAN_POST)
    if "nms_offset_0" in config.name:
        post = post.model_copy(update={"nms_offset": 0})
    out = {}
    for i, (path, result, sample) in enumerate(zip(paths, raw, samples, strict=True)):
        scale = float(sample.metainfo["scale_factor"][0])
        gt_boxes = gt[path]
        unions = torch.cat(
            [
                torch.minimum(gt_boxes[:1, :2], gt_boxes[1:, :2]),
                torch.maximum(gt_boxes[:1, 2:], gt_boxes[1:, 2:]),
            ],
            1,
        )
        boxes = torch.cat([gt_boxes, unions]) * gt_boxes.new_tensor(scale)
        features = box_features(
            model, feats, torch.cat([torch.full((len(boxes), 1), float(i)), boxes], 1)
        )
        logits = model.roi_head.bbox_head.fc_cls(features[: len(gt_boxes)])
        out[path] = {
            "conv4": feats[0][i],
            "proposals": result.proposals,
            # mmdet: background last; jwyang: first.
            "probs": torch.cat([result.scores[:, -1:], result.scores[:, :-1]], 1),
            "boxes": result.bboxes,
            "features": result.features,
            "gt_features": features[: len(gt_boxes)],
            "gt_distribution": torch.softmax(logits[:, :-1], dim=1),
            "union_features": features[len(gt_boxes) :],
            "detections": postprocess_detections(
                result.bboxes, result.scores, detector.ag_labels, post
            ),
        }
    return out


def canonical_order(rows: torch.Tensor, boxes: torch.Tensor) -> list[int]:
    keys = [(int(r), *(round(float(v), 2) for v in b)) for r, b in zip(rows, boxes, strict=True)]
    return sorted(range(len(keys)), key=keys.__getitem__)


TOLERANCES = {
    "conv4": FEATURE_ATOL,
    "proposals": BOX_ATOL,
    "probs": PROB_ATOL,
    "boxes": BOX_ATOL,
    "features": FEATURE_ATOL,
    "gt_features": FEATURE_ATOL,
    "gt_distribution": PROB_ATOL,
    "union_features": FEATURE_ATOL,
    "detection_boxes": BOX_ATOL,
    "detection_scores": PROB_ATOL,
    "detection_features": FEATURE_ATOL,
}


def differences(ours: dict, expected: dict) -> dict[str, float]:
    """Max abs difference of every compared quantity (inf: shapes, kept proposals or labels differ)."""
    diffs = {}
    for key in list(TOLERANCES)[:8]:
        a, b = ours[key], expected[key]
        if key == "boxes":
            b = b[:, 4:]  # jwyang also regresses a background box
        same_shape = a.shape == b.shape
        diffs[key] = (
            float((a.float() - b.float()).abs().max())
            if same_shape and a.numel()
            else (0.0 if same_shape else float("inf"))
        )
    dets, ref = ours["detections"], expected["detections"]
    # STTran lists objects class by class, we by score: compare in (proposal, box) order.
    ours_order = canonical_order(dets.proposals, dets.boxes)
    ref_order = canonical_order(ref["rows"], ref["boxes"])
    same = dets.proposals[ours_order].tolist() == ref["rows"][ref_order].tolist()
    diffs["detections"] = 0.0 if same else float("inf")
    if not same:
        return diffs
    same_labels = dets.labels[ours_order].tolist() == ref["pred_labels"][ref_order].tolist()
    diffs["detection_labels"] = 0.0 if same_labels else float("inf")
    if len(ref_order):
        diffs["detection_boxes"] = float(
            (dets.boxes[ours_order] - ref["boxes"][ref_order]).abs().max()
        )
        diffs["detection_scores"] = float(
            (dets.scores[ours_order] - ref["scores"][ref_order]).abs().max()
        )
        diffs["detection_features"] = float(
            (ours["features"][dets.proposals[ours_order]] - ref["features"][ref_order]).abs().max()
        )
    return diffs


def mismatches(ours: dict, expected: dict) -> dict[str, float]:
    """The differences outside their tolerance."""
    return {
        key: diff
        for key, diff in differences(ours, expected).items()
        if diff > TOLERANCES.get(key, 0.0)
    }


def test_sttran_anchors_match_py_faster_rcnn():
    from pipeline.detector.sttran import py_faster_rcnn_anchors

    np.testing.assert_array_equal(py_faster_rcnn_anchors(), oracle.anchors())
    # The published py-faster-rcnn table for scales 8/16/32 (generate_anchors.py's docstring).
    assert py_faster_rcnn_anchors(scales=(8, 16, 32))[0].tolist() == [-84.0, -40.0, 99.0, 55.0]


def test_sttran_mmdet_port_equals_jwyang_oracle(world):
    for group in world["paths"]:
        ours = run_mmdet(world["config"], world["checkpoint"], group, world["gt"])
        for path in group:
            expected = world["expected"][path]
            assert not mismatches(ours[path], expected), path
            # The comparison is not vacuous: there are detections, persons and NMS work.
            assert len(expected["detections"]["rows"]) >= 3
            assert (expected["proposals"].abs().sum(1) > 0).sum() >= 50


@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_sttran_negative_control_breaks_equivalence(world, control):
    config = write_config(world["folder"], f"control_{control}", CONTROLS[control])
    group = world["paths"][1]
    ours = run_mmdet(config, world["checkpoint"], group, world["gt"])
    assert mismatches(ours[group[0]], world["expected"][group[0]]), control


def test_sttran_import_maps_every_key(world):
    from pipeline.detector.import_sttran import rpn_cls_order
    from pipeline.detector.weights import extract_state_dict, read_checkpoint

    jw = torch.load(world["jw_path"], weights_only=True)["model"]
    ours = extract_state_dict(read_checkpoint(world["checkpoint"]), world["checkpoint"])
    assert torch.equal(ours["backbone.layer3.0.conv2.weight"], jw["RCNN_base.6.0.conv2.weight"])
    assert torch.equal(
        ours["roi_head.shared_head.layer4.0.downsample.1.running_var"],
        jw["RCNN_top.0.0.downsample.1.running_var"],
    )
    # background row 0 -> last; class rows shift up by one.
    assert torch.equal(ours["roi_head.bbox_head.fc_cls.weight"][-1], jw["RCNN_cls_score.weight"][0])
    assert torch.equal(ours["roi_head.bbox_head.fc_cls.bias"][0], jw["RCNN_cls_score.bias"][1])
    assert torch.equal(ours["roi_head.bbox_head.fc_reg.weight"], jw["RCNN_bbox_pred.weight"][4:])
    # RPN: anchor a's foreground (jwyang channel 12 + a) at 2a, background (a) at 2a + 1.
    assert rpn_cls_order(12)[:4].tolist() == [12, 0, 13, 1]
    assert torch.equal(
        ours["rpn_head.rpn_cls.weight"][2 * 5], jw["RCNN_rpn.RPN_cls_score.weight"][12 + 5]
    )
    assert torch.equal(
        ours["rpn_head.rpn_cls.bias"][2 * 5 + 1], jw["RCNN_rpn.RPN_cls_score.bias"][5]
    )


@pytest.mark.parametrize("change", ["leftover", "missing", "no_model"])
def test_sttran_import_rejects_foreign_keys_in_one_line(world, tmp_path, change):
    from pipeline.detector.import_sttran import import_sttran

    checkpoint = torch.load(world["jw_path"], weights_only=True)
    state = dict(checkpoint["model"])
    if change == "leftover":
        state["RCNN_extra.weight"] = torch.zeros(1)
    elif change == "missing":
        del state["RCNN_base.6.0.conv2.weight"]
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state} if change == "no_model" else {"model": state}, path)
    with pytest.raises(DataError) as err:
        import_sttran(path, tmp_path / "out", config_path=world["config"])
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert {"leftover": "RCNN_extra.weight", "missing": "missing keys", "no_model": "'model'"}[
        change
    ] in message


def test_sttran_extraction_batches_never_mix_frame_sizes():
    from pipeline.extraction.frame_loading import frame_batches

    assert frame_batches(range(7), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    sizes = [(480, 270)] * 2 + [(320, 240)] * 5
    assert frame_batches(range(7), 3, sizes) == [[0, 1], [2, 3, 4], [5, 6]]


def test_sttran_import_command_errors_and_params_lines(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.detector.import_sttran import params_lines
    from pipeline.params import DetectionPostprocessParams

    runner = CliRunner()
    unknown = runner.invoke(
        app, ["import-detector", "detectron2", str(tmp_path / "x.pth"), "--out", str(tmp_path)]
    )
    assert unknown.exit_code == 2 and "only one is 'sttran'" in unknown.output
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, bad)
    result = runner.invoke(
        app, ["import-detector", "sttran", str(bad), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "no 'model' entry" in result.output
    # The printed block is valid params.yaml for the detector section.
    block = yaml.safe_load(params_lines("models/sttran/faster_rcnn_ag_mmdet.pth"))["detector"]
    post = DetectionPostprocessParams(**block["postprocess"])
    assert post.nms_offset == 1 and post.max_objects is None and post.det_features == "proposal"
    assert block["config"] == "configs/detector/faster_rcnn_r101_c4_sttran_ag.py"


def test_sttran_extract_stage_writes_proposal_features_and_gt_class_scores(world, tmp_path):
    """The extract driver with the STTran config and post-processing, end to end on two videos."""
    from support.tiny_detector import write_tiny_dataset

    from pipeline.detector.model import load_detector
    from pipeline.extraction.cache import RoiCache
    from pipeline.extraction.driver import extract_cache
    from pipeline.extraction.frame_records import load_frame_records
    from pipeline.params import DetectionPostprocessParams, ExtractParams

    write_tiny_dataset(
        tmp_path / "ag", tmp_path / "index", videos=2, frames_per_video=2, size=(40, 30)
    )
    detector = load_detector(world["config"], world["checkpoint"])
    records = load_frame_records(tmp_path / "index", tmp_path / "ag")
    params = ExtractParams(out_dir=str(tmp_path / "roi"), batch_frames=2, decode_workers=0)
    report = extract_cache(detector, records, params, DetectionPostprocessParams(**STTRAN_POST))
    assert report.frames == 4
    with RoiCache(tmp_path / "roi") as roi:
        assert roi.attrs["feature_dim"] == 2048
        assert "layer4" in roi.attrs["feature_layer"]
        for video in roi.videos():
            arrays = roi.read_video(video)
            assert arrays["gt_class_scores"].shape == (len(arrays["gt_labels"]), 37)
            np.testing.assert_allclose(arrays["gt_class_scores"].sum(1), 1.0, rtol=1e-5)
            assert len(arrays["det_labels"]) > 0
            assert arrays["det_features"].shape == (len(arrays["det_labels"]), 2048)

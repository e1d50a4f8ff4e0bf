"""The detector forward pass on a batch of decoded frames, and the ROI features of its boxes.

For each frame: RPN proposals, the box head's per-class boxes and softmax,
AG post-processing (:mod:`pipeline.detector.postprocess`), then one RoI
pooling call for the ground-truth boxes, the detections and the union boxes
of their person-object pairs (:mod:`pipeline.extraction.roi_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.detector.model import Detector
from pipeline.detector.postprocess import postprocess_detections
from pipeline.extraction.frame_records import FrameRecord
from pipeline.extraction.roi_features import person_object_pairs, roi_embeddings, union_boxes
from pipeline.params import DetectionPostprocessParams

FEATURE_LAYER = (
    "roi_head.bbox_head shared FC output (after ReLU), pooled by roi_head.bbox_roi_extractor"
)


@dataclass
class FrameResult:
    gt_features: np.ndarray
    gt_pairs: np.ndarray
    gt_union_boxes: np.ndarray
    gt_union_features: np.ndarray
    det_boxes: np.ndarray
    det_labels: np.ndarray
    det_scores: np.ndarray
    det_class_scores: np.ndarray
    det_features: np.ndarray
    det_pairs: np.ndarray
    det_union_boxes: np.ndarray
    det_union_features: np.ndarray


class FrameExtractor:
    """Detector forward + AG post-processing + ROI pooling for a batch of decoded frames."""

    def __init__(
        self, detector: Detector, postprocess: DetectionPostprocessParams, device: torch.device
    ):
        self.detector = detector
        self.postprocess = postprocess
        self.device = device

    @torch.no_grad()
    def __call__(self, items: Sequence[dict], records: Sequence[FrameRecord]) -> list[FrameResult]:
        model = self.detector.model
        samples = [item["data_samples"] for item in items]
        for sample in samples:
            if "scale_factor" not in sample.metainfo:  # a test_pipeline without Resize
                sample.set_metainfo({"scale_factor": (1.0, 1.0)})
        data = model.data_preprocessor(
            {"inputs": [item["inputs"] for item in items], "data_samples": samples}, False
        )
        samples = data["data_samples"]
        feats = model.extract_feat(data["inputs"])
        proposals = model.rpn_head.predict(feats, samples, rescale=False)
        metas = [sample.metainfo for sample in samples]
        # rcnn_test_cfg=None: per-class boxes (in original pixels) and the full softmax.
        raw = model.roi_head.predict_bbox(feats, metas, proposals, rcnn_test_cfg=None, rescale=True)

        per_image_boxes, per_image_parts = [], []
        for image, (record, raw_image) in enumerate(zip(records, raw, strict=True)):
            dets = postprocess_detections(
                raw_image.bboxes, raw_image.scores, self.detector.ag_labels, self.postprocess
            )
            gt_boxes = torch.as_tensor(record.gt_boxes, dtype=torch.float32, device=self.device)
            gt_pairs = person_object_pairs(torch.as_tensor(record.gt_labels.astype(np.int64)))
            det_pairs = person_object_pairs(dets.labels.cpu())
            parts = {
                "gt": gt_boxes,
                "gt_union": union_boxes(gt_boxes, gt_pairs),
                "det": dets.boxes,
                "det_union": union_boxes(dets.boxes, det_pairs),
            }
            scale = dets.boxes.new_tensor(metas[image]["scale_factor"]).repeat(2)
            boxes = torch.cat(list(parts.values())) * scale
            per_image_boxes.append(
                torch.cat([boxes.new_full((len(boxes), 1), image), boxes], dim=1)
            )
            per_image_parts.append((parts, dets, gt_pairs, det_pairs))

        embeddings = roi_embeddings(model, feats, torch.cat(per_image_boxes)).float().cpu()
        results, start = [], 0
        for parts, dets, gt_pairs, det_pairs in per_image_parts:
            sizes = [len(boxes) for boxes in parts.values()]
            gt_f, gt_union_f, det_f, det_union_f = embeddings[start : start + sum(sizes)].split(
                sizes
            )
            start += sum(sizes)
            results.append(
                FrameResult(
                    gt_features=gt_f.numpy(),
                    gt_pairs=gt_pairs.numpy(),
                    gt_union_boxes=parts["gt_union"].cpu().numpy(),
                    gt_union_features=gt_union_f.numpy(),
                    det_boxes=dets.boxes.cpu().numpy(),
                    det_labels=dets.labels.cpu().numpy(),
                    det_scores=dets.scores.cpu().numpy(),
                    det_class_scores=dets.class_scores.cpu().numpy(),
                    det_features=det_f.numpy(),
                    det_pairs=det_pairs.numpy(),
                    det_union_boxes=parts["det_union"].cpu().numpy(),
                    det_union_features=det_union_f.numpy(),
                )
            )
        return results

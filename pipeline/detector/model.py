"""Build an mmdet detector from a config file and map its labels to AG classes.

The detector is whatever ``params.yaml: detector.config`` names: the
synthetic default in ``configs/detector/`` or a user's own mmdet config for a
real Action Genome detector. Its label order is read from the config's
``metainfo = dict(classes=...)`` and mapped to the 37-entry AG index by class
name, so a detector trained with another class order still lands on the
right AG classes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.constants import NUM_OBJECT_CLASSES, OBJECT_CLASSES, OBJECT_INDEX, RAW_OBJECT_FIXES
from pipeline.io import DataError, sha256_file


def register_mmdet() -> None:
    """Register mmdet's modules and make it the default registry scope (idempotent)."""
    from mmdet.utils import register_all_modules

    register_all_modules(init_default_scope=True)


def load_config(path: str | Path):
    """Read an mmdet/mmengine config file; raise :class:`DataError` naming it on failure."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: detector config not found (set detector.config in params.yaml)")
    try:
        cfg = Config.fromfile(str(path))
    except Exception as err:  # mmengine raises many types for a bad config
        raise DataError(
            f"{path}: cannot parse detector config ({type(err).__name__}: {err})"
        ) from None
    if "model" not in cfg:
        raise DataError(f"{path}: detector config has no `model` dict")
    return cfg


def config_sha256(cfg) -> str:
    """Hash of the fully resolved config (``_base_`` files included)."""
    return hashlib.sha256(cfg.pretty_text.encode()).hexdigest()


def _bbox_head_cfg(cfg):
    try:
        return cfg.model.roi_head.bbox_head
    except AttributeError:
        raise DataError(
            f"{cfg.filename}: model has no roi_head.bbox_head; feature extraction needs a "
            "two-stage detector such as Faster R-CNN"
        ) from None


def config_num_classes(cfg) -> int:
    return int(_bbox_head_cfg(cfg).num_classes)


def _canonical_class(name: str) -> str:
    return RAW_OBJECT_FIXES.get(name, name)


def config_class_names(cfg) -> tuple[str, ...]:
    """Class names in mmdet label order.

    Read from ``metainfo.classes`` (top level, else the train dataset's);
    a config without it must have exactly the 36 AG object classes, taken in
    AG order.
    """
    candidates = [cfg.get("metainfo")]
    train_loader = cfg.get("train_dataloader")
    if train_loader is not None:
        candidates.append(train_loader.get("dataset", {}).get("metainfo"))
    num_classes = config_num_classes(cfg)
    for metainfo in candidates:
        if metainfo is not None and metainfo.get("classes"):
            names = tuple(metainfo["classes"])
            break
    else:
        if num_classes != NUM_OBJECT_CLASSES - 1:
            raise DataError(
                f"{cfg.filename}: no `metainfo = dict(classes=...)` and num_classes={num_classes} "
                f"is not the {NUM_OBJECT_CLASSES - 1} AG classes; list the detector's class names "
                "in label order in the config"
            )
        names = OBJECT_CLASSES[1:]
    if len(names) != num_classes:
        raise DataError(
            f"{cfg.filename}: metainfo lists {len(names)} classes but "
            f"model.roi_head.bbox_head.num_classes is {num_classes}; make them agree"
        )
    return names


def ag_label_map(cfg) -> np.ndarray:
    """``ag_index[mmdet_label]``: the AG object index (person = 1) of every detector label."""
    names = config_class_names(cfg)
    mapping = np.empty(len(names), dtype=np.int16)
    for label, name in enumerate(names):
        canonical = _canonical_class(name)
        if canonical not in OBJECT_INDEX or canonical == OBJECT_CLASSES[0]:
            raise DataError(
                f"{cfg.filename}: class {name!r} (label {label}) is not an Action Genome object "
                "class; metainfo.classes must use the names in pipeline/constants.py"
            )
        mapping[label] = OBJECT_INDEX[canonical]
    if len(set(mapping.tolist())) != len(mapping):
        raise DataError(f"{cfg.filename}: metainfo.classes names an AG class twice")
    return mapping


@dataclass(frozen=True)
class Detector:
    """A ready-to-run detector and what identifies it in a feature cache."""

    model: torch.nn.Module
    cfg: object  # mmengine Config
    ag_labels: np.ndarray  # AG index of each mmdet label
    config_sha256: str
    checkpoint_sha256: str
    config_path: str
    checkpoint_path: str

    @property
    def feature_dim(self) -> int:
        return box_feature_dim(self.model.roi_head.bbox_head)

    def identity(self) -> dict[str, str | int]:
        """What must match for two feature caches to be mixed."""
        return {
            "config_sha256": self.config_sha256,
            "checkpoint_sha256": self.checkpoint_sha256,
            "feature_dim": self.feature_dim,
        }


def build_model(cfg, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Instantiate ``cfg.model`` with mmdet's registry, in eval mode, with random weights."""
    from mmdet.models.roi_heads.bbox_heads import BBoxHead, ConvFCBBoxHead
    from mmdet.registry import MODELS

    register_mmdet()
    model_cfg = cfg.model.copy()
    model_cfg["train_cfg"] = None  # inference only: no assigners/samplers
    try:
        model = MODELS.build(model_cfg)
    except Exception as err:
        raise DataError(
            f"{cfg.filename}: cannot build model ({type(err).__name__}: {err})"
        ) from None
    head = getattr(getattr(model, "roi_head", None), "bbox_head", None)
    shared_fc = (
        isinstance(head, ConvFCBBoxHead)
        and head.num_shared_fcs > 0
        and head.num_cls_convs + head.num_cls_fcs + head.num_reg_convs + head.num_reg_fcs == 0
    )
    c4_avg_pool = type(head) is BBoxHead and head.with_avg_pool
    if not (shared_fc or c4_avg_pool):
        raise DataError(
            f"{cfg.filename}: feature extraction pools the vector both box branches read, so the "
            f"box head must be a ConvFCBBoxHead with shared FCs (e.g. Shared2FCBBoxHead) or a "
            f"C4 BBoxHead with with_avg_pool=True, not {type(head).__name__}"
        )
    return model.to(device).eval()


def box_feature_dim(bbox_head: torch.nn.Module) -> int:
    """Length of the per-box feature: shared FC width, or the C4 head's pooled channels."""
    if hasattr(bbox_head, "shared_out_channels"):
        return int(bbox_head.shared_out_channels)
    return int(bbox_head.in_channels)


def box_head_features(bbox_head: torch.nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """The vector ``fc_cls`` and ``fc_reg`` both read, from RoI-pooled (and shared-head) maps.

    ``ConvFCBBoxHead``: its shared convs, optional average pool and FC+ReLU
    layers. C4 ``BBoxHead``: the spatial average (jwyang's ``_head_to_tail``,
    ``.mean(3).mean(2)`` of layer4's output).
    """
    if not hasattr(bbox_head, "shared_fcs"):
        return bbox_head.avg_pool(pooled).flatten(1)
    x = pooled
    for conv in bbox_head.shared_convs:
        x = conv(x)
    if bbox_head.with_avg_pool:
        x = bbox_head.avg_pool(x)
    x = x.flatten(1)
    for fc in bbox_head.shared_fcs:
        x = bbox_head.relu(fc(x))
    return x


def load_detector(
    config_path: str | Path, checkpoint_path: str | Path, device: str | torch.device = "cpu"
) -> Detector:
    """Build the detector of ``config_path`` and load ``checkpoint_path`` weights-only."""
    from pipeline.detector.weights import load_state_dict_into

    cfg = load_config(config_path)
    ag_labels = ag_label_map(cfg)
    if not Path(checkpoint_path).is_file():
        raise DataError(
            f"{checkpoint_path}: detector checkpoint not found (run the train_detector stage or "
            "set detector.checkpoint in params.yaml)"
        )
    model = build_model(cfg, device)
    load_state_dict_into(model, checkpoint_path, config_path)
    return Detector(
        model=model,
        cfg=cfg,
        ag_labels=ag_labels,
        config_sha256=config_sha256(cfg),
        checkpoint_sha256=sha256_file(checkpoint_path),
        config_path=str(config_path),
        checkpoint_path=str(checkpoint_path),
    )


def box_features(model: torch.nn.Module, feats, rois: torch.Tensor) -> torch.Tensor:
    """Feature vectors of ``rois`` (``(r, 5)``: batch index, x1, y1, x2, y2 in input pixels).

    mmdet's RoI extractor, the shared head if any (layer4 for C4), then
    :func:`box_head_features`, so a box gets the same feature whether it is a
    proposal, a ground-truth box, a detection or a union box.
    """
    roi_head = model.roi_head
    if rois.shape[0] == 0:
        return feats[0].new_zeros((0, box_feature_dim(roi_head.bbox_head)))
    extractor = roi_head.bbox_roi_extractor
    pooled = extractor(feats[: extractor.num_inputs], rois)
    if roi_head.with_shared_head:
        pooled = roi_head.shared_head(pooled)
    return box_head_features(roi_head.bbox_head, pooled)


@torch.no_grad()
def decode_and_detect(detector: Detector, paths, pipeline=None) -> tuple:
    """Frame files through the config's ``test_pipeline`` (or ``pipeline``), the data
    preprocessor, the backbone and :func:`detect_proposals`.

    Returns ``(feature maps, per-image detections, data samples)``.
    """
    if pipeline is None:
        from mmengine.dataset import Compose

        pipeline = Compose(detector.cfg.test_pipeline)
    model = detector.model
    packed = [pipeline({"img_path": str(path), "img_id": i}) for i, path in enumerate(paths)]
    data = model.data_preprocessor(
        {"inputs": [p["inputs"] for p in packed], "data_samples": [p["data_samples"] for p in packed]},
        False,
    )
    feats = model.extract_feat(data["inputs"])
    return feats, detect_proposals(model, feats, data["data_samples"]), data["data_samples"]


def detect_proposals(model: torch.nn.Module, feats, samples) -> list:
    """RPN proposals, then the box head on each: per image an ``InstanceData`` with
    ``proposals`` ``(n, 4)`` (input pixels), ``bboxes`` ``(n, C * 4)`` class-specific
    boxes in original pixels, ``scores`` ``(n, C + 1)`` softmax (background last) and
    ``features`` ``(n, d)``, the vector both box branches read.
    """
    from mmdet.structures.bbox import bbox2roi

    bbox_head = model.roi_head.bbox_head
    proposals = model.rpn_head.predict(feats, samples, rescale=False)
    rois = bbox2roi([result.bboxes for result in proposals])
    features = box_features(model, feats, rois)
    cls_score, bbox_pred = bbox_head.fc_cls(features), bbox_head.fc_reg(features)
    counts = [len(result.bboxes) for result in proposals]
    raw = bbox_head.predict_by_feat(
        rois=rois.split(counts),
        cls_scores=cls_score.split(counts),
        bbox_preds=bbox_pred.split(counts),
        batch_img_metas=[sample.metainfo for sample in samples],
        rcnn_test_cfg=None,
        rescale=True,
    )
    for result, proposal, feature in zip(raw, proposals, features.split(counts), strict=True):
        result.proposals = proposal.bboxes
        result.features = feature
    return raw

"""Convert STTran's ``faster_rcnn_ag.pth`` (jwyang faster-rcnn.pytorch) into an mmdet checkpoint.

The released file is ``{'model': state_dict, 'pooling_mode': 'align', ...}``
with jwyang's module names (``fasterRCNN/lib/model/faster_rcnn/resnet.py``,
``fasterRCNN/lib/model/rpn/rpn.py``). Every key is mapped onto the model of
``configs/detector/faster_rcnn_r101_c4_sttran_ag.py``:

=============================  =========================================
jwyang                         mmdet
=============================  =========================================
``RCNN_base.0`` / ``.1``       ``backbone.conv1`` / ``backbone.bn1``
``RCNN_base.4`` / ``5`` / ``6``  ``backbone.layer1`` / ``2`` / ``3``
``RCNN_top.0``                 ``roi_head.shared_head.layer4``
``RCNN_rpn.RPN_Conv``          ``rpn_head.rpn_conv``
``RCNN_rpn.RPN_cls_score``     ``rpn_head.rpn_cls`` (channels reordered)
``RCNN_rpn.RPN_bbox_pred``     ``rpn_head.rpn_reg``
``RCNN_cls_score``             ``roi_head.bbox_head.fc_cls`` (background last)
``RCNN_bbox_pred``             ``roi_head.bbox_head.fc_reg`` (background rows dropped)
=============================  =========================================

jwyang's RPN reshapes its ``2A`` score channels to ``(2, A)``: channel ``a``
is anchor ``a``'s background and ``A + a`` its foreground
(``_RPN.reshape`` in ``rpn.py``; ``proposal_layer.py`` reads ``[:, A:]``);
mmdet's softmax RPN wants foreground at ``2a`` and background at ``2a + 1``.
jwyang's classifier has background at row 0, mmdet's last. BatchNorm
``num_batches_tracked`` counters, which checkpoints of torch < 0.4.1 lack
and eval mode never reads, are filled with 0. Any other missing or leftover
key is an error.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.detector.weights import extract_state_dict, key_mismatch, read_checkpoint
from pipeline.io import DataError, atomic_path
from pipeline.outputs import IMPORTED_STTRAN_DETECTOR_NAME

STTRAN_CONFIG = "configs/detector/faster_rcnn_r101_c4_sttran_ag.py"

KEY_PREFIXES = (
    ("RCNN_base.0.", "backbone.conv1."),
    ("RCNN_base.1.", "backbone.bn1."),
    ("RCNN_base.4.", "backbone.layer1."),
    ("RCNN_base.5.", "backbone.layer2."),
    ("RCNN_base.6.", "backbone.layer3."),
    ("RCNN_top.0.", "roi_head.shared_head.layer4."),
    ("RCNN_rpn.RPN_Conv.", "rpn_head.rpn_conv."),
    ("RCNN_rpn.RPN_cls_score.", "rpn_head.rpn_cls."),
    ("RCNN_rpn.RPN_bbox_pred.", "rpn_head.rpn_reg."),
    ("RCNN_cls_score.", "roi_head.bbox_head.fc_cls."),
    ("RCNN_bbox_pred.", "roi_head.bbox_head.fc_reg."),
)

# What STTran's lib/object_detector.py does after the forward pass.
STTRAN_POSTPROCESS = {
    "score_threshold": 0.1,
    "nms_iou": 0.4,
    "nms_offset": 1,
    "max_objects": None,
    "person_top1": True,
    "person_fallback": False,
    "det_features": "proposal",
    "det_labels": "renormalised",
}


def rpn_cls_order(num_anchors: int) -> torch.Tensor:
    """Row ``2a`` <- jwyang row ``A + a`` (foreground), row ``2a + 1`` <- row ``a`` (background)."""
    anchors = torch.arange(num_anchors)
    return torch.stack([anchors + num_anchors, anchors], dim=1).flatten()


def map_key(key: str) -> str | None:
    for old, new in KEY_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def convert_state_dict(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """jwyang key layout -> mmdet key layout, with the RPN and classifier rows reordered."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new_key = map_key(key)
        if new_key is None:
            raise DataError(
                f"{source}: key {key!r} has no place in the STTran R101-C4 model; "
                "is this STTran's faster_rcnn_ag.pth?"
            )
        if new_key.startswith("rpn_head.rpn_cls."):
            value = value[rpn_cls_order(value.shape[0] // 2)]
        elif new_key.startswith("roi_head.bbox_head.fc_cls."):
            value = torch.cat([value[1:], value[:1]])
        elif new_key.startswith("roi_head.bbox_head.fc_reg."):
            if value.shape[0] == 4:
                raise DataError(
                    f"{source}: {key} is class-agnostic (4 rows); STTran's detector is class-specific"
                )
            value = value[4:]
        out[new_key] = value.detach().clone().contiguous()
    return out


def check_against_model(
    converted: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Fill absent BN counters; any other missing/leftover key or shape difference is a one-line error."""
    converted = dict(converted)
    for key, tensor in expected.items():
        if key not in converted and key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros_like(tensor)
    mismatch = key_mismatch(expected, converted)
    if mismatch:
        raise DataError(f"{source}: {mismatch} against {STTRAN_CONFIG}")
    for key, tensor in expected.items():
        if tuple(converted[key].shape) != tuple(tensor.shape):
            raise DataError(
                f"{source}: {key} has shape {tuple(converted[key].shape)} after mapping, "
                f"the config builds {tuple(tensor.shape)}"
            )
    return converted


def import_sttran(
    checkpoint_path: str | Path, out_dir: str | Path, config_path: str | Path = STTRAN_CONFIG
) -> Path:
    """Write ``out_dir/faster_rcnn_ag_mmdet.pth`` (weights only) and return its path.

    The result is loaded strictly into the model of ``config_path`` before it
    is written, so a file that converts also runs.
    """
    from pipeline.detector.model import build_model, load_config
    from pipeline.io import sha256_file

    source = str(checkpoint_path)
    checkpoint = read_checkpoint(checkpoint_path)
    if "model" not in checkpoint:
        raise DataError(
            f"{source}: no 'model' entry; expected jwyang faster-rcnn.pytorch's layout "
            "{'model': state_dict, 'pooling_mode': ...}"
        )
    pooling = checkpoint.get("pooling_mode", "align")
    if pooling != "align":
        raise DataError(f"{source}: pooling_mode is {pooling!r}; STTran's detector uses 'align'")
    state = extract_state_dict(checkpoint, source, key="model")
    model = build_model(load_config(config_path))
    converted = check_against_model(convert_state_dict(state, source), model.state_dict(), source)
    model.load_state_dict(converted, strict=True)
    out_path = Path(out_dir) / IMPORTED_STTRAN_DETECTOR_NAME
    out_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "converted_from": "jwyang faster-rcnn.pytorch (STTran faster_rcnn_ag.pth)",
        "source_sha256": sha256_file(checkpoint_path),
        "config": str(config_path),
    }
    with atomic_path(out_path, suffix=".pth") as tmp:
        torch.save({"state_dict": converted, "meta": meta}, tmp)
    return out_path


def params_lines(checkpoint_path: str | Path, config_path: str | Path = STTRAN_CONFIG) -> str:
    """The ``params.yaml`` block that runs the imported detector with STTran's post-processing."""
    post = "\n".join(
        f"    {key}: {'null' if value is None else str(value).lower() if isinstance(value, bool) else value}"
        for key, value in STTRAN_POSTPROCESS.items()
    )
    return (
        "detector:\n"
        f"  config: {config_path}\n"
        f"  checkpoint: {checkpoint_path}\n"
        "  postprocess:\n"
        f"{post}\n"
    )

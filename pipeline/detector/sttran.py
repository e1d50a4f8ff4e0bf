"""mmdet components that run STTran's Action Genome Faster R-CNN exactly.

STTran (``yrcong/STTran``) detects objects with a ResNet-101 C4 Faster
R-CNN trained with jwyang's ``faster-rcnn.pytorch`` (vendored as
``fasterRCNN/``). Its conventions differ from mmdet's in small ways that
each move every box and feature; a checkpoint ported without them scores
AP ~ 0. This module registers one mmdet component per convention, loaded by
``custom_imports`` in ``configs/detector/faster_rcnn_r101_c4_sttran_ag.py``:

========================  ===================================================
``STTranResize``          short side to 600 px, no long-side cap, BGR
                          caffe means subtracted *before* the resize
``STTranResNet``          caffe-style ResNet conv1..layer3 (conv4, stride 16)
                          with the max-pool at padding 0, ``ceil_mode``
``STTranAnchorGenerator`` py-faster-rcnn base anchors (base 16, centred at
                          7.5, rounded sizes), scales 4/8/16/32, ratios .5/1/2
``STTranBoxCoder``        ``bbox_transform_inv``: widths with +1, no delta
                          clamp, boxes clipped to W-1 / H-1
``STTranRPNHead``         jwyang's proposal layer: softmax bg/fg, top 6000,
                          NMS 0.7 with +1 areas, top 100, zero-padded to 100
``STTranResLayer``        layer4 as the RoI head (on 7x7 RoIAlign, stride 2
                          -> 4x4), averaged into 2048-d by ``BBoxHead``
========================  ===================================================

RoIAlign needs no new code: mmcv's ``RoIAlign(output_size=7,
sampling_ratio=0, aligned=False)`` is the maskrcnn-benchmark kernel that
``fasterRCNN/lib/model/csrc/cpu/ROIAlign_cpu.cpp`` compiles (no half-pixel
offset, RoI size at least 1, adaptive ``ceil(size / 7)`` samples per bin).

The values are those STTran really runs with: ``lib/object_detector.py``
never loads ``fasterRCNN/cfgs/res101.yml``, so the defaults of
``fasterRCNN/lib/model/utils/config.py`` apply.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from mmcv.ops import nms
from mmcv.transforms import BaseTransform
from mmdet.models.backbones import ResNet
from mmdet.models.backbones.resnet import Bottleneck
from mmdet.models.dense_heads import RPNHead
from mmdet.models.layers import ResLayer
from mmdet.models.task_modules.coders.base_bbox_coder import BaseBBoxCoder
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import MODELS, TASK_UTILS, TRANSFORMS
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import nn

# fasterRCNN/lib/model/utils/config.py: __C.PIXEL_MEANS, in BGR order.
CAFFE_PIXEL_MEANS_BGR = (102.9801, 115.9465, 122.7717)


@TRANSFORMS.register_module()
class STTranResize(BaseTransform):
    """Mean subtraction then an isotropic resize of the short side to ``short_side``.

    ``fasterRCNN/lib/model/utils/blob.py: prep_im_for_blob`` with STTran's
    call in ``dataloader/action_genome.py`` (``prep_im_for_blob(im, means,
    600, 1000)``): the frame (BGR) becomes float32, the means are subtracted
    in place, and ``cv2.resize(im, None, None, fx=s, fy=s, INTER_LINEAR)``
    scales it by ``s = 600 / min(h, w)``. ``max_size`` (1000) is passed but
    never used, so there is no long-side cap. Passing ``fx``/``fy`` (not a
    target size) matters: OpenCV then samples at exactly ``1/s``.

    The data preprocessor must not normalise again (``mean=None``).
    """

    def __init__(self, short_side: int = 600, pixel_means=CAFFE_PIXEL_MEANS_BGR):
        self.short_side = short_side
        self.pixel_means = np.array([[list(pixel_means)]], dtype=np.float64)

    def transform(self, results: dict) -> dict:
        image = results["img"].astype(np.float32, copy=True)
        image -= self.pixel_means  # float64 operand, float32 result, as in blob.py
        scale = float(self.short_side) / float(min(image.shape[:2]))
        image = cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        results["img"] = image
        results["img_shape"] = image.shape[:2]
        # STTran keeps the scale in a float32 `im_info`; boxes are divided by that value.
        scale32 = float(np.float32(scale))
        results["scale_factor"] = (scale32, scale32)
        results["keep_ratio"] = True
        return results


@MODELS.register_module()
class STTranResNet(ResNet):
    """Caffe-style ResNet whose stem max-pool has padding 0 and ``ceil_mode``.

    ``fasterRCNN/lib/model/faster_rcnn/resnet.py``: ``nn.MaxPool2d(kernel_size=3,
    stride=2, padding=0, ceil_mode=True)`` (mmdet: padding 1, floor), the stride
    on the first 1x1 conv of a block (``style='caffe'``), and ``RCNN_base =
    conv1, bn1, relu, maxpool, layer1, layer2, layer3``. ``stage_blocks``
    overrides the blocks per stage of ``depth`` (tests use fewer blocks with the
    same key layout); ``stem_pool`` exists so that a test can put mmdet's pool back.
    """

    def __init__(self, *args, stage_blocks=None, stem_pool=None, **kwargs):
        if stage_blocks is not None:
            depth = kwargs.get("depth", args[0] if args else None)
            # ResNet.__init__ reads arch_settings[depth]; this instance gets its own.
            object.__setattr__(self, "arch_settings", {depth: (Bottleneck, tuple(stage_blocks))})
        super().__init__(*args, **kwargs)
        pool = dict(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.maxpool = nn.MaxPool2d(**{**pool, **(stem_pool or {})})


@MODELS.register_module()
class STTranResLayer(BaseModule):
    """ResNet layer4 as the RoI head: ``RCNN_top = Sequential(resnet.layer4)``.

    ``fasterRCNN/lib/model/faster_rcnn/resnet.py: _head_to_tail`` runs it on
    the 7x7 RoIAlign output; the caffe-style stride 2 makes it 4x4, which the
    config's ``BBoxHead(with_avg_pool=True, roi_feat_size=4)`` averages into
    the 2048-d feature (``.mean(3).mean(2)`` in jwyang's code). ``num_blocks``
    is 3 for ResNet-101.
    """

    def __init__(self, num_blocks: int = 3, norm_cfg: dict | None = None):
        super().__init__(init_cfg=None)
        norm_cfg = norm_cfg or dict(type="BN", requires_grad=False)
        self.layer4 = ResLayer(
            Bottleneck, 1024, 512, num_blocks, stride=2, style="caffe", norm_cfg=norm_cfg
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(x)


def py_faster_rcnn_anchors(base_size=16, ratios=(0.5, 1, 2), scales=(4, 8, 16, 32)) -> np.ndarray:
    """The 12 reference anchors of ``fasterRCNN/lib/model/rpn/generate_anchors.py``.

    A ``(0, 0, base-1, base-1)`` window (centre 7.5) is re-shaped per ratio
    with rounded sides (``round(sqrt(area / r))``, ``round(w * r)``), then each
    is scaled; sides follow the ``x2 - x1 + 1`` convention. Order: ratio-major.
    """
    ratios, scales = np.asarray(ratios, dtype=np.float64), np.asarray(scales, dtype=np.float64)

    def whctrs(anchor):
        w, h = anchor[2] - anchor[0] + 1, anchor[3] - anchor[1] + 1
        return w, h, anchor[0] + 0.5 * (w - 1), anchor[1] + 0.5 * (h - 1)

    def mkanchors(ws, hs, x_ctr, y_ctr):
        ws, hs = ws[:, None], hs[:, None]
        return np.hstack(
            [
                x_ctr - 0.5 * (ws - 1),
                y_ctr - 0.5 * (hs - 1),
                x_ctr + 0.5 * (ws - 1),
                y_ctr + 0.5 * (hs - 1),
            ]
        )

    w, h, x_ctr, y_ctr = whctrs(np.array([0, 0, base_size - 1, base_size - 1], dtype=np.float64))
    ws = np.round(np.sqrt(w * h / ratios))
    ratio_anchors = mkanchors(ws, np.round(ws * ratios), x_ctr, y_ctr)
    out = []
    for anchor in ratio_anchors:
        w, h, x_ctr, y_ctr = whctrs(anchor)
        out.append(mkanchors(w * scales, h * scales, x_ctr, y_ctr))
    return np.vstack(out)


@TASK_UTILS.register_module()
class STTranAnchorGenerator(AnchorGenerator):
    """mmdet's anchor grid (shifts ``0, 16, 32, ...``, location-major) on py-faster-rcnn base anchors.

    ``fasterRCNN/lib/model/rpn/proposal_layer.py`` adds ``shift = (x, y) * 16``
    to :func:`py_faster_rcnn_anchors` for every conv4 location, rows first,
    anchors innermost: the order of mmdet's ``grid_priors``. mmdet's own base
    anchors differ (centred at 0, unrounded sides).
    """

    def gen_base_anchors(self) -> list[torch.Tensor]:
        return [
            torch.from_numpy(
                py_faster_rcnn_anchors(base_size, self.ratios.tolist(), self.scales.tolist())
            ).float()
            for base_size in self.base_sizes
        ]


@TASK_UTILS.register_module()
class STTranBoxCoder(BaseBBoxCoder):
    """jwyang's ``bbox_transform`` / ``bbox_transform_inv`` + ``clip_boxes``.

    ``fasterRCNN/lib/model/rpn/bbox_transform.py``: ``w = x2 - x1 + 1``,
    centre ``x1 + 0.5 w``; decoded ``x1 = cx' - 0.5 w'``, ``x2 = cx' + 0.5 w'``
    (no -1), ``w' = w exp(dw)`` without a clamp on ``dw``; then clipped to
    ``[0, W - 1] x [0, H - 1]`` of the resized image. Deltas are first
    de-normalised by ``target_stds`` / ``target_means`` (0.1, 0.1, 0.2, 0.2 and
    0 for the RCNN head, ``lib/object_detector.py``; 1 and 0 for the RPN).
    mmdet's ``LegacyDeltaXYWHBBoxCoder`` also uses +1 widths but shifts the
    decoded corners by 0.5 and clamps ``dw``.
    """

    def __init__(
        self, target_means=(0.0, 0.0, 0.0, 0.0), target_stds=(1.0, 1.0, 1.0, 1.0), **kwargs
    ):
        super().__init__(**kwargs)
        self.means = tuple(target_means)
        self.stds = tuple(target_stds)

    def encode(self, bboxes: torch.Tensor, gt_bboxes: torch.Tensor) -> torch.Tensor:
        ex_w = bboxes[:, 2] - bboxes[:, 0] + 1.0
        ex_h = bboxes[:, 3] - bboxes[:, 1] + 1.0
        gt_w = gt_bboxes[:, 2] - gt_bboxes[:, 0] + 1.0
        gt_h = gt_bboxes[:, 3] - gt_bboxes[:, 1] + 1.0
        deltas = torch.stack(
            [
                (gt_bboxes[:, 0] + 0.5 * gt_w - bboxes[:, 0] - 0.5 * ex_w) / ex_w,
                (gt_bboxes[:, 1] + 0.5 * gt_h - bboxes[:, 1] - 0.5 * ex_h) / ex_h,
                torch.log(gt_w / ex_w),
                torch.log(gt_h / ex_h),
            ],
            dim=1,
        )
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(self, bboxes, pred_bboxes, max_shape=None, wh_ratio_clip=None):
        bboxes = getattr(bboxes, "tensor", bboxes)
        deltas = pred_bboxes.reshape(-1, 4) * pred_bboxes.new_tensor(
            self.stds
        ) + pred_bboxes.new_tensor(self.means)
        boxes = bboxes.reshape(-1, 4)
        widths = boxes[:, 2] - boxes[:, 0] + 1.0
        heights = boxes[:, 3] - boxes[:, 1] + 1.0
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        pred_ctr_x = deltas[:, 0] * widths + ctr_x
        pred_ctr_y = deltas[:, 1] * heights + ctr_y
        pred_w = torch.exp(deltas[:, 2]) * widths
        pred_h = torch.exp(deltas[:, 3]) * heights
        out = torch.stack(
            [
                pred_ctr_x - 0.5 * pred_w,
                pred_ctr_y - 0.5 * pred_h,
                pred_ctr_x + 0.5 * pred_w,
                pred_ctr_y + 0.5 * pred_h,
            ],
            dim=1,
        )
        if max_shape is not None:
            height, width = max_shape[:2]
            out[:, 0::2] = out[:, 0::2].clamp(0, width - 1)
            out[:, 1::2] = out[:, 1::2].clamp(0, height - 1)
        return out.reshape(pred_bboxes.shape)


def nms_keep(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int
) -> torch.Tensor:
    """Indices kept by greedy NMS, by descending score; ``offset=1`` is py-faster-rcnn's ``x2 - x1 + 1`` IoU."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    _, keep = nms(boxes.contiguous(), scores.contiguous(), iou_threshold, offset=offset)
    return keep


@MODELS.register_module()
class STTranRPNHead(RPNHead):
    """jwyang's ``_ProposalLayer`` at test time (``fasterRCNN/lib/model/rpn/proposal_layer.py``).

    Foreground probability = softmax over each anchor's (bg, fg) logits;
    every anchor is decoded (:class:`STTranBoxCoder`) and clipped; the best
    ``nms_pre`` (``TEST.RPN_PRE_NMS_TOP_N = 6000``) enter NMS at
    ``TEST.RPN_NMS_THRESH = 0.7`` with +1 areas (``nms.offset`` in the test
    config), the first ``max_per_img`` (``TEST.RPN_POST_NMS_TOP_N = 100``)
    are kept, and the list is padded with zero boxes to exactly
    ``max_per_img``, which the RoI head then classifies like any proposal.
    The ``RPN_MIN_SIZE`` filter is commented out in the source and absent here.

    Channel layout is mmdet's softmax RPN (foreground at ``2a``, background
    at ``2a + 1``); ``mosa import-detector sttran`` reorders jwyang's
    (background ``a``, foreground ``A + a``).
    """

    def _predict_by_feat_single(
        self,
        cls_score_list,
        bbox_pred_list,
        score_factor_list,
        mlvl_priors,
        img_meta,
        cfg,
        rescale=False,
        with_nms=True,
    ) -> InstanceData:
        cfg = self.test_cfg if cfg is None else cfg
        (cls_score,), (bbox_pred,), (priors,) = cls_score_list, bbox_pred_list, mlvl_priors
        scores = cls_score.permute(1, 2, 0).reshape(-1, 2).softmax(-1)[:, 0]
        deltas = bbox_pred.permute(1, 2, 0).reshape(-1, 4)
        boxes = self.bbox_coder.decode(priors, deltas, max_shape=img_meta["img_shape"])
        order = torch.sort(scores, descending=True)[1][: cfg.nms_pre]
        boxes, scores = boxes[order], scores[order]
        keep = nms_keep(boxes, scores, cfg.nms.iou_threshold, cfg.nms.get("offset", 1))
        keep = keep[: cfg.max_per_img]
        padded_boxes = boxes.new_zeros((cfg.max_per_img, 4))
        padded_scores = scores.new_zeros((cfg.max_per_img,))
        padded_boxes[: len(keep)] = boxes[keep]
        padded_scores[: len(keep)] = scores[keep]
        results = InstanceData()
        results.bboxes = padded_boxes
        results.scores = padded_scores
        results.labels = scores.new_zeros(cfg.max_per_img, dtype=torch.long)
        return results

"""A plain-PyTorch reference of STTran's detector at test time, for the equivalence tests.

Written from the sources of ``yrcong/STTran`` (whose ``fasterRCNN/`` is
jwyang's faster-rcnn.pytorch) without mmdet or mmcv, so that a mismatch in
our mmdet port cannot hide in a shared op:

* :class:`JwyangFasterRCNN`: ``faster_rcnn/resnet.py`` + ``faster_rcnn.py``
  (module names, hence state-dict keys, are jwyang's);
* :func:`roi_align`: ``csrc/cpu/ROIAlign_cpu.cpp`` (``aligned=False``,
  adaptive sampling), written as separable bilinear weights;
* :func:`nms_plus_one`: ``csrc/cuda/nms.cu`` (``x2 - x1 + 1`` areas,
  suppress when IoU > threshold);
* :func:`proposals`: ``rpn/proposal_layer.py`` with ``utils/config.py``'s
  TEST values; :func:`decode`: ``rpn/bbox_transform.py``;
  :func:`anchors`: ``rpn/generate_anchors.py``;
* :func:`prepare_image`: ``utils/blob.py: prep_im_for_blob`` as
  ``dataloader/action_genome.py`` calls it;
* :func:`sgdet_postprocess`: the ``sgdet`` test branch of
  ``lib/object_detector.py``.

The ResNet depth is a parameter so that tests can use fewer blocks with
the same key layout.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PIXEL_MEANS = np.array([[[102.9801, 115.9465, 122.7717]]])
ANCHOR_SCALES, ANCHOR_RATIOS, FEAT_STRIDE = (4, 8, 16, 32), (0.5, 1, 2), 16
PRE_NMS_TOP_N, POST_NMS_TOP_N, RPN_NMS_THRESH = 6000, 100, 0.7
BBOX_STDS = (0.1, 0.1, 0.2, 0.2)


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


def make_layer(inplanes, planes, blocks, stride):
    downsample = None
    if stride != 1 or inplanes != planes * 4:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * 4),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class RPN(nn.Module):
    def __init__(self, num_anchors=12):
        super().__init__()
        self.RPN_Conv = nn.Conv2d(1024, 512, 3, 1, 1, bias=True)
        self.RPN_cls_score = nn.Conv2d(512, 2 * num_anchors, 1, 1, 0)
        self.RPN_bbox_pred = nn.Conv2d(512, 4 * num_anchors, 1, 1, 0)


class JwyangFasterRCNN(nn.Module):
    """jwyang's ``resnet`` Faster R-CNN with ``stage_blocks`` for conv2..conv5."""

    def __init__(self, num_classes=37, stage_blocks=(3, 4, 23, 3)):
        super().__init__()
        conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
        self.RCNN_base = nn.Sequential(
            conv1,
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            maxpool,
            make_layer(64, 64, stage_blocks[0], 1),
            make_layer(256, 128, stage_blocks[1], 2),
            make_layer(512, 256, stage_blocks[2], 2),
        )
        self.RCNN_top = nn.Sequential(make_layer(1024, 512, stage_blocks[3], 2))
        self.RCNN_rpn = RPN()
        self.RCNN_cls_score = nn.Linear(2048, num_classes)
        self.RCNN_bbox_pred = nn.Linear(2048, 4 * num_classes)

    def head_to_tail(self, pool5):
        return self.RCNN_top(pool5).mean(3).mean(2)

    @torch.no_grad()
    def forward(self, im_data, im_info):
        """``_fasterRCNN.forward`` in eval mode: rois, cls_prob, bbox_pred, base_feat, pooled_feat."""
        batch = im_data.shape[0]
        base_feat = self.RCNN_base(im_data)
        rpn = F.relu(self.RCNN_rpn.RPN_Conv(base_feat))
        cls = self.RCNN_rpn.RPN_cls_score(rpn)
        shape = cls.shape  # _RPN.reshape(x, 2): (B, 2, A*H, W)
        prob = F.softmax(cls.view(shape[0], 2, shape[1] * shape[2] // 2, shape[3]), 1).view(shape)
        rois = proposals(prob, self.RCNN_rpn.RPN_bbox_pred(rpn), im_info)
        pooled = roi_align(base_feat, rois.view(-1, 5))
        pooled = self.head_to_tail(pooled)
        bbox_pred = self.RCNN_bbox_pred(pooled)
        cls_prob = F.softmax(self.RCNN_cls_score(pooled), 1)
        n = rois.shape[1]
        return (
            rois,
            cls_prob.view(batch, n, -1),
            bbox_pred.view(batch, n, -1),
            base_feat,
            pooled.view(batch, n, -1),
        )


def random_jwyang_state(seed: int, stage_blocks=(1, 1, 1, 1), num_classes=37) -> OrderedDict:
    """Seeded random weights in jwyang's key layout; residual-branch BNs scaled down to stay finite."""
    generator = torch.Generator().manual_seed(seed)
    model = JwyangFasterRCNN(num_classes, stage_blocks)
    state = OrderedDict()
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
            continue
        if key.endswith("running_var"):
            tensor = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith("running_mean"):
            tensor = 0.1 * torch.randn(value.shape, generator=generator)
        elif value.dim() == 1 and ("bn" in key or key.endswith((".1.weight", ".1.bias"))):
            scale = 0.2 if key.endswith("bn3.weight") else 1.0
            base = 1.0 if key.endswith("weight") else 0.0
            tensor = base * scale + 0.1 * torch.randn(value.shape, generator=generator)
        elif value.dim() > 1:
            fan_in = math.prod(value.shape[1:])
            tensor = torch.randn(value.shape, generator=generator) * math.sqrt(2.0 / fan_in)
        else:  # conv / linear biases
            tensor = 0.1 * torch.randn(value.shape, generator=generator)
        state[key] = tensor.float()
    # Caffe inputs are not divided by a std: the stem BN's statistics bring
    # them to unit scale, as trained statistics would.
    state["RCNN_base.1.running_var"] = 2000.0 + 1000.0 * torch.rand(64, generator=generator)
    # Varied class posteriors and small regressions, so that the score
    # threshold, NMS and the person rule all have work to do.
    state["RCNN_bbox_pred.weight"] *= 0.05
    state["RCNN_rpn.RPN_cls_score.weight"] *= 4.0
    state["RCNN_rpn.RPN_bbox_pred.weight"] *= 0.1
    return state


def calibrate_classifier(
    state: OrderedDict, pooled: torch.Tensor, spread: float = 2.5
) -> OrderedDict:
    """Rescale the random classifier so that each logit has mean 0 and std ``spread`` over ``pooled``.

    Random post-ReLU features share a large common component, so raw random
    logits let one class win every proposal; standardised ones give varied
    detections of many classes (and persons) for the comparison to check.
    """
    state = OrderedDict(state)
    weight, bias = state["RCNN_cls_score.weight"], state["RCNN_cls_score.bias"]
    logits = pooled @ weight.T + bias
    mean, std = logits.mean(0), logits.std(0).clamp(min=1e-6)
    state["RCNN_cls_score.weight"] = spread * weight / std[:, None]
    state["RCNN_cls_score.bias"] = spread * (bias - mean) / std
    return state


def anchors(base_size=16, ratios=ANCHOR_RATIOS, scales=ANCHOR_SCALES) -> np.ndarray:
    """``generate_anchors``: ratio windows of a (0, 0, 15, 15) box, then scaled."""
    base = np.array([1, 1, base_size, base_size], dtype=np.float64) - 1
    w, h = base[2] - base[0] + 1, base[3] - base[1] + 1
    cx, cy = base[0] + 0.5 * (w - 1), base[1] + 0.5 * (h - 1)
    ws = np.round(np.sqrt(w * h / np.array(ratios)))
    hs = np.round(ws * np.array(ratios))
    rows = []
    for rw, rh in zip(ws, hs, strict=True):
        sw, sh = rw * np.array(scales), rh * np.array(scales)
        rows.append(
            np.stack(
                [
                    cx - 0.5 * (sw - 1),
                    cy - 0.5 * (sh - 1),
                    cx + 0.5 * (sw - 1),
                    cy + 0.5 * (sh - 1),
                ],
                1,
            )
        )
    return np.concatenate(rows)


def decode(boxes, deltas):
    """``bbox_transform_inv`` for ``(..., 4)`` boxes and ``(..., 4k)`` deltas."""
    widths = boxes[..., 2] - boxes[..., 0] + 1.0
    heights = boxes[..., 3] - boxes[..., 1] + 1.0
    ctr_x = boxes[..., 0] + 0.5 * widths
    ctr_y = boxes[..., 1] + 0.5 * heights
    dx, dy, dw, dh = deltas[..., 0::4], deltas[..., 1::4], deltas[..., 2::4], deltas[..., 3::4]
    pred_ctr_x = dx * widths[..., None] + ctr_x[..., None]
    pred_ctr_y = dy * heights[..., None] + ctr_y[..., None]
    pred_w = torch.exp(dw) * widths[..., None]
    pred_h = torch.exp(dh) * heights[..., None]
    out = deltas.clone()
    out[..., 0::4] = pred_ctr_x - 0.5 * pred_w
    out[..., 1::4] = pred_ctr_y - 0.5 * pred_h
    out[..., 2::4] = pred_ctr_x + 0.5 * pred_w
    out[..., 3::4] = pred_ctr_y + 0.5 * pred_h
    return out


def clip(boxes, height, width):
    boxes[..., 0::4] = boxes[..., 0::4].clamp(0, width - 1)
    boxes[..., 1::4] = boxes[..., 1::4].clamp(0, height - 1)
    boxes[..., 2::4] = boxes[..., 2::4].clamp(0, width - 1)
    boxes[..., 3::4] = boxes[..., 3::4].clamp(0, height - 1)
    return boxes


def nms_plus_one(boxes, scores, threshold, max_keep=None):
    """Greedy NMS by descending score, IoU with +1 sides, suppression at IoU > threshold."""
    order = torch.sort(scores, descending=True)[1].numpy()
    b = boxes.float().numpy()  # float32, as nms.cu
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1 + np.float32(1)) * (y2 - y1 + np.float32(1))
    suppressed = np.zeros(len(b), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) == max_keep:
            break
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2) - np.maximum(x1[i], x1) + np.float32(1))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2) - np.maximum(y1[i], y1) + np.float32(1))
        inter = w * h
        suppressed |= inter / (areas[i] + areas - inter) > threshold
    return torch.as_tensor(keep, dtype=torch.long)


def proposals(rpn_cls_prob, rpn_bbox_pred, im_info):
    """``_ProposalLayer.forward`` with cfg.TEST: (B, 100, 5) rois, zero rows past the kept ones."""
    num_anchors = len(ANCHOR_RATIOS) * len(ANCHOR_SCALES)
    scores = rpn_cls_prob[:, num_anchors:]
    batch, _, height, width = scores.shape
    shift_x, shift_y = np.meshgrid(np.arange(width) * FEAT_STRIDE, np.arange(height) * FEAT_STRIDE)
    shifts = torch.from_numpy(
        np.vstack([shift_x.ravel(), shift_y.ravel(), shift_x.ravel(), shift_y.ravel()]).T
    ).float()
    all_anchors = (torch.from_numpy(anchors()).float()[None] + shifts[:, None]).reshape(1, -1, 4)
    deltas = rpn_bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)
    scores = scores.permute(0, 2, 3, 1).reshape(batch, -1)
    boxes = decode(all_anchors.expand(batch, -1, 4), deltas)
    output = scores.new_zeros(batch, POST_NMS_TOP_N, 5)
    for i in range(batch):
        clip(boxes[i], float(im_info[i, 0]), float(im_info[i, 1]))
        order = torch.sort(scores[i], descending=True)[1][:PRE_NMS_TOP_N]
        kept = nms_plus_one(boxes[i][order], scores[i][order], RPN_NMS_THRESH, POST_NMS_TOP_N)
        output[i, :, 0] = i
        output[i, : len(kept), 1:] = boxes[i][order][kept]
    return output


def _axis_weights(start, size, bins, extent):
    """(bins, extent) averaging-of-bilinear weights along one axis of ROIAlign_cpu.cpp (float32 math)."""
    f32 = np.float32
    bin_size = f32(size) / f32(bins)
    samples = int(math.ceil(f32(size) / f32(bins)))
    weights = torch.zeros(bins, extent, dtype=torch.float64)
    for p in range(bins):
        for s in range(samples):
            v = f32(start) + f32(p) * bin_size + (f32(s) + f32(0.5)) * bin_size / f32(samples)
            if v < -1.0 or v > extent:
                continue
            v = max(v, f32(0))
            low = int(v)
            if low >= extent - 1:
                low = high = extent - 1
                v = f32(low)
            else:
                high = low + 1
            frac = float(f32(v - f32(low)))
            weights[p, low] += (1 - frac) / samples
            weights[p, high] += frac / samples
    return weights


def roi_align(features, rois, output_size=7, spatial_scale=1.0 / 16):
    """``ROIAlign_cpu.cpp``: no half-pixel offset, RoI side >= 1, ceil(side / 7) samples per bin."""
    out = features.new_zeros(len(rois), features.shape[1], output_size, output_size)
    height, width = features.shape[2:]
    f32 = np.float32
    for r, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        start_w, start_h = f32(x1) * f32(spatial_scale), f32(y1) * f32(spatial_scale)
        roi_w = max(f32(x2) * f32(spatial_scale) - start_w, f32(1))
        roi_h = max(f32(y2) * f32(spatial_scale) - start_h, f32(1))
        wy = _axis_weights(start_h, roi_h, output_size, height)
        wx = _axis_weights(start_w, roi_w, output_size, width)
        fmap = features[int(b)].double()
        out[r] = torch.einsum("ph,chw,qw->cpq", wy, fmap, wx).to(features.dtype)
    return out


def prepare_image(bgr: np.ndarray, target_size=600):
    """``prep_im_for_blob``: float32, means subtracted, resized by 600 / short side (no cap)."""
    image = bgr.astype(np.float32, copy=True)
    image -= PIXEL_MEANS
    scale = float(target_size) / float(min(image.shape[:2]))
    image = cv2.resize(image, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return image, scale


def image_batch(images: list[np.ndarray]):
    """``im_list_to_blob`` + ``im_info`` of ``dataloader/action_genome.py``."""
    prepared = [prepare_image(image) for image in images]
    height = max(p[0].shape[0] for p in prepared)
    width = max(p[0].shape[1] for p in prepared)
    blob = np.zeros((len(prepared), height, width, 3), dtype=np.float32)
    for i, (image, _) in enumerate(prepared):
        blob[i, : image.shape[0], : image.shape[1]] = image
    im_info = torch.tensor([[height, width, prepared[0][1]]], dtype=torch.float32).repeat(
        len(images), 1
    )
    return torch.from_numpy(blob).permute(0, 3, 1, 2).contiguous(), im_info


@torch.no_grad()
def sgdet_postprocess(model: JwyangFasterRCNN, outputs, im_info, num_classes=37):
    """``lib/object_detector.py``, mode ``sgdet``, test time: per-class NMS, one person, renormalised labels.

    Returns, per image, a dict of boxes (original pixels), the class each
    detection was kept under, its proposal row, and ``distribution``,
    ``scores``, ``pred_labels`` as STTran computes them afterwards.
    """
    rois, cls_prob, bbox_pred, _, roi_features = outputs
    boxes = rois[:, :, 1:5]
    deltas = (bbox_pred.reshape(-1, 4) * torch.tensor(BBOX_STDS)).view(
        -1, rois.shape[1], 4 * num_classes
    )
    pred_boxes = decode(boxes, deltas)
    for i in range(len(pred_boxes)):
        clip(pred_boxes[i], float(im_info[i, 0]), float(im_info[i, 1]))
    pred_boxes /= im_info[0, 2]
    frames = []
    for i in range(rois.shape[0]):
        scores, frame_boxes = cls_prob[i], pred_boxes[i]
        kept_boxes, kept_classes, kept_rows = [], [], []
        for j in range(1, num_classes):
            inds = torch.nonzero(scores[:, j] > 0.1).view(-1)
            if inds.numel() == 0:
                continue
            cls_scores = scores[:, j][inds]
            _, order = torch.sort(cls_scores, 0, True)
            cls_boxes = frame_boxes[inds][:, j * 4 : (j + 1) * 4]
            keep = nms_plus_one(cls_boxes[order], cls_scores[order], 0.4)
            if j == 1:
                keep = keep[:1]
            kept_boxes.append(cls_boxes[order][keep])
            kept_classes += [j] * len(keep)
            kept_rows.append(inds[order[keep]])
        rows = torch.cat(kept_rows) if kept_rows else torch.zeros(0, dtype=torch.long)
        features = roi_features[i, rows]
        distribution = torch.softmax(model.RCNN_cls_score(features)[:, 1:], dim=1)
        final_scores, labels = torch.max(distribution, dim=1)
        frames.append(
            {
                "boxes": torch.cat(kept_boxes).clamp(min=0) if kept_boxes else torch.zeros(0, 4),
                "classes": torch.tensor(kept_classes, dtype=torch.long),
                "rows": rows,
                "features": features,
                "distribution": distribution,
                "scores": final_scores,
                "pred_labels": labels + 1,
            }
        )
    return frames


@torch.no_grad()
def box_features(model: JwyangFasterRCNN, base_feat, boxes, image_index, scale):
    """PredCls/SGCls features: RoIAlign on ``boxes * im_info[0, 2]``, layer4, spatial mean; and softmax(logits[1:])."""
    rois = torch.cat([torch.full((len(boxes), 1), float(image_index)), boxes * scale], dim=1)
    features = model.head_to_tail(roi_align(base_feat, rois))
    return features, torch.softmax(model.RCNN_cls_score(features)[:, 1:], dim=1)

"""Faster R-CNN whose convolutions run on channels-last (NHWC) tensors.

On CPU, PyTorch runs convolutions with oneDNN, which works in a blocked
channels-last layout: an NCHW tensor is reordered on the way in and out of
every convolution. For the small default detector (maps of 16-128 channels)
those reorders are a large part of the work; with the weights and the image
batch in ``torch.channels_last`` the whole network stays in that layout.
Measured on 2 CPU cores: backbone + FPN forward and backward 28% cheaper, a
whole training iteration of ``configs/detector/faster_rcnn_r18_synth.py``
16% cheaper (``benchmarks/bench_detector.py``). The numbers are the same up
to float rounding; the weights save and load as in any mmdet model.

Two registered components, used together in a config:

``ChannelsLastFasterRCNN``  ``FasterRCNN`` that keeps its parameters and its
                            input batch channels-last.
``NCHWRoIExtractor``        ``SingleRoIExtractor`` that hands RoIAlign
                            NCHW-contiguous maps. mmcv's RoIAlign CPU kernel
                            reads raw memory as NCHW and returns wrong values,
                            without an error, for a channels-last map.
"""

from __future__ import annotations

import torch
from mmdet.models.detectors import FasterRCNN
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS


@MODELS.register_module()
class ChannelsLastFasterRCNN(FasterRCNN):
    """``FasterRCNN`` with channels-last weights and input (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # In-place initialisation and load_state_dict keep a tensor's layout.
        self.to(memory_format=torch.channels_last)

    def extract_feat(self, batch_inputs: torch.Tensor):
        return super().extract_feat(batch_inputs.contiguous(memory_format=torch.channels_last))


@MODELS.register_module()
class NCHWRoIExtractor(SingleRoIExtractor):
    """``SingleRoIExtractor`` whose RoI layers always read NCHW-contiguous maps."""

    def forward(self, feats, rois, roi_scale_factor=None):
        return super().forward(tuple(f.contiguous() for f in feats), rois, roi_scale_factor)

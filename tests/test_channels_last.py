"""Channels-last Faster R-CNN (pipeline/detector/channels_last.py): same numbers, same weights."""

import pytest
import torch
from mmengine.structures import InstanceData
from support.tiny_detector import DEFAULT_CONFIG

from pipeline.detector.model import load_config, register_mmdet


@pytest.fixture(scope="module")
def mmdet_models():
    register_mmdet()
    from mmdet.registry import MODELS

    import pipeline.detector.channels_last  # noqa: F401  (registers the components)

    return MODELS


def _maps_and_rois():
    generator = torch.Generator().manual_seed(0)
    maps = (torch.randn(2, 8, 24, 32, generator=generator),)
    rois = torch.tensor([[0, 2.0, 3.0, 60.0, 40.0], [1, 10.0, 5.0, 90.0, 80.0]])
    return maps, rois


def _extractor(models, type_name: str):
    return models.build(
        dict(
            type=type_name,
            roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
            out_channels=8,
            featmap_strides=[4],
        )
    )


def test_roi_extractor_reads_channels_last_maps_as_nchw(mmdet_models):
    maps, rois = _maps_and_rois()
    expected = _extractor(mmdet_models, "SingleRoIExtractor")(maps, rois)
    channels_last = tuple(m.contiguous(memory_format=torch.channels_last) for m in maps)
    pooled = _extractor(mmdet_models, "NCHWRoIExtractor")(channels_last, rois)
    torch.testing.assert_close(pooled, expected)


def test_plain_roi_extractor_is_wrong_on_channels_last_maps(mmdet_models):
    # Why NCHWRoIExtractor exists. Should this start failing, mmcv's CPU
    # RoIAlign honours strides and the guard can go.
    maps, rois = _maps_and_rois()
    expected = _extractor(mmdet_models, "SingleRoIExtractor")(maps, rois)
    channels_last = tuple(m.contiguous(memory_format=torch.channels_last) for m in maps)
    pooled = _extractor(mmdet_models, "SingleRoIExtractor")(channels_last, rois)
    assert (pooled - expected).abs().max() > 0.1


def _build(models, channels_last: bool):
    cfg = load_config(DEFAULT_CONFIG)
    cfg.model.type = "ChannelsLastFasterRCNN" if channels_last else "FasterRCNN"
    cfg.model.roi_head.bbox_roi_extractor.type = (
        "NCHWRoIExtractor" if channels_last else "SingleRoIExtractor"
    )
    torch.manual_seed(0)
    model = models.build(cfg.model)
    model.init_weights()
    return model


def _batch():
    from mmdet.structures import DetDataSample

    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 3, 192, 256), generator=generator, dtype=torch.uint8)
    samples = []
    for _ in range(2):
        sample = DetDataSample(
            metainfo=dict(img_shape=(192, 256), ori_shape=(192, 256), scale_factor=(1.0, 1.0))
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[20.0, 30.0, 60.0, 120.0], [100.0, 50.0, 130.0, 70.0]]),
            labels=torch.tensor([0, 10]),
        )
        samples.append(sample)
    return {"inputs": list(images), "data_samples": samples}


def test_channels_last_detector_matches_the_plain_one(mmdet_models):
    plain = _build(mmdet_models, channels_last=False)
    fast = _build(mmdet_models, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = fast.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()

    for model in (plain, fast):
        model.train()
    totals = []
    for model in (plain, fast):
        torch.manual_seed(2)  # the RPN and RoI samplers draw at random
        losses = model(**model.data_preprocessor(_batch(), True), mode="loss")
        totals.append(model.parse_losses(losses)[0])
    torch.testing.assert_close(totals[1], totals[0], rtol=1e-4, atol=1e-5)

    for model in (plain, fast):
        model.eval()
    with torch.no_grad():
        expected = plain(**plain.data_preprocessor(_batch(), False), mode="predict")
        got = fast(**fast.data_preprocessor(_batch(), False), mode="predict")
    for mine, theirs in zip(got, expected, strict=True):
        assert len(theirs.pred_instances) > 0
        torch.testing.assert_close(mine.pred_instances.scores, theirs.pred_instances.scores, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(mine.pred_instances.bboxes, theirs.pred_instances.bboxes, rtol=1e-4, atol=1e-3)


def test_channels_last_weights_load_into_the_plain_detector(mmdet_models):
    fast = _build(mmdet_models, channels_last=True)
    plain = _build(mmdet_models, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    for name, tensor in plain.state_dict().items():
        assert torch.equal(tensor, fast.state_dict()[name]), name

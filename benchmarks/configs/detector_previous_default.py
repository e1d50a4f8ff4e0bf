# The default detector before the small-object/speed rework (bbox mAP@0.5 0.571,
# 300 iterations, 5 min 35 s of training on an idle 2-core machine): the current
# default with the previous width, anchors, sampling and schedule put back.
# Kept only as the baseline of benchmarks/bench_detector.py.
_base_ = ['../../configs/detector/faster_rcnn_r18_synth.py']

max_iters = 300
model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[4], ratios=[0.5, 1.0, 2.0])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64)),
    train_cfg=dict(
        rpn=dict(assigner=dict(pos_iou_thr=0.7), sampler=dict(num=256)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=256))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', by_epoch=False, milestones=[225], gamma=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
train_dataloader = dict(batch_size=8)

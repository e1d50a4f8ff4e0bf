# STTran's Action Genome detector (faster_rcnn_ag.pth, jwyang's
# faster-rcnn.pytorch ResNet-101 C4), rebuilt in mmdet 3 with the components
# of pipeline/detector/sttran.py. Convert the released weights once with
#   mosa import-detector sttran faster_rcnn_ag.pth --out models/sttran
# and set detector.config / detector.checkpoint / detector.postprocess as
# that command prints. Every value below is the one STTran runs with (the
# defaults of fasterRCNN/lib/model/utils/config.py; cfgs/res101.yml is
# never loaded); docs/detector.md lists what remains different.
#
# The pipeline reads `model`, `metainfo` and `test_pipeline`; nothing here
# trains (set detector.checkpoint, and train_detector is skipped).

default_scope = "mmdet"
custom_imports = dict(imports=["pipeline.detector.sttran"], allow_failed_imports=False)

# STTran's object_classes without __background__, in its label order
# (dataloader/action_genome.py), which is the AG index order.
metainfo = dict(
    classes=(
        "person",
        "bag",
        "bed",
        "blanket",
        "book",
        "box",
        "broom",
        "chair",
        "closet/cabinet",
        "clothes",
        "cup/glass/bottle",
        "dish",
        "door",
        "doorknob",
        "doorway",
        "floor",
        "food",
        "groceries",
        "laptop",
        "light",
        "medicine",
        "mirror",
        "paper/notebook",
        "phone/camera",
        "picture",
        "pillow",
        "refrigerator",
        "sandwich",
        "shelf",
        "shoe",
        "sofa/couch",
        "table",
        "television",
        "towel",
        "vacuum",
        "window",
    )
)
num_classes = len(metainfo["classes"])

# Blocks per stage of ResNet-101; layer4 (3 blocks) is the RoI head.
stage_blocks = (3, 4, 23)
top_blocks = 3
frozen_bn = dict(type="BN", requires_grad=False)

model = dict(
    type="FasterRCNN",
    # Means are subtracted by STTranResize before resizing; frames of one
    # batch share a size, so nothing is padded (jwyang pads with zeros only
    # to the largest frame of a batch, never to a multiple of 32).
    data_preprocessor=dict(
        type="DetDataPreprocessor", mean=None, std=None, bgr_to_rgb=False, pad_size_divisor=1
    ),
    backbone=dict(
        type="STTranResNet",
        depth=101,
        stage_blocks=stage_blocks,
        num_stages=3,
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2,),
        frozen_stages=-1,
        norm_cfg=frozen_bn,
        norm_eval=True,
        style="caffe",
        init_cfg=None,
    ),
    rpn_head=dict(
        type="STTranRPNHead",
        in_channels=1024,
        feat_channels=512,
        anchor_generator=dict(
            type="STTranAnchorGenerator",
            scales=[4, 8, 16, 32],
            ratios=[0.5, 1.0, 2.0],
            strides=[16],
        ),
        bbox_coder=dict(type="STTranBoxCoder"),
        # softmax over (fg, bg) per anchor, as jwyang's RPN
        loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type="SmoothL1Loss", beta=1.0 / 9.0, loss_weight=1.0),
    ),
    roi_head=dict(
        type="StandardRoIHead",
        shared_head=dict(type="STTranResLayer", num_blocks=top_blocks, norm_cfg=frozen_bn),
        bbox_roi_extractor=dict(
            type="SingleRoIExtractor",
            roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0, aligned=False),
            out_channels=1024,
            featmap_strides=[16],
        ),
        bbox_head=dict(
            type="BBoxHead",
            with_avg_pool=True,
            roi_feat_size=4,  # layer4's stride 2 turns the 7x7 RoI into 4x4
            in_channels=2048,
            num_classes=num_classes,
            bbox_coder=dict(
                type="STTranBoxCoder",
                target_means=[0.0, 0.0, 0.0, 0.0],
                target_stds=[0.1, 0.1, 0.2, 0.2],
            ),
            reg_class_agnostic=False,
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type="SmoothL1Loss", beta=1.0, loss_weight=1.0),
        ),
    ),
    train_cfg=None,
    test_cfg=dict(
        rpn=dict(
            nms_pre=6000,  # TEST.RPN_PRE_NMS_TOP_N
            max_per_img=100,  # TEST.RPN_POST_NMS_TOP_N ("original 300")
            nms=dict(type="nms", iou_threshold=0.7, offset=1),  # TEST.RPN_NMS_THRESH, +1 areas
            min_bbox_size=-1,
        ),  # RPN_MIN_SIZE filter is commented out
        # mmdet's own post-processing, used only by mmdet tools; extraction
        # applies STTran's loop (detector.postprocess in params.yaml).
        rcnn=dict(score_thr=0.1, nms=dict(type="nms", iou_threshold=0.4), max_per_img=100),
    ),
)

# scipy.misc.imread (PIL) in dataloader/action_genome.py, then RGB -> BGR.
test_pipeline = [
    dict(type="LoadImageFromFile", imdecode_backend="pillow"),
    dict(type="STTranResize", short_side=600),
    dict(
        type="PackDetInputs",
        meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"),
    ),
]

# The default detector with plain NCHW convolutions: the baseline that
# measures what channels-last (pipeline/detector/channels_last.py) saves.
_base_ = '../../configs/detector/faster_rcnn_r18_synth.py'
model = dict(
    type='FasterRCNN',
    roi_head=dict(bbox_roi_extractor=dict(type='SingleRoIExtractor')))

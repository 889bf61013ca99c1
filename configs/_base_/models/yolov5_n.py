# YOLOv5n: CSPDarknet (yolov5 v6+, C3 blocks, SPPF), PAN, YOLOv5Loss
# (ultralytics/yolov5 hyp.scratch-low gains), yolov5 val.py test settings.
# Model piece only. num_classes=5 is the built-in synthetic data's; a config
# for other data overrides it once (the head passes it on to its loss):
#     model = dict(bbox_head=dict(num_classes=num_classes))
# deepen_factor/widen_factor 0.33/0.25 are the "n" size of yolov5/ultralytics.
model = dict(
    type='YOLODetector',
    # channels-last images: oneDNN convolutions, ~15% faster steps on a CPU
    data_preprocessor=dict(type='YOLODataPreprocessor', channels_last=True),
    backbone=dict(type='CSPDarknet', arch='v5', deepen_factor=0.33, widen_factor=0.25),
    # in_channels of the neck and the head come from the module before them
    neck=dict(type='YOLOv5PAFPN', deepen_factor=0.33),
    bbox_head=dict(
        type='YOLOv5Head',
        num_classes=5,
        strides=(8, 16, 32),
        # anchors: input pixels per level; default: yolov5's P3-P5
        loss=dict(type='YOLOv5Loss')),
    test_cfg=dict(score_thr=0.001, iou_thr=0.6, max_per_img=100, nms_pre=1000))

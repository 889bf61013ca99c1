# YOLOv3-n: Darknet-53 layout scaled by deepen/widen factors, YOLOv3 FPN,
# YOLOv3Loss (keras-yolo3 style), mmdet yolov3 test settings.
# Model piece only. num_classes=5 is the built-in synthetic data's; a config
# for other data overrides it once (the head passes it on to its loss):
#     model = dict(bbox_head=dict(num_classes=num_classes))
# deepen_factor/widen_factor 0.33/0.25 are the "n" size of yolov5/ultralytics.
model = dict(
    type='YOLODetector',
    # channels-last images: oneDNN convolutions, ~15% faster steps on a CPU
    data_preprocessor=dict(type='YOLODataPreprocessor', channels_last=True),
    backbone=dict(type='Darknet', deepen_factor=0.33, widen_factor=0.25),
    # in_channels of the neck and the head come from the module before them
    neck=dict(type='YOLOv3FPN'),
    bbox_head=dict(
        type='YOLOv3Head',
        num_classes=5,
        strides=(8, 16, 32),
        # anchors: input pixels per level; default: yolov5's P3-P5 / keras-yolo3's nine
        loss=dict(type='YOLOv3Loss', style='keras')),
    test_cfg=dict(score_thr=0.005, iou_thr=0.45, max_per_img=100, nms_pre=1000))

# YOLOv8s: CSPDarknet (C2f blocks, SPPF), PAN, decoupled anchor-free head,
# YOLOv8Loss (ultralytics v8DetectionLoss), ultralytics val test settings.
# Model piece only. num_classes=5 is the built-in synthetic data's; a config
# for other data overrides it once (the head passes it on to its loss):
#     model = dict(bbox_head=dict(num_classes=num_classes))
# deepen_factor/widen_factor 0.33/0.5 are the "s" size of yolov5/ultralytics.
model = dict(
    type='YOLODetector',
    # channels-last images: oneDNN convolutions, ~15% faster steps on a CPU
    data_preprocessor=dict(type='YOLODataPreprocessor', channels_last=True),
    backbone=dict(type='CSPDarknet', arch='v8', deepen_factor=0.33, widen_factor=0.5),
    # in_channels of the neck and the head come from the module before them
    neck=dict(type='YOLOv8PAFPN', deepen_factor=0.33),
    bbox_head=dict(
        type='YOLOv8Head',
        num_classes=5,
        strides=(8, 16, 32),
        reg_max=16,
        loss=dict(type='YOLOv8Loss')),
    test_cfg=dict(score_thr=0.001, iou_thr=0.7, max_per_img=100, nms_pre=1000))

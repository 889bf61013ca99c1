# YOLOv10-style detector on the YOLOv8-n body: the YOLOv8-n backbone and neck,
# an end-to-end head (one-to-many + one-to-one branch on detached features,
# reg_max 16 with DFL, v10Detect's depth-wise class branch) and E2ELoss with
# the constant schedule (YOLOv10 as published: both branches weight 1,
# one-to-one assigner top-1). Not ultralytics' yolov10n.yaml body (SCDown,
# C2fCIB, PSA): only the head and the loss are YOLOv10's here.
model = dict(
    type='YOLODetector',
    data_preprocessor=dict(type='YOLODataPreprocessor', channels_last=True),
    backbone=dict(type='CSPDarknet', arch='v8', deepen_factor=0.33, widen_factor=0.25),
    neck=dict(type='YOLOv8PAFPN', deepen_factor=0.33),
    bbox_head=dict(
        type='YOLOv10Head',
        num_classes=5,
        strides=(8, 16, 32),
        reg_max=16,
        loss=dict(
            type='E2ELoss',
            schedule='constant',
            one2many=dict(type='YOLOv8Loss',
                          assigner=dict(type='TaskAlignedAssigner', topk=10,
                                        alpha=0.5, beta=6.0)),
            one2one=dict(type='YOLOv8Loss',
                         assigner=dict(type='TaskAlignedAssigner', topk=1,
                                       alpha=0.5, beta=6.0)))),
    test_cfg=dict(end2end=True, score_thr=0.001, max_per_img=100, iou_thr=0.7,
                  nms_pre=1000))

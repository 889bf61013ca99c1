# YOLO26-n: the backbone and neck of ultralytics 8.4's cfg/models/26/yolo26.yaml
# at the n scale (depth 0.5, width 0.25; C3k2, SPPF, C2PSA), the end-to-end
# head (one-to-many + one-to-one branch on detached features, reg_max 1) and
# E2ELoss with the progressive (ProgLoss) schedule. 2,572,280 parameters at
# 80 classes, as ultralytics' yolo26n.
# Model piece only; num_classes=5 is the built-in synthetic data's.
model = dict(
    type='YOLODetector',
    data_preprocessor=dict(type='YOLODataPreprocessor', channels_last=True),
    backbone=dict(type='YOLO26Backbone', deepen_factor=0.5, widen_factor=0.25),
    neck=dict(type='YOLO26PAFPN', deepen_factor=0.5, widen_factor=0.25),
    bbox_head=dict(
        type='YOLO26Head',
        num_classes=5,
        strides=(8, 16, 32),
        reg_max=1,
        # num_classes, strides and reg_max are filled into both branches
        loss=dict(
            type='E2ELoss',
            schedule='progressive',  # one-to-many weight 0.8 -> 0.1 over the epochs
            # gains box 7.5, cls 0.5, l1 1.5 are YOLOv8Loss's defaults
            one2many=dict(type='YOLOv8Loss',
                          assigner=dict(type='TaskAlignedAssigner', topk=10,
                                        alpha=0.5, beta=6.0)),
            one2one=dict(type='YOLOv8Loss',
                         assigner=dict(type='TaskAlignedAssigner', topk=7,
                                       topk2=1, alpha=0.5, beta=6.0)))),
    # NMS-free: the top max_per_img scores of the one-to-one branch;
    # end2end=False switches to the one-to-many branch + NMS (iou_thr, nms_pre)
    test_cfg=dict(end2end=True, score_thr=0.001, max_per_img=100, iou_thr=0.7,
                  nms_pre=1000))

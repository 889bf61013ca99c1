# Loss swap without code: YOLOv8-n with VarifocalLoss for the classes and
# SIoULoss for the boxes instead of BCE and CIoU; everything else is the
# default config, so `tools/plot_curves.py` can compare the two runs.
_base_ = './yolov8_n_synthetic.py'

model = dict(
    bbox_head=dict(
        loss=dict(
            type='YOLOv8Loss',
            loss_cls=dict(type='VarifocalLoss', use_sigmoid=True, alpha=0.75,
                          gamma=2.0, iou_weighted=True, reduction='mean',
                          loss_weight=0.5),
            loss_bbox=dict(type='SIoULoss', reduction='mean', loss_weight=7.5))))

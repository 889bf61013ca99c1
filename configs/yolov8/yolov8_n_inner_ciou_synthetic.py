# Box-loss swap without code: YOLOv8-n with Inner-CIoU (auxiliary boxes at
# ratio 0.75) instead of CIoU; everything else is the default config (compare
# the two runs with tools/compare.py or tools/plot_curves.py). See
# docs/box_losses.md.
_base_ = './yolov8_n_synthetic.py'

model = dict(
    bbox_head=dict(
        loss=dict(
            type='YOLOv8Loss',
            loss_bbox=dict(type='InnerIoULoss', loss=dict(type='CIoULoss', style='yolo'),
                           ratio=0.75, reduction='mean', loss_weight=7.5))))

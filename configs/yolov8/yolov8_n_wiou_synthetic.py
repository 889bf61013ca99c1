# Box-loss swap without code: YOLOv8-n with Wise-IoU v3 (running mean in the
# loss's buffer, saved in checkpoints) instead of CIoU; everything else is the
# default config (compare the two runs with tools/compare.py or
# tools/plot_curves.py). See docs/box_losses.md.
_base_ = './yolov8_n_synthetic.py'

model = dict(
    bbox_head=dict(
        loss=dict(
            type='YOLOv8Loss',
            loss_bbox=dict(type='WIoULoss', version='v3', reduction='mean', loss_weight=7.5))))

# YOLO26-n on a COCO-format dataset on disk (see _base_/datasets/coco_detection.py
# for the layout). For other data set `classes` there (num_classes follows).
_base_ = [
    '../_base_/models/yolo26_n.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/cpu_short.py',
    '../_base_/default_runtime.py',
]

model = dict(bbox_head=dict(num_classes={{_base_.num_classes}}))

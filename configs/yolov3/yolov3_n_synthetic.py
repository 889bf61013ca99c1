# YOLOv3-n on the built-in synthetic shapes, short CPU schedule.
_base_ = [
    '../_base_/models/yolov3_n.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/cpu_short.py',
    '../_base_/default_runtime.py',
]

# YOLO26-n on the built-in synthetic shapes with the same CPU schedule as
# configs/yolov8/yolov8_n_synthetic.py (the default), for a side-by-side run.
_base_ = [
    '../_base_/models/yolo26_n.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/cpu_short.py',
    '../_base_/default_runtime.py',
]

# The default config (the README's `make train`): YOLOv8-n on the built-in
# synthetic shapes, short AdamW schedule sized for a 2-core CPU.
_base_ = [
    '../_base_/models/yolov8_n.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/cpu_short.py',
    '../_base_/default_runtime.py',
]

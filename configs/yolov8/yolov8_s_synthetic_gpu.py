# Longer GPU schedule: YOLOv8-s, larger inputs and more data on the
# built-in shapes (100 epochs of SGD). Not yet run: no GPU was available to measure its mAP.
_base_ = [
    '../_base_/models/yolov8_s.py',
    '../_base_/datasets/synthetic_shapes.py',
    '../_base_/schedules/gpu_long.py',
    '../_base_/default_runtime.py',
]

img_scale = 320
train_images = 10000
batch_size = 32
num_workers = 8
train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='LetterResize', scale=img_scale),
    dict(type='YOLOHSVRandomAug'),
    dict(type='PackYOLOInputs'),
]
test_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='LetterResize', scale=img_scale),
    dict(type='PackYOLOInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=num_workers, persistent_workers=True,
    # 10k images would be ~2.7 GB cached; eight workers regenerate them fast enough
    dataset=dict(num_images=train_images, img_size=img_scale, cache=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size, num_workers=num_workers,
    dataset=dict(img_size=img_scale, pipeline=test_pipeline))
test_dataloader = val_dataloader

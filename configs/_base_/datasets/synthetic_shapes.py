# The built-in synthetic shapes (yolo_losses.datasets.SyntheticShapesDataset):
# generated from a seed, no download; 5 classes. Images are generated with a
# longer side of source_size pixels and letterboxed to img_scale x img_scale.
# Sized for the 2-core CPU default run; a GPU config raises them.
dataset_type = 'SyntheticShapesDataset'
num_classes = 5
source_size = 256
img_scale = 192
data_seed = 0
train_images = 1700
val_images = 200
batch_size = 16
# one worker overlaps data generation with the training step without taking
# both cores of a small machine
num_workers = 1
# generate each image once, when the dataset is built, instead of once per
# epoch in the worker (which competes with the training step for the cores)
cache_images = True

train_pipeline = [
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    # flip before the letterbox, so the recorded padding stays right
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
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # workers seeded from (seed, epoch, rank, worker id), with EpochSeedHook
    # (default_runtime.py), so augmentations differ between epochs and a
    # resumed run repeats the uninterrupted one
    worker_init_fn=dict(type='yolo_losses.epoch_worker_init_fn'),
    # mmengine looks collate functions up without the default scope
    collate_fn=dict(type='yolo_losses.yolo_collate'),
    dataset=dict(type=dataset_type, num_images=train_images, split='train',
                 seed=data_seed, img_size=source_size, cache=cache_images,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='yolo_losses.yolo_collate'),
    dataset=dict(type=dataset_type, num_images=val_images, split='val',
                 seed=data_seed, img_size=source_size, cache=cache_images,
                 pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader

val_evaluator = dict(type='CocoMetric')
test_evaluator = val_evaluator

# A COCO-format dataset on disk: data_root/annotations/*.json + images.
# tools/export_coco.py writes the built-in data in this layout, e.g.
#   python tools/export_coco.py data/shapes_coco --split train --num-images 2000
#   python tools/export_coco.py data/shapes_coco --split val --num-images 200
dataset_type = 'YOLOCocoDataset'
data_root = 'data/shapes_coco/'
classes = ('rectangle', 'ellipse', 'triangle', 'cross', 'ring')
num_classes = len(classes)
img_scale = 256
batch_size = 16
num_workers = 2

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_label=True),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='LetterResize', scale=img_scale),
    dict(type='YOLOHSVRandomAug'),
    dict(type='PackYOLOInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
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
    collate_fn=dict(type='yolo_losses.yolo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'),
                 metainfo=dict(classes=classes), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='yolo_losses.yolo_collate'),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'),
                 metainfo=dict(classes=classes), pipeline=test_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader

# the annotation file gives COCO's own evaluation (crowd regions included)
val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

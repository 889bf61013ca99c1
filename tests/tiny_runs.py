"""The data part every tiny training run of the tests shares: the built-in
shapes at 64 px, a handful of images, loaders in the main process.

``tiny_data(...)`` returns config text with a ``{base!r}`` placeholder; a test
appends its own schedule and hooks and fills ``base`` with ``str.format``.
"""

_LOAD = "dict(type='LoadAnnotations', with_bbox=True, with_label=True)"
_AUGMENT = ("    dict(type='RandomFlip', prob=0.5, direction='horizontal'),\n",
            "    dict(type='YOLOHSVRandomAug'),\n")


def tiny_data(*, train_images: int = 8, val_images: int = 4, augment: bool = False,
              train_workers: int = 0) -> str:
    flip, hsv = _AUGMENT if augment else ('', '')
    return f'''
_base_ = [{{base!r}}]
img_scale = 64
train_pipeline = [
    {_LOAD},
{flip}    dict(type='LetterResize', scale=img_scale),
{hsv}    dict(type='PackYOLOInputs'),
]
test_pipeline = [
    {_LOAD},
    dict(type='LetterResize', scale=img_scale),
    dict(type='PackYOLOInputs'),
]
train_dataloader = dict(batch_size=4, num_workers={train_workers}, dataset=dict(
    num_images={train_images}, img_size=img_scale, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=0, dataset=dict(
    num_images={val_images}, img_size=img_scale, pipeline=test_pipeline))
test_dataloader = val_dataloader
'''

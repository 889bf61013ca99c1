"""Collate function of the training stack (registered in FUNCTIONS)."""
from __future__ import annotations

from typing import List, Sequence

import torch

from ..ops.targets import check_normalised_boxes
from ..registry import FUNCTIONS

SIZE_DIVISOR = 32
PAD_VALUE = 114


@FUNCTIONS.register_module()
def yolo_collate(batch: Sequence[dict], size_divisor: int = SIZE_DIVISOR,
                 pad_value: int = PAD_VALUE) -> dict:
    """Stack packed samples (``PackYOLOInputs``) into one batch.

    Images of different sizes are padded at the bottom/right to the largest
    height and width, rounded up to ``size_divisor``; the padding does not
    move the letterbox offsets, so each image's ``pad`` stays valid.

    Returns ``dict(inputs=uint8 [B, 3, H, W], data_samples=dict(
    targets=float32 [N, 6] rows (batch_index, class_id, cx, cy, w, h)
    normalised to the padded (H, W), max_boxes=int, metas=list of B dicts))``.
    ``max_boxes`` is computed here on the CPU so the loss needs no host sync.

    The targets are checked here, once per batch on the CPU where it costs
    no sync, because training runs the losses with their value checks off:
    a box centre or size outside [0, 1] (beyond
    ``ops.targets.NORMALISED_TOLERANCE``, the losses' tolerance; e.g. boxes
    reaching far past the image from a transform that does not clip) raises
    ``ValueError``.
    """
    if not isinstance(batch, (list, tuple)) or len(batch) == 0:
        raise ValueError('yolo_collate needs a non-empty list of samples, '
                         f'got {batch!r}')
    if size_divisor < 1:
        raise ValueError(f'size_divisor must be >= 1, got {size_divisor}')
    for sample in batch:
        if not isinstance(sample, dict) or 'inputs' not in sample:
            raise TypeError('yolo_collate needs dicts from PackYOLOInputs, got '
                            f'{type(sample).__name__}')
    height = max(s['inputs'].shape[1] for s in batch)
    width = max(s['inputs'].shape[2] for s in batch)
    height = -(-height // size_divisor) * size_divisor
    width = -(-width // size_divisor) * size_divisor

    inputs = batch[0]['inputs'].new_full((len(batch), 3, height, width),
                                         pad_value)
    rows: List[torch.Tensor] = []
    metas = []
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    for index, sample in enumerate(batch):
        image = sample['inputs']
        inputs[index, :, :image.shape[1], :image.shape[2]] = image
        info = sample['data_samples']
        boxes = info['bboxes'].to(torch.float32).reshape(-1, 4) / scale
        cxcywh = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2,
                            boxes[:, 2:] - boxes[:, :2]], dim=1)
        labels = info['labels'].to(torch.float32).reshape(-1, 1)
        batch_index = torch.full_like(labels, float(index))
        rows.append(torch.cat([batch_index, labels, cxcywh], dim=1))
        metas.append({key: value for key, value in info.items()
                      if key not in ('bboxes', 'labels')})
    targets = torch.cat(rows, dim=0)
    check_normalised_boxes('targets[:, 2:6]', targets[:, 2:6])
    max_boxes = max(len(r) for r in rows)
    return dict(inputs=inputs,
                data_samples=dict(targets=targets, max_boxes=int(max_boxes),
                                  metas=metas))

"""Targets of the composite YOLO losses: checks and per-image padding.

``targets`` is float ``[N, 6]``: (batch_index, class_id, cx, cy, w, h) with
box coordinates normalised to [0, 1] of the network input. Rows may come in
any order. Padding turns them into fixed-size per-image tensors without a
host sync when ``max_boxes`` is given.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from ..validation import check_finite, check_tensor

#: How far outside [0, 1] a normalised centre or size may lie and still pass
#: the value check of ``check_targets``. Boxes touching the border (cx = 1,
#: w = 1) and the float round-off of converting pixel labels (letterboxing,
#: float32 divisions: about 1e-7 relative) lie well inside it; pixel
#: coordinates passed where normalised ones are expected (cx = 1.7, 320.0)
#: lie far outside. 1e-3 of the input is under a pixel up to 1000-pixel inputs.
NORMALISED_TOLERANCE = 1e-3


class PaddedTargets(NamedTuple):
    """Targets grouped by image, padded to ``M = max_boxes``.

    labels: ``[B, M]`` long class ids (0 where padded).
    boxes: ``[B, M, 4]`` (cx, cy, w, h), normalised (0 where padded).
    mask: ``[B, M]`` bool, True for real boxes.
    order: ``[B, M]`` long, the row of ``targets`` each slot came from
        (0 where padded).

    Within an image the boxes are sorted by (class_id, cx, cy, w, h), so the
    padded tensors, and every result computed from them, do not depend on
    the order of the rows of ``targets``.
    """
    labels: Tensor
    boxes: Tensor
    mask: Tensor
    order: Tensor


def check_normalised_boxes(name: str, boxes: Tensor,
                           tol: float = NORMALISED_TOLERANCE) -> None:
    """``ValueError`` naming ``name`` unless every value of ``boxes`` lies in
    ``[-tol, 1 + tol]`` (NaN fails too).

    ``boxes``: ``[..., 4]`` (cx, cy, w, h) normalised to the network input.
    One host sync: the losses run it with validation on, ``yolo_collate``
    once per batch on the CPU.
    """
    if boxes.numel() == 0:
        return
    outside = ~((boxes >= -tol) & (boxes <= 1 + tol))
    if bool(outside.any()):
        worst = float(boxes[outside].abs().max())
        raise ValueError(
            f'{name} (cx, cy, w, h) must be normalised to the input size, '
            f'i.e. in [0, 1] (tolerance {tol:g}); got a value of {worst:g}: '
            'pixel coordinates? Divide x and w by the input width, y and h by '
            'its height')


def check_targets(targets, batch_size: int, num_classes: int,
                  validate: bool, name: str = 'targets') -> Tensor:
    """Shape checks always; value checks (one host sync) when ``validate``.

    Value checks: finite; batch index an integer in ``[0, B - 1]``; class id
    an integer in ``[0, C - 1]``; ``w, h >= 0``; ``cx, cy, w, h`` normalised,
    in ``[0, 1]`` up to ``NORMALISED_TOLERANCE``. Each failure is a
    ``ValueError`` naming ``name``. Only centres and sizes are checked: a box
    may reach past the border (``cx + w / 2 > 1``) as augmentations leave it.
    """
    check_tensor(name, targets, floating=True)
    if targets.dim() != 2 or targets.shape[1] != 6:
        raise ValueError(
            f'{name} must be [N, 6] rows of (batch_index, class_id, cx, cy, w, h), '
            f'got shape {tuple(targets.shape)}')
    if validate and targets.numel():
        check_finite(name, targets)
        batch_index, class_id, sizes = targets[:, 0], targets[:, 1], targets[:, 4:6]
        if bool(((batch_index < 0) | (batch_index > batch_size - 1)
                 | (batch_index != batch_index.round())).any()):
            raise ValueError(
                f'{name}[:, 0] (batch index) must be integers in [0, {batch_size - 1}]')
        if bool(((class_id < 0) | (class_id > num_classes - 1)
                 | (class_id != class_id.round())).any()):
            raise ValueError(
                f'{name}[:, 1] (class id) must be integers in [0, {num_classes - 1}]')
        if bool((sizes < 0).any()):
            raise ValueError(f'{name}[:, 4:6] (w, h) must not be negative')
        check_normalised_boxes(f'{name}[:, 2:6]', targets[:, 2:6])
    return targets


def boxes_per_image(targets: Tensor, batch_size: int) -> Tensor:
    """``[B]`` long: the number of target rows of each image (no sync)."""
    batch_index = targets[:, 0].long()
    counts = torch.zeros(batch_size, dtype=torch.long, device=targets.device)
    return counts.scatter_add_(0, batch_index.clamp(0, batch_size - 1),
                               torch.ones_like(batch_index))


def resolve_max_boxes(targets: Tensor, batch_size: int, max_boxes: Optional[int],
                      validate: bool) -> int:
    """``max_boxes`` as given, or computed from the targets (one host sync)."""
    if max_boxes is None:
        if targets.shape[0] == 0:
            return 0
        return int(boxes_per_image(targets, batch_size).max())
    if not isinstance(max_boxes, int) or isinstance(max_boxes, bool) or max_boxes < 0:
        raise TypeError(f'max_boxes must be a non-negative int or None, got {max_boxes!r}')
    if validate and targets.shape[0]:
        largest = int(boxes_per_image(targets, batch_size).max())
        if largest > max_boxes:
            raise ValueError(
                f'max_boxes={max_boxes} is smaller than the {largest} boxes of one image')
    return max_boxes


def pad_targets(targets: Tensor, batch_size: int, max_boxes: int) -> PaddedTargets:
    """Group ``[N, 6]`` targets by image into ``[B, M]`` slots, sync-free.

    Rows beyond ``max_boxes`` in one image are dropped (``resolve_max_boxes``
    with validation on makes that an error instead).
    """
    device = targets.device
    num_rows = targets.shape[0]
    # Lexicographic sort by (image, class, cx, cy, w, h) through stable sorts,
    # least significant key first: a canonical order whatever the row order.
    order = torch.arange(num_rows, device=device)
    for column in (5, 4, 3, 2, 1):
        order = order[torch.sort(targets[order, column], stable=True).indices]
    batch_index = targets[:, 0].long().clamp(0, max(batch_size - 1, 0))
    sorted_index, by_image = torch.sort(batch_index[order], stable=True)
    order = order[by_image]
    counts = boxes_per_image(targets, batch_size)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(num_rows, device=device) - starts[sorted_index]
    keep = slot < max_boxes
    # Dropped rows go to one spare slot past the end, then are cut off.
    flat = torch.where(keep, sorted_index * max_boxes + slot,
                       torch.full_like(slot, batch_size * max_boxes))
    size = batch_size * max_boxes + 1
    rows = targets[order]
    labels = torch.zeros(size, dtype=torch.long, device=device)
    labels.scatter_(0, flat, rows[:, 1].long())
    boxes = torch.zeros(size, 4, dtype=targets.dtype, device=device)
    boxes.index_copy_(0, flat, rows[:, 2:6])
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    mask.scatter_(0, flat, torch.ones_like(keep))
    source = torch.zeros(size, dtype=torch.long, device=device)
    source.scatter_(0, flat, order)
    shape = (batch_size, max_boxes)
    return PaddedTargets(labels[:-1].view(shape), boxes[:-1].view(*shape, 4),
                         mask[:-1].view(shape), source[:-1].view(shape))

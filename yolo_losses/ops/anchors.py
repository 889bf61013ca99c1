"""Anchors, grids and box decoding shared by the anchor-based YOLO losses.

Conventions (yolov5's ``Detect``, also used by ``YOLOv3Loss``):

- ``anchors`` are input pixels, one sequence of ``(w, h)`` pairs per level,
  levels ordered by increasing stride; every level has the same number of
  anchors ``A``. As a tensor: ``[L, A, 2]``.
- A raw head output of one level is ``[B, A*(5+C), H, W]``; per anchor the
  channels are x, y, w, h, objectness, then C class logits.
  ``split_level_pred`` turns it into ``[B, A, H, W, 5+C]``.
- "Grid units" are cells of one level: pixels divided by that level's
  stride. Normalised coordinates times ``(W, H)`` give grid units.

Everything here is shape arithmetic or element-wise; nothing synchronises
with the device.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

#: yolov5's P3-P5 anchors (input pixels), also keras-yolo3's nine anchors.
DEFAULT_ANCHORS: Tuple[Tuple[Tuple[float, float], ...], ...] = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)

#: Strides of the three default levels (P3, P4, P5), in input pixels.
DEFAULT_STRIDES: Tuple[int, ...] = (8, 16, 32)

#: Channels per anchor before the class logits: x, y, w, h, objectness.
NUM_BOX_ATTRS = 5


def anchors_to_tensor(anchors: Sequence[Sequence[Sequence[float]]],
                      name: str = 'anchors') -> Tensor:
    """Check ``anchors`` and return them as a float32 ``[L, A, 2]`` tensor.

    Args:
        anchors: one sequence of ``(w, h)`` pairs (input pixels) per level, or
            a tensor ``[L, A, 2]``.
        name: argument name used in error messages.

    Raises:
        TypeError/ValueError naming ``name`` when the nesting is wrong, the
        levels hold different numbers of anchors, or a size is not a finite
        positive number.
    """
    if isinstance(anchors, Tensor):
        table = anchors.detach().to(torch.float32)
    else:
        if isinstance(anchors, (str, bytes)) or not isinstance(anchors, Sequence):
            raise TypeError(f'{name} must be a sequence of levels of (w, h) pairs, '
                            f'got {type(anchors).__name__}')
        if len(anchors) == 0:
            raise ValueError(f'{name} must hold at least one level')
        try:
            rows = [[[float(v) for v in pair] for pair in level] for level in anchors]
        except (TypeError, ValueError) as err:
            raise TypeError(f'{name} must be nested as [level][anchor] -> (w, h) '
                            f'numbers: {err}') from None
        counts = {len(level) for level in rows}
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f'{name}: every level needs the same, non-zero number '
                             f'of anchors, got {[len(level) for level in rows]}')
        if any(len(pair) != 2 for level in rows for pair in level):
            raise ValueError(f'{name}: each anchor must be a (w, h) pair')
        table = torch.tensor(rows, dtype=torch.float32)
    if table.dim() != 3 or table.shape[-1] != 2 or table.shape[0] == 0 \
            or table.shape[1] == 0:
        raise ValueError(f'{name} must have shape [levels, anchors, 2], '
                         f'got {tuple(table.shape)}')
    if not bool(torch.isfinite(table).all()) or not bool((table > 0).all()):
        raise ValueError(f'{name} must be finite positive (w, h) sizes in pixels')
    return table


def check_strides(strides: Sequence[float], num_levels: Optional[int] = None,
                  name: str = 'strides') -> Tuple[float, ...]:
    """Positive, strictly increasing strides; one per level when given."""
    if isinstance(strides, (str, bytes)) or not isinstance(strides, Sequence):
        raise TypeError(f'{name} must be a sequence of numbers, got '
                        f'{type(strides).__name__}')
    try:
        values = tuple(float(s) for s in strides)
    except (TypeError, ValueError):
        raise TypeError(f'{name} must be a sequence of numbers, got {strides!r}') from None
    if not values or any(not math.isfinite(s) or s <= 0 for s in values):
        raise ValueError(f'{name} must be finite positive numbers, got {strides!r}')
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f'{name} must increase from level to level, got {strides!r}')
    if num_levels is not None and len(values) != num_levels:
        raise ValueError(f'{name} has {len(values)} entries but anchors have '
                         f'{num_levels} levels')
    return values


def split_level_pred(pred: Tensor, num_anchors: int, num_classes: int,
                     name: str = 'preds') -> Tensor:
    """``[B, A*(5+C), H, W]`` -> ``[B, A, H, W, 5+C]`` (a view, no copy).

    Raises ValueError naming ``name`` when the channel count is not
    ``A*(5+C)`` or the tensor is not 4-D.
    """
    channels = num_anchors * (NUM_BOX_ATTRS + num_classes)
    if pred.dim() != 4 or pred.shape[1] != channels:
        raise ValueError(
            f'{name} must be [B, A*(5+C), H, W] = [B, {channels}, H, W] for '
            f'A={num_anchors} anchors and C={num_classes} classes, got shape '
            f'{tuple(pred.shape)}')
    batch, _, height, width = pred.shape
    return pred.view(batch, num_anchors, NUM_BOX_ATTRS + num_classes,
                     height, width).permute(0, 1, 3, 4, 2)


def resolve_img_size(preds: Sequence[Tensor], strides: Sequence[float],
                     img_size: Optional[Sequence[int]] = None,
                     name: str = 'img_size') -> Tuple[int, int]:
    """Network input ``(h, w)`` in pixels, checked against the grids.

    Default: level-0 stride times the level-0 grid size. Every level's grid
    must be the input size divided by its stride, rounded up or down
    (strided convolutions round either way), else ValueError.
    """
    grid0 = preds[0].shape[-2:]
    if img_size is None:
        size = (int(round(strides[0] * grid0[0])), int(round(strides[0] * grid0[1])))
    else:
        if isinstance(img_size, Tensor) or not isinstance(img_size, Sequence) \
                or len(img_size) != 2:
            raise TypeError(f'{name} must be a pair of ints (h, w), got {img_size!r}')
        if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0
               for v in img_size):
            raise ValueError(f'{name} must be positive ints (h, w), got {img_size!r}')
        size = (int(img_size[0]), int(img_size[1]))
    for level, (pred, stride) in enumerate(zip(preds, strides)):
        for axis, extent in enumerate(size):
            cells = pred.shape[-2 + axis]
            if not math.floor(extent / stride) <= cells <= math.ceil(extent / stride):
                raise ValueError(
                    f'preds[{level}] has grid {tuple(pred.shape[-2:])} but {name} '
                    f'(h, w)={size} with stride {stride:g} needs '
                    f'{"height" if axis == 0 else "width"} '
                    f'{math.ceil(extent / stride)}')
    return size


def grid_cells(height: int, width: int, device=None,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """``[H, W, 2]`` top-left corners ``(x, y)`` of the cells, grid units."""
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack((grid_x, grid_y), dim=-1)


def decode_yolov5_boxes(raw: Tensor, anchors: Tensor) -> Tensor:
    """yolov5 box decode relative to the cell, grid units.

    Args:
        raw: ``[..., 4]`` raw (x, y, w, h) logits.
        anchors: ``[..., 2]`` anchor (w, h) in grid units, broadcasting.

    Returns:
        ``[..., 4]`` (cx, cy, w, h): ``xy = 2*sigmoid - 0.5`` (offset from the
        cell's top-left corner, in [-0.5, 1.5]), ``wh = (2*sigmoid)^2 *
        anchor`` (at most 4 anchors).
    """
    xy = raw[..., :2].sigmoid() * 2 - 0.5
    wh = (raw[..., 2:4].sigmoid() * 2) ** 2 * anchors
    return torch.cat((xy, wh), dim=-1)


def decode_yolov3_boxes(raw: Tensor, anchors: Tensor) -> Tensor:
    """YOLOv3 box decode relative to the cell, grid units.

    Args:
        raw: ``[..., 4]`` raw (x, y, w, h) logits.
        anchors: ``[..., 2]`` anchor (w, h) in grid units, broadcasting.

    Returns:
        ``[..., 4]`` (cx, cy, w, h): ``xy = sigmoid`` (offset in the cell),
        ``wh = exp(raw) * anchor``.
    """
    return torch.cat((raw[..., :2].sigmoid(), raw[..., 2:4].exp() * anchors), dim=-1)


#: Channel of the objectness logit among an anchor's ``5 + C`` channels.
OBJ_CHANNEL = 4


class _ObjectnessAndSlots(torch.autograd.Function):
    """Forward: the objectness plane and the slots' channels of a level.
    Backward: one zero-filled gradient of the level, the objectness plane
    written into it and the slots' gradients added (two ops on ``pred``
    would each build a full-size gradient and add them: three passes over
    the largest tensor of the loss)."""

    @staticmethod
    def forward(ctx, planes: Tensor, image: Tensor, anchor: Tensor,
                cell: Tensor) -> Tuple[Tensor, Tensor]:
        ctx.save_for_backward(image, anchor, cell)
        ctx.shape = planes.shape
        objectness = planes[:, :, OBJ_CHANNEL]
        picked = planes[image, anchor, :, cell]
        return objectness, picked

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_objectness: Optional[Tensor], grad_picked: Optional[Tensor]):
        image, anchor, cell = ctx.saved_tensors
        grad = grad_objectness.new_zeros(ctx.shape) if grad_objectness is not None \
            else grad_picked.new_zeros(ctx.shape)
        if grad_objectness is not None:
            grad[:, :, OBJ_CHANNEL] = grad_objectness
        if grad_picked is not None:
            # [B, A, H*W, 5+C] view: the three index tensors select rows
            grad.transpose(2, 3).index_put_((image, anchor, cell), grad_picked,
                                            accumulate=True)
        return grad, None, None, None


def gather_objectness_and_slots(pred: Tensor, num_anchors: int, slot_anchor: Tensor,
                                slot_cell: Tensor) -> Tuple[Tensor, Tensor]:
    """The objectness plane and some cells' channels, read as one op.

    Reads straight from the head's layout (no copy of the level), and the
    backward builds one zero-filled gradient of the level, not one per use.

    Args:
        pred: ``[B, A*(5+C), H, W]`` raw head output of one level.
        num_anchors: A.
        slot_anchor: ``[B, S]`` long, anchor index of each slot.
        slot_cell: ``[B, S]`` long, flat cell index ``y * W + x`` of each slot.

    Returns:
        ``(objectness, picked)``: ``[B, A, H*W]`` objectness logits and
        ``[B, S, 5+C]`` channels of the slots' (anchor, cell), both in
        ``pred``'s dtype.
    """
    batch_size, channels, height, width = pred.shape
    planes = pred.reshape(batch_size, num_anchors, channels // num_anchors, height * width)
    image = torch.arange(batch_size, device=pred.device).view(-1, 1).expand_as(slot_anchor)
    return _ObjectnessAndSlots.apply(planes, image, slot_anchor, slot_cell)

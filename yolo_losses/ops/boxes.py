"""Box format conversions and pairwise IoU.

Formats (last dimension 4, any leading dimensions, any unit as long as both
operands share it):

- ``xyxy``: (x1, y1, x2, y2), corners;
- ``cxcywh``: (cx, cy, w, h), centre and size (the yolov5/ultralytics label
  layout);
- ``xywh``: (x1, y1, w, h), top-left corner and size (the COCO layout).

The aligned IoU family used by the box losses lives in ``ops/iou.py``.
"""
from __future__ import annotations

import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[..., 4]`` (cx, cy, w, h) -> ``[..., 4]`` (x1, y1, x2, y2)."""
    centre, size = boxes[..., :2], boxes[..., 2:4]
    half = size / 2
    return torch.cat((centre - half, centre + half), dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``[..., 4]`` (x1, y1, x2, y2) -> ``[..., 4]`` (cx, cy, w, h)."""
    top_left, bottom_right = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), dim=-1)


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``[..., 4]`` (x1, y1, w, h) -> ``[..., 4]`` (x1, y1, x2, y2)."""
    return torch.cat((boxes[..., :2], boxes[..., :2] + boxes[..., 2:4]), dim=-1)


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``[..., 4]`` (x1, y1, x2, y2) -> ``[..., 4]`` (x1, y1, w, h)."""
    return torch.cat((boxes[..., :2], boxes[..., 2:4] - boxes[..., :2]), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """``[..., 4]`` xyxy -> ``[...]`` area (negative sizes count as 0)."""
    size = (boxes[..., 2:4] - boxes[..., :2]).clamp(min=0)
    return size[..., 0] * size[..., 1]


def pairwise_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """IoU of every box of ``boxes1`` with every box of ``boxes2``.

    Args:
        boxes1: ``[..., N, 4]`` xyxy.
        boxes2: ``[..., M, 4]`` xyxy (leading dimensions broadcast with
            ``boxes1``'s).
        eps: added to the union (ultralytics/torchvision convention).

    Returns:
        ``[..., N, M]`` IoU in [0, 1].
    """
    a = boxes1.unsqueeze(-2)
    b = boxes2.unsqueeze(-3)
    inter_size = (torch.minimum(a[..., 2:4], b[..., 2:4])
                  - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = inter_size[..., 0] * inter_size[..., 1]
    union = box_area(a) + box_area(b) - inter
    return inter / (union + eps)


def wh_iou(wh1: Tensor, wh2: Tensor, eps: float = 0.0) -> Tensor:
    """IoU of boxes sharing one centre, from their sizes only.

    Args:
        wh1: ``[..., N, 2]`` (w, h).
        wh2: ``[..., M, 2]`` (w, h).

    Returns:
        ``[..., N, M]`` ``min(w)*min(h) / (w1*h1 + w2*h2 - min(w)*min(h))``.
    """
    a = wh1.unsqueeze(-2)
    b = wh2.unsqueeze(-3)
    inter = torch.minimum(a[..., 0], b[..., 0]) * torch.minimum(a[..., 1], b[..., 1])
    union = a[..., 0] * a[..., 1] + b[..., 0] * b[..., 1] - inter
    return inter / (union + eps)

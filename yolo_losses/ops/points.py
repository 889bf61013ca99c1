"""Anchor points and distance-distribution (DFL) boxes of anchor-free heads.

Conventions (ultralytics' ``Detect``, used by ``YOLOv8Loss``):

- One anchor point per cell, at the cell centre. Points are listed level by
  level (increasing stride), row-major inside a level, which is the order of
  ``pred.flatten(2)`` concatenated over levels.
- "Grid units" are cells of a point's own level: input pixels divided by that
  level's stride.
- A box is predicted as four distances (left, top, right, bottom) from its
  point, each a distribution over ``reg_max`` bins ``0, 1, ..., reg_max - 1``
  (grid units); the distance is the distribution's expectation.

Everything here is shape arithmetic or element-wise: no host sync.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor


def level_points(grid_sizes: Sequence[Tuple[int, int]], strides: Sequence[float],
                 device=None, dtype: torch.dtype = torch.float32,
                 offset: float = 0.5) -> Tuple[Tensor, Tensor]:
    """Anchor points of every level, concatenated.

    Args:
        grid_sizes: ``(H, W)`` of each level.
        strides: input pixels per cell of each level.
        offset: position of the point inside its cell (0.5 = centre).

    Returns:
        points: ``[N, 2]`` ``(x, y)`` in grid units of the point's level,
            ``N = sum(H * W)``.
        point_strides: ``[N, 1]`` the stride of each point (pixels per grid
            unit); ``points * point_strides`` is in input pixels.
    """
    points, point_strides = [], []
    for (height, width), stride in zip(grid_sizes, strides):
        xs = torch.arange(width, device=device, dtype=dtype) + offset
        ys = torch.arange(height, device=device, dtype=dtype) + offset
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        points.append(torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2))
        point_strides.append(torch.full((height * width, 1), float(stride),
                                        device=device, dtype=dtype))
    return torch.cat(points), torch.cat(point_strides)


def distribution_expectation(dist_logits: Tensor) -> Tensor:
    """``[..., reg_max]`` bin logits -> ``[...]`` expected distance.

    The softmax over the bins, dotted with the bin positions ``0 ..
    reg_max - 1`` (grid units).
    """
    bins = torch.arange(dist_logits.shape[-1], device=dist_logits.device,
                        dtype=dist_logits.dtype)
    return dist_logits.softmax(-1).matmul(bins)


def distances_to_boxes(distances: Tensor, points: Tensor) -> Tensor:
    """``[..., 4]`` (left, top, right, bottom) from ``[..., 2]`` points ->
    ``[..., 4]`` xyxy boxes (same unit as the inputs)."""
    left_top, right_bottom = distances[..., :2], distances[..., 2:4]
    return torch.cat((points - left_top, points + right_bottom), dim=-1)


def boxes_to_distances(points: Tensor, boxes: Tensor,
                       max_distance: Optional[float] = None) -> Tensor:
    """``[..., 4]`` xyxy boxes seen from ``[..., 2]`` points -> ``[..., 4]``
    (left, top, right, bottom) distances, clamped to ``[0, max_distance]``
    when it is given."""
    distances = torch.cat((points - boxes[..., :2], boxes[..., 2:4] - points), dim=-1)
    if max_distance is not None:
        distances = distances.clamp(0, max_distance)
    return distances

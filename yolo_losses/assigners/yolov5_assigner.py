"""YOLOv5 ratio-matching assigner (yolov5 ``ComputeLoss.build_targets``).

A ground-truth box matches an anchor of a level when both side ratios are
within ``prior_match_thr``: ``max(r, 1/r) < prior_match_thr`` for
``r = box_wh / anchor_wh`` (width and height, grid units). A matched box is
positive at the cell holding its centre and at the two nearest neighbour
cells: the left (upper) neighbour when the centre's fractional part is below
``neighbour_offset`` (0.5) and the centre is more than one cell from the
left (top) border, the right (lower) neighbour likewise from the right
(bottom) border. A centre exactly on a cell border (fractional part 0) takes
both neighbours of that axis, as yolov5 does.

Unlike yolov5, which filters the matches into variable-length lists, every
candidate keeps a fixed slot: ``[B, M, A, 5]`` for B images, M padded boxes,
A anchors and the five cells (centre, left, up, right, down), with a
validity mask. Nothing here synchronises with the device.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..registry import TASK_UTILS

#: Candidate cells per (box, anchor): centre, left, up, right, down.
NUM_CELL_OFFSETS = 5


class YOLOv5Assignment(NamedTuple):
    """Candidates of one level; every tensor is ``[B, M, A, 5, ...]``.

    valid: bool, True where the (box, anchor, cell) is a positive.
    cell_x, cell_y: long cell indices, clamped to the grid (yolov5 7.0).
    target_boxes: ``[..., 4]`` (cx, cy, w, h) of the box in grid units, the
        centre relative to the top-left corner of the (clamped) cell, as
        yolov5 7.0's ``gxy - gij``; in [-0.5, 1.5] for centres inside the
        image.
    """
    valid: Tensor
    cell_x: Tensor
    cell_y: Tensor
    target_boxes: Tensor


@TASK_UTILS.register_module()
class YOLOv5Assigner:
    """Anchor ratio match plus neighbour cells, yolov5 7.0 semantics.

    Args:
        prior_match_thr: largest allowed side ratio between a box and an
            anchor (yolov5's ``anchor_t``, strict ``<``).
        neighbour_offset: a neighbour cell is added on an axis when the
            centre's fractional part there is below this value (yolov5's
            ``g = 0.5``; 0 disables neighbours).
    """

    def __init__(self, prior_match_thr: float = 4.0,
                 neighbour_offset: float = 0.5) -> None:
        if not float(prior_match_thr) > 1.0:
            raise ValueError(f'prior_match_thr must be > 1, got {prior_match_thr!r}')
        if not 0.0 <= float(neighbour_offset) <= 0.5:
            raise ValueError(
                f'neighbour_offset must be in [0, 0.5], got {neighbour_offset!r}')
        self.prior_match_thr = float(prior_match_thr)
        self.neighbour_offset = float(neighbour_offset)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prior_match_thr={self.prior_match_thr}, '
                f'neighbour_offset={self.neighbour_offset})')

    def assign(self, boxes: Tensor, box_mask: Tensor, anchors: Tensor,
               grid_size: Sequence[int]) -> YOLOv5Assignment:
        """Candidates of one level.

        Args:
            boxes: ``[B, M, 4]`` (cx, cy, w, h) normalised to [0, 1] of the
                input (padded targets from ``ops.targets.pad_targets``).
            box_mask: ``[B, M]`` bool, True for real boxes.
            anchors: ``[A, 2]`` anchor (w, h) of this level in grid units
                (pixels / stride).
            grid_size: ``(H, W)`` cells of this level.

        Returns:
            ``YOLOv5Assignment`` with ``[B, M, A, 5]`` slots.
        """
        height, width = int(grid_size[0]), int(grid_size[1])
        if boxes.dim() != 3 or boxes.shape[-1] != 4:
            raise ValueError(f'boxes must be [B, M, 4], got {tuple(boxes.shape)}')
        if box_mask.shape != boxes.shape[:2]:
            raise ValueError(f'box_mask must be {tuple(boxes.shape[:2])}, '
                             f'got {tuple(box_mask.shape)}')
        if anchors.dim() != 2 or anchors.shape[-1] != 2:
            raise ValueError(f'anchors must be [A, 2], got {tuple(anchors.shape)}')
        dtype = boxes.dtype
        num_anchors = anchors.shape[0]
        # Python scalars only: a tensor built from Python data would be a
        # blocking host-to-device copy on CUDA.
        centre_x, centre_y = boxes[..., 0] * width, boxes[..., 1] * height   # [B, M]
        size = torch.stack((boxes[..., 2] * width, boxes[..., 3] * height), dim=-1)

        ratio = size[:, :, None, :] / anchors.to(dtype)[None, None]  # [B, M, A, 2]
        # A zero side gives r = 0 and 1/r = inf, so padding never matches.
        worst = torch.maximum(ratio, 1 / ratio).amax(dim=-1)
        matched = (worst < self.prior_match_thr) & box_mask[:, :, None]

        g = self.neighbour_offset
        from_right, from_bottom = width - centre_x, height - centre_y
        cell_used = torch.stack((
            torch.ones_like(box_mask),
            (torch.remainder(centre_x, 1.0) < g) & (centre_x > 1),        # left
            (torch.remainder(centre_y, 1.0) < g) & (centre_y > 1),        # up
            (torch.remainder(from_right, 1.0) < g) & (from_right > 1),    # right
            (torch.remainder(from_bottom, 1.0) < g) & (from_bottom > 1),  # down
        ), dim=-1)                                                   # [B, M, 5]

        # The centre shifted by the cell offsets (0, 0), (g, 0), (0, g),
        # (-g, 0), (0, -g); ``.long()`` truncates towards zero like yolov5's.
        shifted = torch.stack((
            torch.stack((centre_x, centre_x - g, centre_x, centre_x + g, centre_x), -1),
            torch.stack((centre_y, centre_y, centre_y - g, centre_y, centre_y + g), -1),
        ), dim=-1)                                                   # [B, M, 5, 2]
        cell = shifted.long()
        # yolov5 7.0 clamps the cell index in place (``gj.clamp_``, a view of
        # ``gij``) before it computes ``gxy - gij``, so the box centre is
        # relative to the clamped cell (a centre at x = W gets x = 1.0).
        cell_x = cell[..., 0].clamp(0, width - 1)
        cell_y = cell[..., 1].clamp(0, height - 1)
        centre = torch.stack((centre_x, centre_y), dim=-1)
        centre_in_cell = centre[:, :, None, :] - torch.stack((cell_x, cell_y), -1).to(dtype)

        shape = (*boxes.shape[:2], num_anchors, NUM_CELL_OFFSETS)
        valid = matched[..., None] & cell_used[:, :, None, :]
        target_boxes = torch.cat(
            (centre_in_cell, size[:, :, None, :].expand_as(centre_in_cell)), dim=-1)
        target_boxes = target_boxes[:, :, None].expand(*shape, 4)
        cell_x = cell_x[:, :, None, :].expand(shape)
        cell_y = cell_y[:, :, None, :].expand(shape)
        return YOLOv5Assignment(valid, cell_x, cell_y, target_boxes)

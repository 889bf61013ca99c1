"""YOLOv3 best-anchor assigner and the ignore masks of the three YOLOv3 styles.

Matching (``match``):

- ``'all_levels'`` (keras-yolo3 ``preprocess_true_boxes``, darknet
  ``forward_yolo_layer``): each box takes the one anchor, of all ``L*A``,
  whose width/height IoU with it is largest (both boxes centred at one point;
  the first anchor wins a tie), so it is positive on exactly one level.
- ``'per_level'`` (PyTorch-YOLOv3 ``build_targets``): on every level each box
  takes the best of that level's own anchors, so it is positive once per
  level.

The positive cell is the one holding the box centre, ``floor(cx * W)``,
``floor(cy * H)``, clamped to the grid (a centre exactly on the right or
bottom image border goes to the last cell; the references would index out of
range there). The regression target of a cell is the centre relative to that
clamped cell's top-left corner.

Collisions (two boxes assigned to one anchor slot of one cell): every
reference writes its targets box after box, so the last box written wins
the regression target while class bits accumulate (keras sets ``5 + c`` to 1
without clearing, darknet's ``delta_yolo_class`` keeps a class already set,
PyTorch-YOLOv3 sets ``tcls[..., c] = 1`` per box). Here the boxes of an image
come in the canonical order of ``ops.targets.pad_targets`` (sorted by class,
cx, cy, w, h), and the box latest in that order owns the slot: the
references' rule with the rows in canonical order, and independent of the
order of the ``targets`` rows. The class target of a slot is the union of the
classes of every box assigned to it.

Ignore masks (``ignore``), negatives whose objectness loss is dropped:

- ``'level_boxes'`` (keras ``yolo_loss``): the predicted box has IoU
  ``>= ignore_thresh`` with a box this level holds for that image (the slot
  owners; a box that lost a collision is not held, as in keras' ``y_true``).
- ``'image_boxes'`` (darknet): IoU ``> ignore_thresh`` with any box of the
  image, assigned to any level.
- ``'anchor_shape'`` (PyTorch-YOLOv3): at the cell holding a box centre, the
  anchors whose width/height IoU with the box is ``> ignore_thresh``.

Every tensor has a fixed size (``B x M x points`` at most); nothing here
synchronises with the device.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..ops.boxes import cxcywh_to_xyxy, pairwise_box_iou, wh_iou
from ..registry import TASK_UTILS

#: Defaults of each style: (match, ignore, ignore_thresh).
STYLE_DEFAULTS = {
    'keras': ('all_levels', 'level_boxes', 0.5),
    'darknet': ('all_levels', 'image_boxes', 0.7),
    'pytorch_yolov3': ('per_level', 'anchor_shape', 0.5),
}
MATCH_MODES = ('all_levels', 'per_level')
IGNORE_MODES = ('level_boxes', 'image_boxes', 'anchor_shape')

# PyTorch-YOLOv3's ``bbox_wh_iou`` adds 1e-16 to the union.
_PER_LEVEL_WH_IOU_EPS = 1e-16

# Elements (images x points) of one block of the ignore-mask IoU: 256 KiB per
# float32 temporary, so the block's temporaries stay in the CPU cache
# (measured on a 2-core EPYC: about 2x faster than whole [B, P, chunk]
# tensors).
_IGNORE_BLOCK_ELEMENTS = 1 << 16
# Elements (images x points x boxes) of one step of the ignore-mask IoU on an
# accelerator, where launches cost more than memory traffic: 64 MiB per
# float32 temporary at most.
_IGNORE_DEVICE_CHUNK_ELEMENTS = 1 << 24


class YOLOv3LevelAssignment(NamedTuple):
    """Targets of one level with ``A`` anchors on an ``H x W`` grid.

    pos_mask: ``[B, A, H, W]`` bool, slots that own a box.
    target_boxes: ``[B, A, H, W, 4]`` (cx, cy, w, h) of the owning box,
        normalised to the input (0 where not positive); ``None`` when
        ``assign(..., dense=False)``.
    target_offsets: ``[B, A, H, W, 2]`` centre of the owning box relative to
        the cell's top-left corner, grid units (0 where not positive);
        ``None`` when not dense.
    target_classes: ``[B, A, H, W, C]`` float, 1 for the class of every box
        assigned to the slot; ``None`` when not dense.
    box_assigned: ``[B, M]`` bool, boxes assigned to this level.
    box_held: ``[B, M]`` bool, boxes that own their slot on this level.
    box_anchor, box_cell_x, box_cell_y: ``[B, M]`` long, the slot of each box
        on this level (meaningful where ``box_assigned``).
    shape_ignore: ``[B, A, H, W]`` bool, the ``'anchor_shape'`` ignore mask
        (all False for the other ignore modes).
    box_offsets: ``[B, M, 2]`` centre of each box relative to its cell's
        top-left corner on this level, grid units.
    box_classes: ``[B, M, C]`` float, the class target of each box's slot
        (the union over the boxes assigned to it; meaningful where
        ``box_held``, 0 where not ``box_assigned``).

    The per-box fields (``box_*``) carry every positive's targets: a held box
    is exactly one positive slot. A loss that gathers its predictions at the
    held boxes' slots needs no ``[B, A, H, W, *]`` target tensor at all.
    """
    pos_mask: Tensor
    target_boxes: Tensor
    target_offsets: Tensor
    target_classes: Tensor
    box_assigned: Tensor
    box_held: Tensor
    box_anchor: Tensor
    box_cell_x: Tensor
    box_cell_y: Tensor
    shape_ignore: Tensor
    box_offsets: Tensor
    box_classes: Tensor


def scale_pairs(values: Tensor, x_factor: float, y_factor: float) -> Tensor:
    """``[..., 2]`` (x, y) pairs times ``(x_factor, y_factor)``.

    Python scalars only: a factor tensor built from Python data would be a
    host-to-device copy on CUDA (and break CUDA-graph capture).
    """
    return torch.stack((values[..., 0] * x_factor, values[..., 1] * y_factor), dim=-1)


def _check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f'{name} must be one of {", ".join(map(repr, choices))}, '
                         f'got {value!r}')
    return value


@TASK_UTILS.register_module()
class YOLOv3Assigner:
    """Best-anchor assignment and ignore masks of keras-yolo3, darknet and
    PyTorch-YOLOv3.

    Args:
        style: ``'keras'`` (default), ``'darknet'`` or ``'pytorch_yolov3'``;
            sets the defaults of the three arguments below.
        match: ``'all_levels'`` or ``'per_level'`` (see the module doc);
            ``None`` takes the style's.
        ignore: ``'level_boxes'``, ``'image_boxes'`` or ``'anchor_shape'``;
            ``None`` takes the style's.
        ignore_thresh: IoU threshold of the ignore mask; ``None`` takes the
            style's (0.5 keras, 0.7 darknet, 0.5 pytorch_yolov3).
    """

    def __init__(self, style: str = 'keras', match: Optional[str] = None,
                 ignore: Optional[str] = None,
                 ignore_thresh: Optional[float] = None) -> None:
        _check_choice('style', style, tuple(STYLE_DEFAULTS))
        default_match, default_ignore, default_thresh = STYLE_DEFAULTS[style]
        self.style = style
        self.match = _check_choice('match', default_match if match is None else match,
                                   MATCH_MODES)
        self.ignore = _check_choice('ignore',
                                    default_ignore if ignore is None else ignore,
                                    IGNORE_MODES)
        thresh = default_thresh if ignore_thresh is None else ignore_thresh
        if isinstance(thresh, bool) or not isinstance(thresh, (int, float)) \
                or not 0.0 <= float(thresh) <= 1.0:
            raise ValueError(f'ignore_thresh must be a number in [0, 1], got {thresh!r}')
        self.ignore_thresh = float(thresh)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(style={self.style!r}, match={self.match!r}, '
                f'ignore={self.ignore!r}, ignore_thresh={self.ignore_thresh})')

    # ------------------------------------------------------------------ assign
    def assign(self, boxes: Tensor, labels: Tensor, box_mask: Tensor,
               anchors: Tensor, strides: Sequence[float],
               grid_sizes: Sequence[Tuple[int, int]], img_size: Tuple[int, int],
               num_classes: int, dense: bool = True) -> List[YOLOv3LevelAssignment]:
        """Positive slots and targets of every level.

        Args:
            boxes: ``[B, M, 4]`` (cx, cy, w, h) normalised to [0, 1] of the
                input (padded, from ``ops.targets.pad_targets``).
            labels: ``[B, M]`` long class ids.
            box_mask: ``[B, M]`` bool, True for real boxes (a box of zero
                width or height should be False: it matches no anchor).
            anchors: ``[L, A, 2]`` anchor (w, h) in input pixels.
            strides: ``L`` strides in input pixels.
            grid_sizes: ``L`` grids ``(H, W)``.
            img_size: network input ``(h, w)`` in pixels.
            num_classes: ``C``.
            dense: also build the ``[B, A, H, W, *]`` target tensors
                (``target_boxes``, ``target_offsets``, ``target_classes``).
                ``YOLOv3Loss`` passes False: it uses the per-box fields, and
                the dense class target alone is as large as the class logits.

        Returns:
            One ``YOLOv3LevelAssignment`` per level.
        """
        if boxes.dim() != 3 or boxes.shape[-1] != 4:
            raise ValueError(f'boxes must be [B, M, 4], got {tuple(boxes.shape)}')
        if labels.shape != boxes.shape[:2] or box_mask.shape != boxes.shape[:2]:
            raise ValueError(
                f'labels and box_mask must be {tuple(boxes.shape[:2])}, got '
                f'{tuple(labels.shape)} and {tuple(box_mask.shape)}')
        if anchors.dim() != 3 or anchors.shape[-1] != 2:
            raise ValueError(f'anchors must be [L, A, 2], got {tuple(anchors.shape)}')
        num_levels, num_anchors = anchors.shape[:2]
        if len(strides) != num_levels or len(grid_sizes) != num_levels:
            raise ValueError(f'strides and grid_sizes need {num_levels} entries, got '
                             f'{len(strides)} and {len(grid_sizes)}')
        dtype, device = boxes.dtype, boxes.device
        anchors = anchors.to(device=device, dtype=dtype)
        img_h, img_w = float(img_size[0]), float(img_size[1])

        if self.match == 'all_levels':
            # Pixels, as keras does (darknet's normalised sizes give the same
            # IoU: it does not change when both axes are rescaled).
            size_px = scale_pairs(boxes[..., 2:4], img_w, img_h)
            iou = wh_iou(size_px, anchors.reshape(-1, 2))           # [B, M, L*A]
            best = iou.argmax(dim=-1)                                # first max wins
            best_level, best_anchor = best // num_anchors, best % num_anchors

        results = []
        for level, (stride, (height, width)) in enumerate(zip(strides, grid_sizes)):
            grid_anchors = anchors[level] / float(stride)            # [A, 2] grid units
            size_grid = scale_pairs(boxes[..., 2:4], width, height)  # [B, M, 2]
            shape_iou = None
            if self.match == 'per_level' or self.ignore == 'anchor_shape':
                # Grid units, as PyTorch-YOLOv3 (anchors / stride).
                shape_iou = wh_iou(size_grid, grid_anchors,
                                   eps=_PER_LEVEL_WH_IOU_EPS)        # [B, M, A]
            if self.match == 'all_levels':
                assigned = box_mask & (best_level == level)
                anchor_index = best_anchor
            else:
                assigned = box_mask
                anchor_index = shape_iou.argmax(dim=-1)
            results.append(self._assign_level(
                boxes, labels, box_mask, assigned, anchor_index, shape_iou,
                num_anchors, int(height), int(width), num_classes, dense))
        return results

    def _assign_level(self, boxes: Tensor, labels: Tensor, box_mask: Tensor,
                      assigned: Tensor, anchor_index: Tensor,
                      shape_iou: Optional[Tensor], num_anchors: int, height: int,
                      width: int, num_classes: int,
                      dense: bool) -> YOLOv3LevelAssignment:
        batch, num_boxes = boxes.shape[:2]
        device, dtype = boxes.device, boxes.dtype
        centre = scale_pairs(boxes[..., :2], width, height)         # [B, M, 2] grid units
        cell = centre.floor().long()
        cell_x = cell[..., 0].clamp(0, width - 1)
        cell_y = cell[..., 1].clamp(0, height - 1)

        num_slots = batch * num_anchors * height * width
        image = torch.arange(batch, device=device)[:, None].expand(batch, num_boxes)
        cell_flat = cell_y * width + cell_x                          # [B, M]
        slot = (image * num_anchors + anchor_index) * (height * width) + cell_flat
        # Unassigned boxes write to one spare slot past the end.
        slot = torch.where(assigned, slot, torch.full_like(slot, num_slots))

        box_index = torch.arange(num_boxes, device=device)[None].expand(batch, num_boxes)
        owner = torch.full((num_slots + 1,), -1, dtype=torch.long, device=device)
        owner = owner.scatter_reduce(0, slot.reshape(-1), box_index.reshape(-1),
                                     reduce='amax', include_self=True)
        box_owner = owner.gather(0, slot.reshape(-1)).view_as(slot)  # [B, M]
        box_held = assigned & (box_owner == box_index)
        owner = owner[:-1].view(batch, num_anchors * height * width)
        pos_flat = owner >= 0
        label = labels.clamp(0, num_classes - 1)
        box_offsets = centre - torch.stack((cell_x, cell_y), -1).to(dtype)

        # Class bits of every assigned box, collisions included (union), kept
        # per box: each assigned box sets its class on its slot owner's row,
        # unassigned boxes write to one spare row past the end.
        owner_row = torch.where(assigned, image * num_boxes + box_owner,
                                torch.full_like(box_owner, batch * num_boxes))
        box_classes = torch.zeros((batch * num_boxes + 1) * num_classes, dtype=dtype,
                                  device=device)
        box_classes = box_classes.scatter(
            0, (owner_row * num_classes + label).reshape(-1),
            torch.ones(batch * num_boxes, dtype=dtype, device=device))
        box_classes = box_classes[:batch * num_boxes * num_classes].view(
            batch, num_boxes, num_classes)

        target_boxes = target_offsets = target_classes = None
        if dense:
            gather_index = owner.clamp(min=0)

            def per_slot(values: Tensor) -> Tensor:
                """``[B, M, K]`` per-box values -> ``[B, A, H, W, K]`` of the
                owners (0 where no owner)."""
                picked = values.gather(1, gather_index[..., None].expand(
                    -1, -1, values.shape[-1]))
                picked = torch.where(pos_flat[..., None], picked,
                                     torch.zeros_like(picked))
                return picked.view(batch, num_anchors, height, width, values.shape[-1])

            target_boxes = per_slot(boxes)
            target_offsets = per_slot(box_offsets)
            target_classes = per_slot(box_classes)

        shape_ignore = torch.zeros(num_slots + 1, dtype=torch.bool, device=device)
        if self.ignore == 'anchor_shape':
            anchors_all = torch.arange(num_anchors, device=device)
            ignore_slot = ((image[..., None] * num_anchors + anchors_all)
                           * (height * width) + cell_flat[..., None])   # [B, M, A]
            hit = box_mask[..., None] & (shape_iou > self.ignore_thresh)
            ignore_slot = torch.where(hit, ignore_slot, torch.full_like(ignore_slot,
                                                                        num_slots))
            shape_ignore = shape_ignore.scatter(
                0, ignore_slot.reshape(-1), torch.ones_like(hit).reshape(-1))
        shape_ignore = shape_ignore[:-1].view(batch, num_anchors, height, width)

        return YOLOv3LevelAssignment(
            pos_mask=pos_flat.view(batch, num_anchors, height, width),
            target_boxes=target_boxes, target_offsets=target_offsets,
            target_classes=target_classes, box_assigned=assigned, box_held=box_held,
            box_anchor=anchor_index, box_cell_x=cell_x, box_cell_y=cell_y,
            shape_ignore=shape_ignore, box_offsets=box_offsets, box_classes=box_classes)

    # ------------------------------------------------------------------ ignore
    def ignore_mask(self, pred_boxes: Tensor, boxes: Tensor, box_mask: Tensor,
                    assignment: YOLOv3LevelAssignment) -> Tensor:
        """Negatives of one level whose objectness loss is dropped.

        Args:
            pred_boxes: ``[B, A, H, W, 4]`` decoded predictions (cx, cy, w, h)
                normalised to the input (detached by the caller).
            boxes: ``[B, M, 4]`` the padded ground-truth boxes, normalised.
            box_mask: ``[B, M]`` bool, real boxes.
            assignment: this level's ``assign`` result.

        Returns:
            ``[B, A, H, W]`` bool. It may include positive slots; the loss
            counts positives whatever this says.
        """
        if self.ignore == 'anchor_shape':
            return assignment.shape_ignore
        if self.ignore == 'level_boxes':
            candidates = assignment.box_held
            ignored_at = torch.ge         # keras keeps best_iou < thresh
        else:
            candidates = box_mask
            ignored_at = torch.gt         # darknet drops best_iou > thresh
        batch = pred_boxes.shape[0]
        grid_shape = pred_boxes.shape[1:4]
        dtype = pred_boxes.dtype
        pred_xyxy = cxcywh_to_xyxy(pred_boxes.reshape(batch, -1, 4))
        truth = cxcywh_to_xyxy(boxes.to(dtype))
        # A box that is no candidate becomes an empty box off the image: its
        # IoU with any prediction is 0 (or NaN for an empty prediction), which
        # ignores nothing beyond what 0 does (see ``ignored`` below).
        truth = torch.where(candidates[..., None], truth, torch.full_like(truth, -4.0))
        # The references take the max IoU over the boxes, 0 when there is
        # none or it is NaN (a degenerate prediction). "max >= thresh" is
        # "0 >= thresh, or some IoU >= thresh" (NaN compares False).
        ignored = ignored_at(pred_xyxy.new_zeros(()), self.ignore_thresh)
        if torch.compiler.is_compiling():
            # One [B, P, M] expression, which the compiler fuses into one
            # kernel; the eager loop's out= writes into buffer slices would
            # break the graph.
            iou = pairwise_box_iou(pred_xyxy, truth, eps=0.0)
            hits = ignored_at(iou, self.ignore_thresh).any(dim=-1)
            return (hits | ignored).view(batch, *grid_shape)
        # Contiguous [B, P, 1] planes of the predictions, [B, 1, M] of the
        # truths: each IoU below is an outer operation over points x boxes.
        pred_x1, pred_y1, pred_x2, pred_y2 = (
            plane.contiguous().unsqueeze(-1) for plane in pred_xyxy.unbind(-1))
        truth_x1, truth_y1, truth_x2, truth_y2 = truth.unsqueeze(1).unbind(-1)
        pred_area = ((pred_x2 - pred_x1).clamp(min=0)
                     * (pred_y2 - pred_y1).clamp(min=0))
        truth_area = ((truth_x2 - truth_x1).clamp(min=0)
                      * (truth_y2 - truth_y1).clamp(min=0))

        # The IoU is taken a block of points x a chunk of boxes at a time and
        # OR-ed: same result in any order, memory bounded by the block.
        num_points, num_boxes = pred_x1.shape[1], boxes.shape[1]
        ignored = ignored.expand(batch, num_points).clone()
        if pred_boxes.device.type == 'cpu':
            # One box per step over cache-sized blocks of points.
            block = max(1, min(num_points, _IGNORE_BLOCK_ELEMENTS // max(batch, 1)))
            chunk = 1
        else:
            # Accelerators: every point and many boxes per launch.
            block = max(num_points, 1)
            chunk = max(1, min(num_boxes, _IGNORE_DEVICE_CHUNK_ELEMENTS
                               // max(batch * num_points, 1)))
        # The temporaries are written in place (out=) into buffers made once:
        # on the CPU fresh large tensors per step would each be new pages
        # from the OS, and a small block stays in the cache across the steps.
        buffers = [pred_x1.new_empty((batch, block, chunk)) for _ in range(3)]
        hit_buffer = ignored.new_empty((batch, block, chunk))
        for start in range(0, num_points, block):
            points = slice(start, start + block)
            x1, y1 = pred_x1[:, points], pred_y1[:, points]
            x2, y2 = pred_x2[:, points], pred_y2[:, points]
            area, block_ignored = pred_area[:, points], ignored[:, points]
            for first_box in range(0, num_boxes, chunk):
                part = slice(first_box, first_box + chunk)
                size = (x1.shape[1], min(chunk, num_boxes - first_box))
                first, second, third = (buffer[:, :size[0], :size[1]]
                                        for buffer in buffers)
                hit = hit_buffer[:, :size[0], :size[1]]
                # Intersection width, height, area: as ops.boxes.pairwise_box_iou.
                torch.minimum(x2, truth_x2[..., part], out=first)
                torch.maximum(x1, truth_x1[..., part], out=second)
                inter = first.sub_(second).clamp_(min=0)
                torch.minimum(y2, truth_y2[..., part], out=second)
                torch.maximum(y1, truth_y1[..., part], out=third)
                inter.mul_(second.sub_(third).clamp_(min=0))
                union = torch.add(area, truth_area[..., part], out=second).sub_(inter)
                # No eps: keras' and darknet's IoU is intersection / union exactly.
                iou = inter.div_(union)
                hit = ignored_at(iou, self.ignore_thresh, out=hit)
                # One box per step (the CPU path): the hits are the column
                # itself, and any() would allocate and fill a result per step.
                block_ignored |= hit[..., 0] if chunk == 1 else hit.any(dim=-1)
        return ignored.view(batch, *grid_shape)

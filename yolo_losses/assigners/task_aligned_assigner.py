"""Task-aligned assigner (TOOD), as ultralytics 8.4.190 runs it for YOLOv8.

For every ground-truth box ``g`` and anchor point ``p`` of one image:

- ``p`` is a *candidate* of ``g`` when its centre lies strictly inside ``g``
  (by more than 1e-9). With ``enlarge_small_gt`` (ultralytics 8.4.190) a box
  side shorter than ``min_side`` (default: the second stride) is first
  widened to ``min_side`` about the box centre, for this test only;
- alignment metric ``t = s**alpha * u**beta`` on candidates (0 elsewhere),
  where ``s`` is the predicted probability of ``g``'s class at ``p`` and ``u``
  the CIoU of ``g`` with ``p``'s predicted box, clamped at 0;
- the ``topk`` points of largest ``t`` among all points that are candidates
  become ``g``'s positives (``torch.topk`` breaks ties);
- a point that is positive for several boxes keeps only the box of highest
  ``u`` over all boxes (first such box on ties; ultralytics' rule, which may
  pick a box for which the point is only a candidate);
- with ``topk2`` (ultralytics 8.4's one-to-one assignment of YOLO26, e.g.
  ``topk=7, topk2=1``), each box then keeps only the ``topk2`` of its
  remaining positives of largest ``t`` (``torch.topk`` over all points of
  ``t`` masked to those positives, as ultralytics; ``None`` or ``topk2 ==
  topk``: no such step);
- the soft class target of a positive point is ``t * max_p(u) / (max_p(t) +
  eps)`` with the maxima over ``g``'s positives, for ``g``'s class.

Everything is vectorised over the batch on padded targets ``[B, M]``: the
largest tensors are ``[B, M, N]`` (boxes x points), no class factor, and
nothing synchronises with the device.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor, nn

from ..ops.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from ..registry import TASK_UTILS
from ..validation import check_last_dim, check_ndim, check_tensor

#: Margin by which a point must lie inside a box to be its candidate
#: (ultralytics' ``select_candidates_in_gts`` default, kept apart from
#: ``eps`` so that changing one does not move the other).
INSIDE_MARGIN = 1e-9

#: ``eps`` of ultralytics' ``bbox_iou`` (CIoU of the alignment metric).
CIOU_EPS = 1e-7

#: On a CPU the assigner's [B, M, N] work runs in chunks of whole images of
#: about this many box x point pairs (2 MiB per float32 temporary).
CPU_CHUNK_ELEMENTS = 1 << 19


class TaskAlignedAssignment(NamedTuple):
    """Per-point result of :class:`TaskAlignedAssigner`.

    labels: ``[B, N]`` long, class of the assigned box; ``num_classes`` on
        background points.
    boxes: ``[B, N, 4]`` xyxy of the assigned box, unit of ``gt_bboxes``;
        zeros on background points.
    scores: ``[B, N, C]`` soft class targets (normalised alignment metric in
        the assigned class's channel, 0 elsewhere and on background).
    fg_mask: ``[B, N]`` bool, True on positive points.
    gt_index: ``[B, N]`` long, slot of the assigned box in ``[0, M)``
        (0 on background points).
    """
    labels: Tensor
    boxes: Tensor
    scores: Tensor
    fg_mask: Tensor
    gt_index: Tensor


def pairwise_ciou(gt_bboxes: Tensor, pred_bboxes: Tensor, eps: float = CIOU_EPS) -> Tensor:
    """CIoU of every ground-truth box with every predicted box of one image.

    ultralytics ``bbox_iou(..., xywh=False, CIoU=True)`` semantics (``eps``
    added to the heights, the union and the enclosing diagonal), evaluated in
    the same operation order, in place where it can be, so that the
    ``[B, M, N]`` temporaries stay few. For use without autograd.

    Args:
        gt_bboxes: ``[B, M, 4]`` xyxy.
        pred_bboxes: ``[B, N, 4]`` xyxy, same unit.

    Returns:
        ``[B, M, N]`` CIoU in [-1.5, 1] (not clamped).
    """
    gx1, gy1, gx2, gy2 = gt_bboxes.unsqueeze(2).unbind(-1)     # [B, M, 1]
    px1, py1, px2, py2 = pred_bboxes.unsqueeze(1).unbind(-1)   # [B, 1, N]
    gw, gh = gx2 - gx1, gy2 - gy1 + eps
    pw, ph = px2 - px1, py2 - py1 + eps

    # Four [B, M, N] buffers, every step written in place or through
    # ``out=``: on a CPU each fresh tensor of this size costs page faults
    # about as much as the arithmetic. The order of operations (and so the
    # round-off) is ultralytics'.
    iou = torch.minimum(gx2, px2)
    scratch = torch.maximum(gx1, px1)
    iou.sub_(scratch).clamp_(min=0)
    height = torch.minimum(gy2, py2)
    torch.maximum(gy1, py1, out=scratch)
    height.sub_(scratch).clamp_(min=0)
    iou.mul_(height)                                           # intersection
    union = torch.add(gw * gh, pw * ph, out=height)
    iou.div_(union.sub_(iou).add_(eps))

    diagonal = torch.maximum(gx2, px2, out=height)
    diagonal.sub_(torch.minimum(gx1, px1, out=scratch)).pow_(2)
    penalty = torch.maximum(gy2, py2)
    penalty.sub_(torch.minimum(gy1, py1, out=scratch)).pow_(2)
    diagonal.add_(penalty).add_(eps)
    torch.sub(px1 + px2, gx1, out=penalty).sub_(gx2).pow_(2)   # centre distance, x
    torch.sub(py1 + py2, gy1, out=scratch).sub_(gy2).pow_(2)
    penalty.add_(scratch).div_(4).div_(diagonal)

    aspect = torch.sub((pw / ph).atan(), (gw / gh).atan(), out=diagonal)
    aspect.pow_(2).mul_(4 / math.pi ** 2)
    # trade-off aspect / (1 - iou + aspect + eps), times the aspect term
    trade_off = torch.neg(iou, out=scratch).add_(1).add_(aspect).add_(eps)
    torch.div(aspect, trade_off, out=trade_off).mul_(aspect)
    penalty.add_(trade_off)
    return iou.sub_(penalty)


def _power(values: Tensor, exponent: float) -> Tensor:
    """``values ** exponent``; a small integer exponent (ultralytics' beta is
    6) by repeated squaring, several times faster on a CPU than the generic
    ``pow`` and equal to float round-off (a few ulp)."""
    if float(exponent).is_integer() and 1 <= exponent <= 16:
        exponent = int(exponent)
        result, square = None, values
        while exponent:
            if exponent & 1:
                result = square.clone() if result is None else result.mul_(square)
            exponent >>= 1
            if exponent:
                square = square * square
        return result
    return values.pow(exponent)


def enlarge_small_sides(gt_bboxes: Tensor, gt_mask: Tensor, min_side: float) -> Tensor:
    """Widen sides shorter than ``min_side`` to ``min_side`` about the centre.

    ``[B, M, 4]`` xyxy -> ``[B, M, 4]`` xyxy; boxes where ``gt_mask`` is
    False are converted but not widened (ultralytics 8.4.190 round-trips every
    box through (cx, cy, w, h), which the round-off of the result follows).
    """
    centre_size = xyxy_to_cxcywh(gt_bboxes)
    sizes = centre_size[..., 2:4]
    widen = (sizes < min_side) & gt_mask.unsqueeze(-1)
    sizes = torch.where(widen, torch.full_like(sizes, min_side), sizes)
    return cxcywh_to_xyxy(torch.cat((centre_size[..., :2], sizes), dim=-1))


@TASK_UTILS.register_module()
class TaskAlignedAssigner(nn.Module):
    """Task-aligned assignment of anchor points to ground-truth boxes.

    Args:
        topk: positives per box (at most the number of points).
        alpha: exponent of the class score in the alignment metric.
        beta: exponent of the CIoU in the alignment metric.
        eps: added to the largest metric of a box when normalising.
        enlarge_small_gt: widen ground-truth sides shorter than ``min_side``
            when picking candidates (ultralytics 8.4.190, the default);
            False gives the classic rule (centre strictly inside the box).
        strides: input pixels per cell of each level, increasing; only used
            for the default ``min_side``. ``YOLOv8Loss`` passes its own.
        min_side: side (unit of the boxes, pixels in ``YOLOv8Loss``) below
            which ground-truth sides are widened; default ``strides[1]``, or
            ``strides[0]`` with one level (ultralytics).
        topk2: after a point claimed by several boxes keeps the box of highest
            CIoU, each box keeps only its ``topk2`` best positives by
            alignment metric (ultralytics' ``topk2``; YOLO26's one-to-one
            branch uses ``topk=7, topk2=1``). ``None``: ``topk`` (no such
            step). At most the number of points is used.
    """

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9, enlarge_small_gt: bool = True,
                 strides: Sequence[float] = (8, 16, 32),
                 min_side: Optional[float] = None,
                 topk2: Optional[int] = None) -> None:
        super().__init__()
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f'topk must be a positive int, got {topk!r}')
        if topk2 is not None and (isinstance(topk2, bool) or not isinstance(topk2, int)
                                  or topk2 < 1):
            raise ValueError(f'topk2 must be a positive int or None, got {topk2!r}')
        for name, value in (('alpha', alpha), ('beta', beta), ('eps', eps)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f'{name} must be a finite number >= 0, got {value!r}')
        if isinstance(strides, (str, bytes)) or not isinstance(strides, Sequence) \
                or not strides:
            raise TypeError(f'strides must be a non-empty sequence of numbers, '
                            f'got {strides!r}')
        strides = tuple(float(s) for s in strides)
        if any(not math.isfinite(s) or s <= 0 for s in strides):
            raise ValueError(f'strides must be finite positive numbers, got {strides!r}')
        if min_side is None:
            min_side = strides[1] if len(strides) > 1 else strides[0]
        elif isinstance(min_side, bool) or not isinstance(min_side, (int, float)) \
                or not math.isfinite(min_side) or min_side < 0:
            raise ValueError(f'min_side must be a finite number >= 0, got {min_side!r}')
        self.topk = topk
        # ultralytics: ``topk2 or topk``; the extra step runs only when the
        # two differ.
        self.topk2 = topk if topk2 is None else topk2
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)
        self.enlarge_small_gt = bool(enlarge_small_gt)
        self.strides = strides
        self.min_side = float(min_side)

    def extra_repr(self) -> str:
        return (f'topk={self.topk}, topk2={self.topk2}, alpha={self.alpha}, beta={self.beta}, '
                f'eps={self.eps}, enlarge_small_gt={self.enlarge_small_gt}, '
                f'min_side={self.min_side}')

    @torch.no_grad()
    def forward(self, pred_scores: Tensor, pred_bboxes: Tensor, points: Tensor,
                gt_labels: Tensor, gt_bboxes: Tensor, gt_mask: Tensor, *,
                score_logits: bool = False) -> TaskAlignedAssignment:
        """Assign every point of every image.

        Args:
            pred_scores: ``[B, N, C]`` predicted class probabilities (after
                the sigmoid), detached.
            pred_bboxes: ``[B, N, 4]`` predicted xyxy boxes.
            points: ``[N, 2]`` anchor points ``(x, y)``, unit of the boxes.
            gt_labels: ``[B, M]`` integer class ids (any value where padded).
            gt_bboxes: ``[B, M, 4]`` ground-truth xyxy boxes (padding must be
                finite).
            gt_mask: ``[B, M]`` bool, True for real boxes.
            score_logits: ``pred_scores`` are logits; the sigmoid is then
                applied to the ``[B, M, N]`` scores of each box's class only
                (the same numbers as the sigmoid of all ``[B, N, C]``, for
                fewer elements when M < C).

        Returns:
            :class:`TaskAlignedAssignment`, computed in float32 (float64 when
            the predictions are float64).
        """
        self._check_inputs(pred_scores, pred_bboxes, points, gt_labels, gt_bboxes, gt_mask)
        dtype = torch.float64 if pred_bboxes.dtype == torch.float64 else torch.float32
        device = pred_scores.device
        with torch.autocast(device_type=device.type, enabled=False):
            return self._assign(pred_scores.to(dtype), pred_bboxes.to(dtype),
                                points.to(dtype), gt_labels.long(), gt_bboxes.to(dtype),
                                gt_mask.bool(), score_logits)

    @staticmethod
    def _check_inputs(pred_scores, pred_bboxes, points, gt_labels, gt_bboxes, gt_mask) -> None:
        for name, value in (('pred_scores', pred_scores), ('pred_bboxes', pred_bboxes),
                            ('points', points), ('gt_bboxes', gt_bboxes)):
            check_tensor(name, value, floating=True)
        check_tensor('gt_labels', gt_labels)
        check_tensor('gt_mask', gt_mask)
        check_ndim('pred_scores', pred_scores, (3,))
        check_ndim('pred_bboxes', pred_bboxes, (3,))
        check_last_dim('pred_bboxes', pred_bboxes, 4)
        check_ndim('points', points, (2,))
        check_last_dim('points', points, 2)
        check_ndim('gt_bboxes', gt_bboxes, (3,))
        check_last_dim('gt_bboxes', gt_bboxes, 4)
        batch, num_points = pred_scores.shape[:2]
        if pred_bboxes.shape[:2] != (batch, num_points) or points.shape[0] != num_points:
            raise ValueError(
                f'pred_bboxes [B, N, 4] and points [N, 2] must match pred_scores '
                f'[B, N, C] = {tuple(pred_scores.shape)}, got {tuple(pred_bboxes.shape)} '
                f'and {tuple(points.shape)}')
        boxes_shape = tuple(gt_bboxes.shape[:2])
        if gt_bboxes.shape[0] != batch or tuple(gt_labels.shape) != boxes_shape \
                or tuple(gt_mask.shape) != boxes_shape:
            raise ValueError(
                f'gt_labels and gt_mask must be [B, M] and gt_bboxes [B, M, 4] with '
                f'B={batch}, got {tuple(gt_labels.shape)}, {tuple(gt_mask.shape)} and '
                f'{tuple(gt_bboxes.shape)}')

    def _assign(self, pred_scores: Tensor, pred_bboxes: Tensor, points: Tensor,
                gt_labels: Tensor, gt_bboxes: Tensor, gt_mask: Tensor,
                score_logits: bool = False) -> TaskAlignedAssignment:
        batch, num_points, num_classes = pred_scores.shape
        num_boxes = gt_bboxes.shape[1]
        if num_boxes == 0:  # a static shape, not a value: no sync
            return TaskAlignedAssignment(
                labels=torch.full((batch, num_points), num_classes, dtype=torch.long,
                                  device=pred_scores.device),
                boxes=pred_bboxes.new_zeros(batch, num_points, 4),
                scores=torch.zeros_like(pred_scores),
                fg_mask=torch.zeros(batch, num_points, dtype=torch.bool,
                                    device=pred_scores.device),
                gt_index=torch.zeros(batch, num_points, dtype=torch.long,
                                     device=pred_scores.device))
        gt_labels = gt_labels.clamp(0, num_classes - 1)

        # On a CPU the [B, M, N] work runs a few images at a time so that its
        # temporaries stay in the cache and are not fresh pages at every call
        # (about a third faster at B=64, M=64); elsewhere the whole batch runs
        # at once (fewer launches). Images are independent: same numbers.
        chunk = batch
        if pred_scores.device.type == 'cpu':
            chunk = max(1, CPU_CHUNK_ELEMENTS // max(1, num_boxes * num_points))
        parts = [self._assign_images(pred_scores[start:start + chunk],
                                     pred_bboxes[start:start + chunk], points,
                                     gt_labels[start:start + chunk],
                                     gt_bboxes[start:start + chunk],
                                     gt_mask[start:start + chunk], score_logits)
                 for start in range(0, batch, chunk)]
        labels, boxes, fg_mask, gt_index, point_score = (
            torch.cat(field) if len(parts) > 1 else field[0] for field in zip(*parts))

        # Written straight into the assigned class's channel (one pass over
        # [B, N, C]); 0 on background points.
        scores = torch.zeros_like(pred_scores).scatter_(
            -1, labels.clamp(max=num_classes - 1).unsqueeze(-1),
            (point_score * fg_mask).unsqueeze(-1))
        return TaskAlignedAssignment(labels, boxes, scores, fg_mask, gt_index)

    def _assign_images(self, pred_scores: Tensor, pred_bboxes: Tensor, points: Tensor,
                       gt_labels: Tensor, gt_bboxes: Tensor, gt_mask: Tensor,
                       score_logits: bool):
        """The [B, M, N] part of the assignment (labels already clamped):
        per point its label, box, foreground flag, box slot and normalised
        metric (before the background mask)."""
        batch, num_points, num_classes = pred_scores.shape
        num_boxes = gt_bboxes.shape[1]


        # On a CPU the [B, M, N] passes dominate: masks are applied with
        # ``masked_fill_`` (a float times bool product first converts the mask
        # to a float copy) and maxima over the boxes use ``max(dim)``, which
        # is faster than ``argmax`` there and has the same first-index rule.
        candidates = self._candidates(points, gt_bboxes, gt_mask)        # [B, M, N]
        outside = candidates.logical_not()
        overlaps = pairwise_ciou(gt_bboxes, pred_bboxes).clamp_(min=0)
        overlaps.masked_fill_(outside, 0)
        # The predicted score of each box's own class at every point: a
        # gather through an expanded (stride-0) index, never one-hot x C.
        class_index = gt_labels.unsqueeze(-1).expand(batch, num_boxes, num_points)
        box_scores = pred_scores.transpose(1, 2).gather(1, class_index)
        if score_logits:
            box_scores.sigmoid_()
        metric = box_scores.pow_(self.alpha).mul_(_power(overlaps, self.beta))
        metric.masked_fill_(outside, 0)
        del box_scores, outside

        topk = min(self.topk, num_points)
        top_index = metric.topk(topk, dim=-1, largest=True).indices
        positive = torch.zeros_like(candidates).scatter_(-1, top_index, True)
        positive &= candidates
        del top_index, candidates

        # A point claimed by several boxes keeps the one of highest overlap.
        claimed = positive.sum(1, dtype=torch.int32)                     # [B, N]
        best_box = overlaps.max(1).indices                               # [B, N]
        box_slots = torch.arange(num_boxes, device=best_box.device).view(1, -1, 1)
        positive = torch.where((claimed > 1).unsqueeze(1),
                               box_slots == best_box.unsqueeze(1), positive)
        del claimed, best_box

        if self.topk2 != self.topk:
            # Each box keeps its topk2 best remaining positives by metric
            # (a [B, M, topk2] index, no data-dependent shape).
            kept_metric = metric.masked_fill(positive.logical_not(), 0)
            keep_index = kept_metric.topk(min(self.topk2, num_points), dim=-1).indices
            del kept_metric
            positive &= torch.zeros_like(positive).scatter_(-1, keep_index, True)
            del keep_index

        # At most one positive box per point is left: its slot (0 if none).
        fg_mask, gt_index = positive.max(1)
        labels = gt_labels.gather(1, gt_index)
        boxes = gt_bboxes.gather(1, gt_index.unsqueeze(-1).expand(batch, num_points, 4))
        labels = torch.where(fg_mask, labels, torch.full_like(labels, num_classes))
        boxes = boxes * fg_mask.unsqueeze(-1)

        # Soft targets: the metric rescaled so that each box's best positive
        # gets that box's best positive overlap.
        negative = positive.logical_not_()
        metric.masked_fill_(negative, 0)
        overlaps.masked_fill_(negative, 0)
        del positive, negative
        best_metric = metric.amax(-1, keepdim=True)
        best_overlap = overlaps.amax(-1, keepdim=True)
        del overlaps
        point_score = metric.mul_(best_overlap).div_(best_metric + self.eps).amax(1)
        return labels, boxes, fg_mask, gt_index, point_score

    def _candidates(self, points: Tensor, gt_bboxes: Tensor, gt_mask: Tensor) -> Tensor:
        """``[B, M, N]`` bool: point strictly inside the (widened) real box."""
        if self.enlarge_small_gt:
            gt_bboxes = enlarge_small_sides(gt_bboxes, gt_mask, self.min_side)
        x, y = points[:, 0], points[:, 1]                                # [N]
        x1, y1, x2, y2 = gt_bboxes.unsqueeze(-1).unbind(-2)              # [B, M, 1]
        # One float and one bool buffer for the four tests (fresh [B, M, N]
        # tensors cost page faults on a CPU).
        distance = torch.sub(x, x1)
        inside = distance > INSIDE_MARGIN
        test = torch.empty_like(inside)
        for low, high in ((y, y1), (x2, x), (y2, y)):
            torch.sub(low, high, out=distance)
            inside &= torch.gt(distance, INSIDE_MARGIN, out=test)
        inside &= gt_mask.unsqueeze(-1)
        return inside

"""Batched, class-aware non-maximum suppression in plain PyTorch.

torchvision's compiled ``nms`` is not available here (and mmcv-lite has no
``mmcv.ops``), so this is written with tensor operations only and runs on
any device.

Greedy NMS (sort by score; keep a box unless a kept box of the same class
ranked above it overlaps it with IoU > ``iou_thr``) is computed exactly and
for all images at once: the ``[B, K, K]`` "suppresses" mask is built in one
go, then the candidates are visited in rank order, each visit one ``[B, K]``
operation (a kept candidate removes the later ones it overlaps). The
visits stop after the largest number of valid candidates of any image,
which costs one synchronisation with the device: this is inference code,
not the training step. (A fixed-point iteration over the whole mask,
Cluster-NMS, needs as many ``[B, K, K]`` rounds as the longest chain of
suppressions, which made validation several times slower.)

Outputs have a fixed size (``max_per_img`` slots per image, with a mask of
the filled ones) so callers choose when to cut them.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor


#: The exact greedy pass first runs on the top ``PREFIX_PER_OUTPUT_SLOT *
#: max_per_img`` candidates of each image, which usually keep enough.
PREFIX_PER_OUTPUT_SLOT = 4


class NMSResult(NamedTuple):
    """Detections of every image, padded to ``max_per_img`` slots.

    boxes: ``[B, M, 4]`` xyxy (0 in empty slots).
    scores: ``[B, M]`` (0 in empty slots).
    labels: ``[B, M]`` long (0 in empty slots).
    indices: ``[B, M]`` long, the candidate each slot came from (0 in empty
        slots); for ``multiclass_nms``, the box index ``n`` of ``[B, N, 4]``.
    mask: ``[B, M]`` bool, True for filled slots, which come first, by
        decreasing score.
    """
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    indices: Tensor
    mask: Tensor


def _check_thresholds(iou_thr: float, max_per_img: int) -> None:
    if isinstance(iou_thr, bool) or not isinstance(iou_thr, (int, float)) \
            or not 0.0 <= iou_thr <= 1.0:
        raise ValueError(f'iou_thr must be a number in [0, 1], got {iou_thr!r}')
    if isinstance(max_per_img, bool) or not isinstance(max_per_img, int) \
            or max_per_img < 1:
        raise ValueError(f'max_per_img must be a positive int, got {max_per_img!r}')


def _iou_above(boxes: Tensor, iou_thr: float) -> Tensor:
    """``[B, K, K]`` bool: IoU of each pair of ``[B, K, 4]`` xyxy boxes
    above ``iou_thr``. The IoU of ``ops.boxes.pairwise_box_iou`` (no eps;
    0/0 of two empty boxes is NaN, which is never above), computed on
    ``[B, K, 1]`` x ``[B, 1, K]`` coordinate planes in place: three
    ``[B, K, K]`` buffers instead of a dozen, several times faster."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    inter = torch.minimum(x2[:, :, None], x2[:, None, :])
    inter.sub_(torch.maximum(x1[:, :, None], x1[:, None, :])).clamp_(min=0)
    height = torch.minimum(y2[:, :, None], y2[:, None, :])
    height.sub_(torch.maximum(y1[:, :, None], y1[:, None, :])).clamp_(min=0)
    inter.mul_(height)
    union = torch.add(area[:, :, None], area[:, None, :], out=height).sub_(inter)
    return inter.div_(union) > iou_thr


def _greedy_keep(boxes: Tensor, labels: Tensor, valid: Tensor, iou_thr: float,
                 class_agnostic: bool) -> Tensor:
    """``[B, K]`` bool: greedy NMS of candidates already sorted by rank
    (invalid ones last)."""
    batch, num = valid.shape
    suppresses = _iou_above(boxes, iou_thr)
    suppresses &= torch.ones(num, num, dtype=torch.bool, device=boxes.device).triu(1)
    suppresses &= valid[:, :, None]
    if not class_agnostic:
        suppresses &= labels[:, :, None] == labels[:, None, :]
    # No image has an invalid candidate before rank ``visits``; a
    # candidate's state is final once every higher rank has been visited.
    keep = valid.clone()
    visits = int(valid.sum(dim=1).max()) if batch and num else 0
    for rank in range(visits):
        keep &= ~(suppresses[:, rank] & keep[:, rank, None])
    return keep


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_thr: float,
                max_per_img: int, valid: Optional[Tensor] = None,
                class_agnostic: bool = False) -> NMSResult:
    """Greedy NMS per image and class, all images at once.

    Args:
        boxes: ``[B, K, 4]`` xyxy candidates (any unit).
        scores: ``[B, K]``; higher is better. Ties keep the candidate order.
        labels: ``[B, K]`` integer class of each candidate; boxes of
            different classes never suppress each other unless
            ``class_agnostic``.
        iou_thr: a box is suppressed by a kept, higher-ranked box whose IoU
            with it is strictly greater than this.
        max_per_img: slots of the output per image.
        valid: ``[B, K]`` bool, candidates to consider (default: all).

    Returns:
        ``NMSResult`` with ``M = max_per_img`` slots, ``indices`` into ``K``.
    """
    _check_thresholds(iou_thr, max_per_img)
    if not isinstance(boxes, Tensor) or boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f'boxes must be a [B, K, 4] tensor, got '
                         f'{getattr(boxes, "shape", type(boxes).__name__)}')
    batch, num = boxes.shape[:2]
    for name, value in (('scores', scores), ('labels', labels), ('valid', valid)):
        if value is not None and (not isinstance(value, Tensor)
                                  or tuple(value.shape) != (batch, num)):
            raise ValueError(f'{name} must be a [B, K] = [{batch}, {num}] tensor, '
                             f'got {getattr(value, "shape", type(value).__name__)}')
    device = boxes.device
    if valid is None:
        valid = torch.ones(batch, num, dtype=torch.bool, device=device)
    valid = valid.to(torch.bool)

    # invalid candidates sort last; the stable sort keeps ties in input order
    ranking = torch.where(valid, scores.float(), scores.new_full((), float('-inf'),
                                                                 dtype=torch.float32))
    order = ranking.sort(dim=1, descending=True, stable=True).indices
    boxes_sorted = boxes.float().gather(1, order[..., None].expand(-1, -1, 4))
    labels_sorted = labels.gather(1, order)
    valid_sorted = valid.gather(1, order)
    scores_sorted = scores.gather(1, order)

    # Greedy decisions about the first T ranks depend on those ranks only.
    # So a prefix in which every image already keeps ``max_per_img``
    # candidates (or holds all its valid ones) gives the exact output at
    # a fraction of the [B, K, K] cost; otherwise the whole list is run.
    prefix = min(num, PREFIX_PER_OUTPUT_SLOT * max_per_img)
    keep = None
    if prefix < num:
        keep_prefix = _greedy_keep(boxes_sorted[:, :prefix], labels_sorted[:, :prefix],
                                   valid_sorted[:, :prefix], iou_thr, class_agnostic)
        enough = (keep_prefix.sum(dim=1) >= max_per_img) | ~valid_sorted[:, prefix:].any(dim=1)
        if bool(enough.all()):
            keep = torch.cat((keep_prefix, keep_prefix.new_zeros(batch, num - prefix)), 1)
    if keep is None:
        keep = _greedy_keep(boxes_sorted, labels_sorted, valid_sorted, iou_thr,
                            class_agnostic)

    # kept candidates first, in score order (their sorted position)
    positions = torch.arange(num, device=device).expand(batch, num)
    slot_order = torch.where(keep, positions, positions + num).argsort(dim=1)
    slots = min(max_per_img, num)
    picked = slot_order[:, :slots]
    mask = keep.gather(1, picked)
    out_boxes = boxes_sorted.gather(1, picked[..., None].expand(-1, -1, 4))
    out_scores = scores_sorted.gather(1, picked)
    out_labels = labels_sorted.gather(1, picked)
    out_indices = order.gather(1, picked)

    out_boxes = torch.where(mask[..., None], out_boxes, out_boxes.new_zeros(()))
    out_scores = torch.where(mask, out_scores, out_scores.new_zeros(()))
    out_labels = torch.where(mask, out_labels, out_labels.new_zeros(()))
    out_indices = torch.where(mask, out_indices, out_indices.new_zeros(()))
    if slots < max_per_img:
        pad = max_per_img - slots
        out_boxes = torch.cat((out_boxes, out_boxes.new_zeros(batch, pad, 4)), 1)
        out_scores = torch.cat((out_scores, out_scores.new_zeros(batch, pad)), 1)
        out_labels = torch.cat((out_labels, out_labels.new_zeros(batch, pad)), 1)
        out_indices = torch.cat((out_indices, out_indices.new_zeros(batch, pad)), 1)
        mask = torch.cat((mask, mask.new_zeros(batch, pad)), 1)
    return NMSResult(out_boxes.to(boxes.dtype), out_scores, out_labels.long(),
                     out_indices, mask)


def multiclass_nms(boxes: Tensor, scores: Tensor, score_thr: float, iou_thr: float,
                   max_per_img: int, nms_pre: int = 1000, multi_label: bool = True,
                   class_agnostic: bool = False) -> NMSResult:
    """Candidates from per-class scores, then ``batched_nms``.

    Args:
        boxes: ``[B, N, 4]`` xyxy, one box per prediction.
        scores: ``[B, N, C]`` class scores in [0, 1] (for YOLOv3/v5,
            objectness times class probability).
        score_thr: candidates need a score strictly above this.
        iou_thr, max_per_img, class_agnostic: as ``batched_nms``.
        nms_pre: at most this many candidates per image, the highest scores
            (ties in index order), enter NMS.
        multi_label: every (box, class) pair above ``score_thr`` is a
            candidate (yolov5/ultralytics validation); False: only each
            box's best class.

    Returns:
        ``NMSResult`` whose ``indices`` are box indices into ``N``.
    """
    if not isinstance(scores, Tensor) or scores.dim() != 3 \
            or not isinstance(boxes, Tensor) or boxes.dim() != 3 \
            or boxes.shape[-1] != 4 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f'boxes must be [B, N, 4] and scores [B, N, C] with the same B, N; got '
            f'{getattr(boxes, "shape", None)} and {getattr(scores, "shape", None)}')
    if isinstance(score_thr, bool) or not isinstance(score_thr, (int, float)):
        raise ValueError(f'score_thr must be a number, got {score_thr!r}')
    if isinstance(nms_pre, bool) or not isinstance(nms_pre, int) or nms_pre < 1:
        raise ValueError(f'nms_pre must be a positive int, got {nms_pre!r}')
    _check_thresholds(iou_thr, max_per_img)
    batch, num, num_classes = scores.shape
    if multi_label:
        flat_scores = scores.reshape(batch, num * num_classes)
        flat_labels = torch.arange(num * num_classes, device=scores.device) % num_classes
        flat_labels = flat_labels.expand(batch, -1)
        flat_boxes_index = torch.arange(num * num_classes,
                                        device=scores.device) // num_classes
        flat_boxes_index = flat_boxes_index.expand(batch, -1)
    else:
        flat_scores, flat_labels = scores.max(dim=2)
        flat_boxes_index = torch.arange(num, device=scores.device).expand(batch, -1)
    count = min(nms_pre, flat_scores.shape[1])
    ranking = torch.where(flat_scores > score_thr, flat_scores.float(),
                          flat_scores.new_full((), float('-inf'), dtype=torch.float32))
    top = ranking.topk(count, dim=1, sorted=False).indices
    # index order for the stable sort inside batched_nms (deterministic ties)
    top = top.sort(dim=1).values
    cand_scores = flat_scores.gather(1, top)
    cand_labels = flat_labels.gather(1, top)
    cand_index = flat_boxes_index.gather(1, top)
    cand_boxes = boxes.gather(1, cand_index[..., None].expand(-1, -1, 4))
    result = batched_nms(cand_boxes, cand_scores, cand_labels, iou_thr, max_per_img,
                         valid=cand_scores > score_thr, class_agnostic=class_agnostic)
    if count == 0:  # no predictions at all: every slot is empty
        return result
    box_index = cand_index.gather(1, result.indices)
    box_index = torch.where(result.mask, box_index, box_index.new_zeros(()))
    return result._replace(indices=box_index)

"""The aligned IoU family: one similarity per pair of boxes.

``aligned_iou(pred, target, mode, style)`` compares box ``i`` of ``pred`` with
box ``i`` of ``target`` (no pairwise matrix; that is
``ops.boxes.pairwise_box_iou``). Boxes are xyxy ``(x1, y1, x2, y2)`` in any
unit shared by both operands, with any leading dimensions: ``[..., 4]`` and
``[..., 4]`` (broadcast against each other) give ``[...]``.

Two styles reproduce the two references a YOLO user meets, to float32
round-off, including where each puts its ``eps``:

``style='mmdet'`` (mmdet 3.3.0, ``bbox_overlaps(..., is_aligned=True)`` and
the bodies of ``models/losses/iou_loss.py``):

- ``iou``, ``giou``: union and enclosing area floored at ``eps``
  (``max(union, eps)``); default ``eps`` 1e-6 for ``iou`` (``bbox_overlaps``'s)
  and 1e-7 for ``giou`` (``giou_loss``'s).
- ``diou``, ``ciou``, ``siou``: ``union + eps``, heights ``h + eps`` in the
  aspect terms, enclosing diagonal ``c2 + eps``; CIoU's trade-off ``alpha`` is
  detached and gated to pairs with IoU > 0.5. Default ``eps`` 1e-7.
- ``eiou``: the *extended* IoU of mmdet's ``EIoULoss`` (from
  libfacedetection.train): for overlapping boxes the IoU; for disjoint ones
  the "intersection" goes negative, so the value keeps a gradient that pulls
  the boxes together. It is not the EIoU of Zhang et al. (no distance or
  width/height terms), exactly as in mmdet.
- ``siou``: SIoU with mmdet's ``neg_gamma`` option (``False``: gamma =
  2 - angle cost, mmdet's default; ``True``: angle cost - 2 as in the paper).

``style='yolo'`` (ultralytics 8.4.190 ``bbox_iou(box1, box2, xywh=False,
...)``): ``iou``, ``giou``, ``diou``, ``ciou`` only. Heights are ``h + eps``
everywhere (areas included), ``union + eps``, enclosing area ``+ eps``
(GIoU), ``c2 + eps``, and CIoU's detached ``alpha = v / (1 - iou + v + eps)``
with no IoU gate. Default ``eps`` 1e-7. yolov5 7.0 calls its ``bbox_iou`` on
cxcywh boxes, where the heights get no ``eps`` and the corners are computed
from centre and size; its values differ from these by round-off and by
terms of order ``eps`` only.

None of the values is clamped here; the losses apply their reference's
clamps (mmdet's CIoU/SIoU losses clamp the similarity to [-1, 1]).

Numerics: float16/bfloat16 inputs are computed in float32 (the result is
float32), autocast is switched off inside. Where a reference divides 0 by 0
for degenerate but valid boxes (mmdet CIoU's ``alpha`` for identical boxes
whose IoU rounds to 1, SIoU's shape cost for two zero-width boxes, SIoU's
angle for centres exactly ``-2 eps`` apart) the term is taken as 0 instead of
NaN; everywhere else the values are the reference's. Every function is free
of host-device synchronisation.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..validation import check_last_dim, check_tensor

__all__ = ['IOU_MODES', 'IOU_STYLES', 'YOLO_IOU_MODES', 'aligned_iou',
           'default_iou_eps']

IOU_MODES: Tuple[str, ...] = ('iou', 'giou', 'diou', 'ciou', 'eiou', 'siou')
IOU_STYLES: Tuple[str, ...] = ('mmdet', 'yolo')
YOLO_IOU_MODES: Tuple[str, ...] = ('iou', 'giou', 'diou', 'ciou')

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_ASPECT_FACTOR = 4 / math.pi ** 2  # CIoU's v = 4/pi^2 * (atan difference)^2


def default_iou_eps(mode: str, style: str = 'mmdet') -> float:
    """The ``eps`` the reference function of ``mode`` uses by default."""
    _check_mode_style(mode, style)
    if style == 'mmdet' and mode == 'iou':
        return 1e-6  # mmdet bbox_overlaps
    return 1e-7


def _check_mode_style(mode: str, style: str) -> None:
    if mode not in IOU_MODES:
        raise ValueError(f'mode must be one of {IOU_MODES}, got {mode!r}')
    if style not in IOU_STYLES:
        raise ValueError(f'style must be one of {IOU_STYLES}, got {style!r}')
    if style == 'yolo' and mode not in YOLO_IOU_MODES:
        raise ValueError(
            f"mode={mode!r} has no style='yolo' variant (ultralytics bbox_iou "
            f'offers {YOLO_IOU_MODES}); use style=\'mmdet\'')


def check_eps(eps, name: str = 'eps') -> float:
    """A finite, non-negative Python number."""
    if isinstance(eps, bool) or not isinstance(eps, Real):
        raise TypeError(f'{name} must be a number, got {type(eps).__name__}')
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f'{name} must be finite and >= 0, got {eps!r}')
    return float(eps)


def check_box_pair(pred, target, pred_name: str = 'pred',
                   target_name: str = 'target') -> None:
    """Floating tensors with last dimension 4 whose leading dimensions
    broadcast (shape checks only; they never synchronise)."""
    check_tensor(pred_name, pred, floating=True)
    check_tensor(target_name, target, floating=True)
    check_last_dim(pred_name, pred, 4)
    check_last_dim(target_name, target, 4)
    try:
        torch.broadcast_shapes(pred.shape, target.shape)
    except RuntimeError:
        raise ValueError(
            f'{target_name} {tuple(target.shape)} does not broadcast against '
            f'{pred_name} {tuple(pred.shape)}') from None
    if pred.device != target.device:
        raise ValueError(f'{target_name} is on {target.device}, '
                         f'{pred_name} on {pred.device}')


def aligned_iou(pred: Tensor,
                target: Tensor,
                mode: str = 'iou',
                style: str = 'mmdet',
                eps: Optional[float] = None,
                *,
                neg_gamma: bool = False) -> Tensor:
    """IoU-family similarity of aligned pairs of boxes.

    Args:
        pred: ``[..., 4]`` xyxy boxes (any unit).
        target: ``[..., 4]`` xyxy boxes in the same unit, broadcasting
            against ``pred``.
        mode: ``'iou'``, ``'giou'``, ``'diou'``, ``'ciou'``, ``'eiou'``
            (mmdet's extended IoU) or ``'siou'``.
        style: ``'mmdet'`` (mmdet 3.3.0) or ``'yolo'`` (ultralytics 8.4.190
            ``bbox_iou`` on xyxy boxes; iou/giou/diou/ciou).
        eps: numerical guard; default: the reference's (``default_iou_eps``).
        neg_gamma: SIoU only: mmdet's ``neg_gamma``.

    Returns:
        ``[...]`` similarity, unclamped, in float32 for float16/bfloat16
        input, else in the input dtype. It keeps the autograd graph of the
        inputs (CIoU's ``alpha`` is detached, as in both references); detach
        it to use it as a target.
    """
    _check_mode_style(mode, style)
    check_box_pair(pred, target)
    eps = default_iou_eps(mode, style) if eps is None else check_eps(eps)
    if not isinstance(neg_gamma, bool):
        raise TypeError(f'neg_gamma must be a bool, got {type(neg_gamma).__name__}')
    if pred.dtype in _LOW_PRECISION:
        pred = pred.float()
    if target.dtype in _LOW_PRECISION:
        target = target.float()
    if pred.dtype != target.dtype:
        common = torch.promote_types(pred.dtype, target.dtype)
        pred, target = pred.to(common), target.to(common)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        if style == 'yolo':
            return _yolo_iou(pred, target, mode, eps)
        if mode in ('iou', 'giou'):
            return _mmdet_overlaps(pred, target, mode, eps)
        if mode == 'eiou':
            return _mmdet_extended_iou(pred, target, eps)
        if mode == 'siou':
            return _mmdet_siou(pred, target, eps, neg_gamma)
        return _mmdet_distance_iou(pred, target, mode, eps)


def _safe_denominator(denominator: Tensor) -> Tensor:
    """``denominator`` where it is non-zero, 1 where it is 0, so that a ratio
    whose numerator is also 0 there is 0 with a zero (not NaN) gradient."""
    return torch.where(denominator == 0, torch.ones_like(denominator), denominator)


def _mmdet_overlaps(pred: Tensor, target: Tensor, mode: str, eps: float) -> Tensor:
    """mmdet ``bbox_overlaps(is_aligned=True)``, modes iou and giou."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pred_area = (px2 - px1) * (py2 - py1)
    target_area = (tx2 - tx1) * (ty2 - ty1)
    overlap = ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
               * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))
    # mmdet floors the union at eps (max, not +) so exact values stay exact.
    union = (pred_area + target_area - overlap).clamp(min=eps)
    iou = overlap / union
    if mode == 'iou':
        return iou
    enclose_area = ((torch.maximum(px2, tx2) - torch.minimum(px1, tx1)).clamp(min=0)
                    * (torch.maximum(py2, ty2) - torch.minimum(py1, ty1)).clamp(min=0))
    enclose_area = enclose_area.clamp(min=eps)
    return iou - (enclose_area - union) / enclose_area


def _centre_distance2(pred: Tensor, target: Tensor) -> Tensor:
    """Squared distance of the box centres, summed as mmdet does."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    return (((tx1 + tx2) - (px1 + px2)) ** 2 / 4
            + ((ty1 + ty2) - (py1 + py2)) ** 2 / 4)


def _mmdet_distance_iou(pred: Tensor, target: Tensor, mode: str, eps: float) -> Tensor:
    """mmdet ``diou_loss``/``ciou_loss`` similarity (before the loss's clamp)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    overlap = ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
               * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - overlap + eps
    iou = overlap / union
    enclose_w = (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)).clamp(min=0)
    enclose_h = (torch.maximum(py2, ty2) - torch.minimum(py1, ty1)).clamp(min=0)
    enclose_diag2 = enclose_w ** 2 + enclose_h ** 2 + eps
    distance_term = _centre_distance2(pred, target) / enclose_diag2
    if mode == 'diou':
        return iou - distance_term
    pred_aspect = torch.atan((px2 - px1) / (py2 - py1 + eps))
    target_aspect = torch.atan((tx2 - tx1) / (ty2 - ty1 + eps))
    v = _ASPECT_FACTOR * (target_aspect - pred_aspect) ** 2
    with torch.no_grad():
        # mmdet: (iou > 0.5) * v / (1 - iou + v). The denominator is 0 only
        # when v == 0 and iou rounds to 1 (identical large boxes), where the
        # term alpha * v is 0 whatever alpha is; take alpha = 0, not NaN.
        gate = (iou > 0.5).to(iou.dtype)
        alpha = gate * v / _safe_denominator(1 - iou + v)
    return iou - (distance_term + alpha * v)


def _mmdet_extended_iou(pred: Tensor, target: Tensor, eps: float) -> Tensor:
    """mmdet ``eiou_loss``'s extended IoU: ``intersection / (union + eps)``
    where the intersection, written relative to the enclosing box's
    top-left corner, turns negative for disjoint boxes."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    left, top = torch.minimum(px1, tx1), torch.minimum(py1, ty1)
    ix1, iy1 = torch.maximum(px1, tx1), torch.maximum(py1, ty1)
    ix2, iy2 = torch.minimum(px2, tx2), torch.minimum(py2, ty2)
    x_low, x_high = torch.minimum(ix1, ix2), torch.maximum(ix1, ix2)
    y_low, y_high = torch.minimum(iy1, iy2), torch.maximum(iy1, iy2)
    # Overlapping: (ix2-ix1)*(iy2-iy1). Disjoint along an axis: the low and
    # high bounds swap and the product becomes a negative "overlap".
    intersection = ((ix2 - left) * (iy2 - top) + (x_low - left) * (y_low - top)
                    - (ix1 - left) * (y_high - top) - (x_high - left) * (iy1 - top))
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - intersection + eps
    return intersection / union


def _mmdet_siou(pred: Tensor, target: Tensor, eps: float, neg_gamma: bool) -> Tensor:
    """mmdet ``siou_loss`` similarity (before the loss's clamp)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    overlap = ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
               * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - overlap + eps
    iou = overlap / union
    # mmdet floors the enclosing sides at eps (not 0) so the ratios below
    # stay finite.
    enclose_w = (torch.maximum(px2, tx2) - torch.minimum(px1, tx1)).clamp(min=eps)
    enclose_h = (torch.maximum(py2, ty2) - torch.minimum(py1, ty1)).clamp(min=eps)
    pred_w, pred_h = px2 - px1, py2 - py1 + eps
    target_w, target_h = tx2 - tx1, ty2 - ty1 + eps

    # Angle cost of the centre offset (offset is target centre - pred centre).
    offset_x = (tx1 + tx2 - px1 - px2) * 0.5 + eps
    offset_y = (ty1 + ty2 - py1 - py2) * 0.5 + eps
    # The floor only acts on an exactly zero offset, where sqrt has no
    # derivative; sin_alpha is 0 there either way.
    tiny = torch.finfo(offset_x.dtype).tiny
    offset_norm = torch.pow((offset_x ** 2 + offset_y ** 2).clamp(min=tiny), 0.5)
    sin_x = torch.abs(offset_x) / offset_norm
    sin_y = torch.abs(offset_y) / offset_norm
    sin_alpha = torch.where(sin_x > math.sqrt(2) / 2, sin_y, sin_x)
    angle_cost = torch.cos(torch.asin(sin_alpha) * 2 - math.pi / 2)

    rho_x = (offset_x / enclose_w) ** 2
    rho_y = (offset_y / enclose_h) ** 2
    gamma = angle_cost - 2 if neg_gamma else 2 - angle_cost
    distance_cost = 2 - torch.exp(gamma * rho_x) - torch.exp(gamma * rho_y)

    # Two zero-width boxes: |0 - 0| / 0 in mmdet; the shape cost there is 0.
    omega_w = torch.abs(pred_w - target_w) / _safe_denominator(torch.maximum(pred_w, target_w))
    omega_h = torch.abs(pred_h - target_h) / _safe_denominator(torch.maximum(pred_h, target_h))
    shape_cost = (torch.pow(1 - torch.exp(-omega_w), 4)
                  + torch.pow(1 - torch.exp(-omega_h), 4))
    return iou - 0.5 * (distance_cost + shape_cost)


def _yolo_iou(pred: Tensor, target: Tensor, mode: str, eps: float) -> Tensor:
    """ultralytics 8.4.190 ``bbox_iou(pred, target, xywh=False, ...)``."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pred_w, pred_h = px2 - px1, py2 - py1 + eps
    target_w, target_h = tx2 - tx1, ty2 - ty1 + eps
    inter = ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
             * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))
    union = pred_w * pred_h + target_w * target_h - inter + eps
    iou = inter / union
    if mode == 'iou':
        return iou
    enclose_w = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
    enclose_h = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    if mode == 'giou':
        enclose_area = enclose_w * enclose_h + eps
        return iou - (enclose_area - union) / enclose_area
    enclose_diag2 = enclose_w ** 2 + enclose_h ** 2 + eps
    centre_distance2 = ((tx1 + tx2 - px1 - px2) ** 2 + (ty1 + ty2 - py1 - py2) ** 2) / 4
    if mode == 'diou':
        return iou - centre_distance2 / enclose_diag2
    v = _ASPECT_FACTOR * (torch.atan(target_w / target_h) - torch.atan(pred_w / pred_h)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return iou - (centre_distance2 / enclose_diag2 + v * alpha)

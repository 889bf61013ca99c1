"""Modern IoU-family box losses: MPDIoU, Shape-IoU, NWD, Alpha-IoU,
Efficient-IoU (and Focal-EIoU), Powerful-IoU.

Each equals its authors' code (see the table in ``docs/box_losses.md``; the
repository and commit of each reference are in the class docstrings), in
float32 and float64, values and gradients with respect to ``pred``. Every
loss takes aligned xyxy boxes ``pred`` and ``target`` ``[..., 4]`` (mmdet:
``[N, 4]``; any unit, both operands alike) and gives ``[...]`` before
reduction, with the mmdet call::

    loss(pred, target, weight=None, avg_factor=None, reduction_override=None)

(``MPDIoULoss`` also takes ``img_size``). Input checks, ``weight`` handling
(``[...]`` or ``[..., 4]``, averaged over the last dimension) and the one
reduction path (``losses/utils.py``) are those of the existing IoU losses
(``iou_loss._BoxLoss``). Float16/bfloat16 inputs and ``torch.autocast`` are
computed in float32. No function reads a tensor value on the host.

Where the authors' code divides by zero (zero-width or zero-area boxes) it
gives NaN or inf; here such a ratio with a zero numerator is 0 and a
zero denominator is floored, so values stay finite. Each class says where.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ..ops.iou import _safe_denominator, aligned_iou, check_eps
from ..registry import MODELS
from ..validation import check_finite
from .iou_loss import _BoxLoss
from .utils import to_float32, weighted_loss

__all__ = ['mpdiou_loss', 'shape_iou_loss', 'nwd_loss', 'alpha_iou_loss',
           'efficient_iou_loss', 'piou_loss', 'MPDIoULoss', 'ShapeIoULoss',
           'NWDLoss', 'AlphaIoULoss', 'EfficientIoULoss', 'PIoULoss']

_ASPECT_FACTOR = 4 / math.pi ** 2  # CIoU's v = 4/pi^2 * (atan difference)^2
ALPHA_IOU_MODES = ('iou', 'giou', 'diou', 'ciou')


def _overlap(pred: Tensor, target: Tensor) -> Tensor:
    """``[..., 4]`` x2 -> ``[...]`` intersection area."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    return ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
            * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))


def _enclosing_sides(pred: Tensor, target: Tensor):
    """Width and height of the smallest box enclosing both."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    return (torch.maximum(px2, tx2) - torch.minimum(px1, tx1),
            torch.maximum(py2, ty2) - torch.minimum(py1, ty1))


def _centre_offsets2(pred: Tensor, target: Tensor):
    """Squared centre offsets along x and y (target - pred)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    return (tx1 + tx2 - px1 - px2) ** 2 / 4, (ty1 + ty2 - py1 - py2) ** 2 / 4


# --------------------------------------------------------------------------
# MPDIoU
# --------------------------------------------------------------------------
def mpdiou_similarity(pred: Tensor, target: Tensor,
                      img_size: Union[Tensor, Sequence[float]],
                      eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` MPDIoU = IoU - (d1^2 + d2^2) /
    (h^2 + w^2).

    ``d1``, ``d2``: distances of the top-left and of the bottom-right
    corners; ``img_size``: ``(h, w)`` of the input image in the boxes' unit,
    a pair of numbers or a tensor broadcasting to ``[..., 2]`` (per box,
    e.g. per-point ``(h, w) / stride``). IoU as ultralytics ``bbox_iou``
    (xyxy, ``eps`` 1e-7 on heights and union).
    """
    iou = aligned_iou(pred, target, 'iou', 'yolo', eps)
    corners2 = (pred - target) ** 2
    distance2 = corners2.sum(-1)
    if isinstance(img_size, Tensor):
        size = img_size.to(iou.dtype)
        diag2 = (size ** 2).sum(-1)
    else:
        height, width = (float(v) for v in img_size)
        diag2 = height * height + width * width
    return iou - distance2 / diag2


@weighted_loss
def mpdiou_loss(pred: Tensor, target: Tensor, img_size=None,
                eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - MPDIoU`` (arXiv 2307.07662,
    Algorithm 1); see :func:`mpdiou_similarity`."""
    return 1 - mpdiou_similarity(pred, target, img_size, eps)


# --------------------------------------------------------------------------
# Shape-IoU
# --------------------------------------------------------------------------
def _shape_weights(target: Tensor, scale: float):
    """Shape-IoU's ``ww, hh`` from the target's width and height."""
    tw = target[..., 2] - target[..., 0]
    th = target[..., 3] - target[..., 1]
    tw_s, th_s = torch.pow(tw, scale), torch.pow(th, scale)
    # 0 / 0 for a zero-area target with scale > 0: take the neutral 1.
    total = tw_s + th_s
    ww = torch.where(total == 0, torch.ones_like(total), 2 * tw_s / _safe_denominator(total))
    hh = torch.where(total == 0, torch.ones_like(total), 2 * th_s / _safe_denominator(total))
    return ww, hh


def shape_iou_similarity(pred: Tensor, target: Tensor, scale: float = 0.0,
                         eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` Shape-IoU (malagoutou/Shape-IoU
    ``shape_iou`` @ 6cc086e): IoU - shape-weighted distance - 0.5 shape
    cost. The ratios ``|w_p - w_t| / max(w_p, w_t)`` of two zero-width (or
    zero-height) boxes are 0 here (NaN in the reference)."""
    pw, ph = pred[..., 2] - pred[..., 0], pred[..., 3] - pred[..., 1]
    tw, th = target[..., 2] - target[..., 0], target[..., 3] - target[..., 1]
    with torch.no_grad():
        ww, hh = _shape_weights(target.detach(), scale)
    inter = _overlap(pred, target)
    iou = inter / (pw * ph + tw * th - inter + eps)
    cw, ch = _enclosing_sides(pred, target)
    dx2, dy2 = _centre_offsets2(pred, target)
    distance = (hh * dx2 + ww * dy2) / (cw ** 2 + ch ** 2 + eps)
    omega_w = hh * torch.abs(pw - tw) / _safe_denominator(torch.maximum(pw, tw))
    omega_h = ww * torch.abs(ph - th) / _safe_denominator(torch.maximum(ph, th))
    shape_cost = (torch.pow(1 - torch.exp(-omega_w), 4)
                  + torch.pow(1 - torch.exp(-omega_h), 4))
    return iou - distance - 0.5 * shape_cost


@weighted_loss
def shape_iou_loss(pred: Tensor, target: Tensor, scale: float = 0.0,
                   eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - Shape-IoU``."""
    return 1 - shape_iou_similarity(pred, target, scale, eps)


# --------------------------------------------------------------------------
# NWD
# --------------------------------------------------------------------------
def nwd_similarity(pred: Tensor, target: Tensor, constant: float = 12.8,
                   eps: float = 1e-6) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` normalised Gaussian Wasserstein
    distance ``exp(-sqrt(W2) / C)``, ``W2 = |dc|^2 + eps + (dw^2 + dh^2) / 4``
    (jwwangchn/NWD ``wasserstein_loss`` @ 9775ac2, mode ``'exp'``)."""
    dx2, dy2 = _centre_offsets2(pred, target)
    dw = (pred[..., 2] - pred[..., 0]) - (target[..., 2] - target[..., 0])
    dh = (pred[..., 3] - pred[..., 1]) - (target[..., 3] - target[..., 1])
    wasserstein2 = dx2 + dy2 + eps + (dw ** 2 + dh ** 2) / 4
    return torch.exp(-torch.sqrt(wasserstein2) / constant)


@weighted_loss
def nwd_loss(pred: Tensor, target: Tensor, constant: float = 12.8,
             eps: float = 1e-6) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - NWD``."""
    return 1 - nwd_similarity(pred, target, constant, eps)


# --------------------------------------------------------------------------
# Alpha-IoU
# --------------------------------------------------------------------------
def alpha_iou_similarity(pred: Tensor, target: Tensor, alpha: float = 3.0,
                         mode: str = 'ciou', eps: float = 1e-9) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` Alpha-IoU similarity
    (Jacobi93/Alpha-IoU ``bbox_alpha_iou(x1y1x2y2=True)`` @ 39d439e):
    ``(IoU + eps)^alpha - penalty^alpha``, heights ``+ eps``."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pw, ph = px2 - px1, py2 - py1 + eps
    tw, th = tx2 - tx1, ty2 - ty1 + eps
    inter = _overlap(pred, target)
    union = pw * ph + tw * th - inter + eps
    plain = inter / union
    iou = torch.pow(plain + eps, alpha)
    if mode == 'iou':
        return iou
    cw, ch = _enclosing_sides(pred, target)
    if mode == 'giou':
        enclose = torch.maximum(cw * ch + eps, union)
        return iou - torch.pow((enclose - union) / enclose + eps, alpha)
    diag2 = torch.pow(cw ** 2 + ch ** 2, alpha) + eps
    dx2, dy2 = _centre_offsets2(pred, target)
    distance = torch.pow(dx2 + dy2, alpha) / diag2
    if mode == 'diou':
        return iou - distance
    v = _ASPECT_FACTOR * (torch.atan(tw / th) - torch.atan(pw / ph)) ** 2
    with torch.no_grad():
        # 0 / 0 for identical boxes when 1 + eps rounds to 1 (float32): the
        # term v * alpha_c is 0 there whatever alpha_c is; take 0, not NaN.
        alpha_c = v / _safe_denominator((1 + eps) - plain + v)
    return iou - (distance + torch.pow(v * alpha_c + eps, alpha))


@weighted_loss
def alpha_iou_loss(pred: Tensor, target: Tensor, alpha: float = 3.0,
                   mode: str = 'ciou', eps: float = 1e-9) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - Alpha-IoU``."""
    return 1 - alpha_iou_similarity(pred, target, alpha, mode, eps)


# --------------------------------------------------------------------------
# Efficient-IoU (Zhang et al. 2021), Focal-EIoU
# --------------------------------------------------------------------------
def _efficient_terms(pred: Tensor, target: Tensor, eps: float):
    """(plain IoU, Efficient-IoU similarity) as z1069614715/objectdetection_script
    ``yolo-improve/iou.py`` ``bbox_iou(xywh=False, EIoU=True)`` @ cca492c:
    heights clamped at ``eps``, ``union + eps`` then ``/ (union + eps)``."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pw, ph = px2 - px1, (py2 - py1).clamp(min=eps)
    tw, th = tx2 - tx1, (ty2 - ty1).clamp(min=eps)
    inter = _overlap(pred, target)
    union = pw * ph + tw * th - inter + eps
    iou = inter / (union + eps)
    cw, ch = _enclosing_sides(pred, target)
    dx2, dy2 = _centre_offsets2(pred, target)
    penalty = ((dx2 + dy2) / (cw ** 2 + ch ** 2 + eps)
               + ((tx2 - tx1) - (px2 - px1)) ** 2 / (cw ** 2 + eps)
               + ((ty2 - ty1) - (py2 - py1)) ** 2 / (ch ** 2 + eps))
    return iou, iou - penalty


@weighted_loss
def efficient_iou_loss(pred: Tensor, target: Tensor, gamma: float = 0.0,
                       eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - EIoU``, times the detached
    ``IoU^gamma`` (Focal-EIoU) when ``gamma > 0``."""
    iou, similarity = _efficient_terms(pred, target, eps)
    loss = 1 - similarity
    if gamma:
        loss = loss * torch.pow(iou.detach(), gamma)
    return loss


# --------------------------------------------------------------------------
# Powerful-IoU
# --------------------------------------------------------------------------
def _piou_terms(pred: Tensor, target: Tensor, eps: float):
    """(IoU, P) of fppccc/Powerful-IoU ``YOLOv8/piou.py`` ``piou(xywh=False)``
    @ dec8b28. The target width is floored at ``eps`` (the reference divides
    by it: inf, or NaN for two zero-width boxes)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    pw, ph = px2 - px1, py2 - py1 + eps
    tw, th = tx2 - tx1, ty2 - ty1 + eps
    inter = _overlap(pred, target)
    iou = inter / (pw * ph + tw * th - inter + eps)
    dw1 = torch.abs(torch.minimum(px1, px2) - torch.minimum(tx1, tx2))
    dw2 = torch.abs(torch.maximum(px1, px2) - torch.maximum(tx1, tx2))
    dh1 = torch.abs(torch.minimum(py1, py2) - torch.minimum(ty1, ty2))
    dh2 = torch.abs(torch.maximum(py1, py2) - torch.maximum(ty1, ty2))
    penalty = ((dw1 + dw2) / torch.abs(tw).clamp(min=eps)
               + (dh1 + dh2) / torch.abs(th).clamp(min=eps)) / 4
    return iou, penalty


@weighted_loss
def piou_loss(pred: Tensor, target: Tensor, version: int = 1,
              Lambda: float = 1.3, eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` PIoU loss: v1 ``2 - IoU -
    exp(-P^2)``; v2 ``3 x exp(-x^2) * L_v1`` with ``x = Lambda exp(-P)``."""
    iou, penalty = _piou_terms(pred, target, eps)
    loss = 2 - iou - torch.exp(-penalty ** 2)
    if version == 2:
        x = Lambda * torch.exp(-penalty)
        loss = 3 * x * torch.exp(-x ** 2) * loss
    return loss


# --------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------
def _check_real(value, name: str, low: Optional[float] = None,
                strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f'{name} must be a real number, got {type(value).__name__}')
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'{name} must be finite, got {value}')
    if low is not None and (value < low or (strict and value == low)):
        raise ValueError(f'{name} must be {">" if strict else ">="} {low}, got {value}')
    return value


@MODELS.register_module()
class MPDIoULoss(_BoxLoss):
    """MPDIoU loss ``1 - IoU + (d1^2 + d2^2) / (h^2 + w^2)`` (Ma & Xu 2023,
    arXiv 2307.07662, Algorithm 1; the authors published no code).

    ``d1``, ``d2`` are the distances between the top-left corners and
    between the bottom-right corners; ``(h, w)`` is the size of the *input
    image*, not of a box (forks that normalise by the enclosing box compute
    a different loss). The IoU uses ultralytics ``bbox_iou`` numerics (xyxy,
    ``eps`` added to heights and union).

    Call: ``loss(pred, target, weight=None, avg_factor=None,
    reduction_override=None, img_size=None)``. ``img_size`` is ``(h, w)`` in
    the boxes' unit: pixels for pixel boxes, or a tensor broadcasting to
    ``[..., 2]`` giving each box its own ``(h, w)`` (the composite losses
    give per-point ``(h, w) / stride`` because their boxes are in stride
    units). ``wants_img_size = True`` tells the composite losses to pass it.

    Args:
        img_size: default ``(h, w)`` when the call gives none; a call
            without either raises ``ValueError``.
        eps: IoU guard. Default 1e-7 (ultralytics').
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the plain IoU (it needs no image size).
    """
    catalog_reference = ('arXiv 2307.07662 (Ma & Xu 2023), Algorithm 1 (no official code); '
                         "img_size = input image (h, w) in the boxes' unit; eps: ultralytics "
                         "bbox_iou's")
    wants_img_size = True

    def __init__(self, img_size: Optional[Sequence[float]] = None, eps: float = 1e-7,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        eps = check_eps(eps)
        if img_size is not None:
            img_size = self._check_size_pair(img_size)
        super().__init__(reduction, loss_weight, validate)
        self.img_size = img_size
        self.eps = eps

    @staticmethod
    def _check_size_pair(img_size) -> tuple:
        if (not isinstance(img_size, (tuple, list)) or len(img_size) != 2
                or any(isinstance(v, bool) or not isinstance(v, Real) for v in img_size)):
            raise TypeError(f'img_size must be (h, w), two numbers, or a tensor '
                            f'broadcasting to [..., 2], got {img_size!r}')
        if not all(math.isfinite(v) and v > 0 for v in img_size):
            raise ValueError(f'img_size must be positive and finite, got {img_size!r}')
        return tuple(float(v) for v in img_size)

    def _resolve_size(self, img_size, pred: Tensor):
        if img_size is None:
            img_size = self.img_size
        if img_size is None:
            raise ValueError('MPDIoULoss needs img_size=(h, w), the input image size '
                             'in the unit of the boxes (call argument or constructor)')
        if not isinstance(img_size, Tensor):
            return self._check_size_pair(img_size)
        expected = tuple(pred.shape[:-1]) + (2,)
        if img_size.ndim == 0 or img_size.shape[-1] != 2:
            raise ValueError(f'img_size tensor must end in a dimension of 2 (h, w), '
                             f'got shape {tuple(img_size.shape)}')
        try:
            ok = torch.broadcast_shapes(img_size.shape, expected) == torch.Size(expected)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f'img_size tensor of shape {tuple(img_size.shape)} does '
                             f'not broadcast to {expected}')
        if img_size.device != pred.device:
            raise ValueError(f'img_size is on {img_size.device}, pred on {pred.device}')
        if self.validating:
            check_finite('img_size', img_size.float())
            if img_size.numel() and not bool((img_size > 0).all()):
                raise ValueError('img_size must be positive')
        return img_size

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor=None, reduction_override: Optional[str] = None,
                img_size=None) -> Tensor:
        """See the class docstring; ``img_size`` is ``(h, w)`` in the boxes'
        unit, or a tensor broadcasting to ``[..., 2]``."""
        reduction = self.resolve_reduction(reduction_override)
        weight = self._check_inputs(pred, target, weight)
        size = self._resolve_size(img_size, pred)
        return self.loss_weight * mpdiou_loss(pred, target, weight, img_size=size,
                                              eps=self.eps, reduction=reduction,
                                              avg_factor=avg_factor)

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` plain IoU (ultralytics numerics)."""
        self._check_inputs(pred, target)
        return aligned_iou(pred, target, 'iou', 'yolo', self.eps)

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        return aligned_iou(pred, target, 'iou', 'yolo', self.eps)

    def extra_repr(self) -> str:
        return f'img_size={self.img_size}, eps={self.eps}, {super().extra_repr()}'


@MODELS.register_module()
class ShapeIoULoss(_BoxLoss):
    """Shape-IoU loss (Zhang & Zhang 2023, arXiv 2312.17663;
    malagoutou/Shape-IoU ``shapeiou.py`` @ 6cc086e).

    ``ww = 2 w_t^s / (w_t^s + h_t^s)``, ``hh = 2 h_t^s / (w_t^s + h_t^s)``
    from the target (``s = scale``); ``L = 1 - IoU + (hh dx^2 + ww dy^2) /
    (c^2 + eps) + 0.5 sum_{w,h} (1 - exp(-omega))^4`` with ``omega_w = hh
    |w_p - w_t| / max(w_p, w_t)``, ``omega_h = ww |h_p - h_t| / max(h_p,
    h_t)``. The reference takes cxcywh boxes; these are xyxy (the same boxes).

    Finite where the reference is not: two zero-width (zero-height) boxes
    give ``omega = 0`` (reference 0/0); a zero-area target with ``scale > 0``
    gives ``ww = hh = 1``.

    Args:
        scale: the exponent ``s``; 0 (default, the authors') makes ``ww = hh
            = 1``. The authors suggest 0 to 1.5 depending on object scale.
        eps: 1e-7, the reference's (union and enclosing diagonal).
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the Shape-IoU (the loss is ``1 -`` it).
    """
    catalog_reference = ('malagoutou/Shape-IoU shapeiou.py @ 6cc086e; arXiv 2312.17663; scale=0 '
                         "and eps: the reference function's defaults")

    def __init__(self, scale: float = 0.0, eps: float = 1e-7, reduction: str = 'mean',
                 loss_weight: float = 1.0, validate: Optional[bool] = None) -> None:
        scale = _check_real(scale, 'scale', 0.0)
        eps = check_eps(eps)
        super().__init__(reduction, loss_weight, validate)
        self.scale = scale
        self.eps = eps

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check_inputs(pred, target)
        return shape_iou_similarity(to_float32(pred), to_float32(target), self.scale, self.eps)

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = to_float32(pred), to_float32(target)
        inter = _overlap(pred, target)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        return inter / (area(pred) + area(target) - inter + self.eps)

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return shape_iou_loss(pred, target, weight, scale=self.scale, eps=self.eps,
                              reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return f'scale={self.scale}, eps={self.eps}, {super().extra_repr()}'


@MODELS.register_module()
class NWDLoss(_BoxLoss):
    """Normalised Gaussian Wasserstein distance loss ``1 - exp(-sqrt(W2) / C)``
    (Wang et al. 2021, arXiv 2110.13389; jwwangchn/NWD ``WassersteinLoss``
    @ 9775ac2, mode ``'exp'``).

    Each box is a 2-D Gaussian (mean: centre, covariance: (w/2)^2, (h/2)^2);
    ``W2 = |c_p - c_t|^2 + eps + ((w_p - w_t)^2 + (h_p - h_t)^2) / 4`` is
    their squared 2-Wasserstein distance (plus ``eps``). Unlike IoU it is
    smooth for disjoint boxes, which suits tiny objects.

    Args:
        constant: ``C``, in the boxes' unit. The default 12.8 is the value
            the authors tuned for AI-TOD, whose objects average about 12.8
            pixels; it is a dataset property, not a universal constant: set
            it per dataset (about the mean object size, in the boxes' unit;
            in a composite loss that is stride units for YOLOv8Loss and grid
            units for YOLOv5Loss).
        eps: 1e-6, the reference module's.
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the NWD similarity in (0, 1] (the loss is
    ``1 -`` it).
    """
    catalog_reference = ("jwwangchn/NWD @ 9775ac2 (WassersteinLoss, mode 'exp'); arXiv "
                         "2110.13389; constant 12.8 is tuned for AI-TOD's tiny objects, set it "
                         "per dataset (in the boxes' unit)")

    def __init__(self, constant: float = 12.8, eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0, validate: Optional[bool] = None) -> None:
        constant = _check_real(constant, 'constant', 0.0, strict=True)
        eps = check_eps(eps)
        super().__init__(reduction, loss_weight, validate)
        self.constant = constant
        self.eps = eps

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check_inputs(pred, target)
        return nwd_similarity(to_float32(pred), to_float32(target), self.constant, self.eps)

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        return aligned_iou(pred, target, 'iou', 'mmdet', self.eps)

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return nwd_loss(pred, target, weight, constant=self.constant, eps=self.eps,
                        reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return f'constant={self.constant}, eps={self.eps}, {super().extra_repr()}'


@MODELS.register_module()
class AlphaIoULoss(_BoxLoss):
    """Alpha-IoU loss ``1 - [(IoU + eps)^alpha - penalty]`` (He et al. 2021,
    NeurIPS, arXiv 2110.13675; Jacobi93/Alpha-IoU ``utils/general.py``
    ``bbox_alpha_iou(x1y1x2y2=True)`` @ 39d439e).

    Penalties (``eps`` = 1e-9, heights ``+ eps``): ``'iou'`` none;
    ``'giou'`` ``((c - u) / c + eps)^alpha`` with ``c = max(cw ch + eps,
    u)``; ``'diou'`` ``rho^(2 alpha) / (c^(2 alpha) + eps)``; ``'ciou'`` the
    DIoU penalty plus ``(v alpha_c + eps)^alpha``, ``alpha_c`` detached.

    Args:
        alpha: the power; 3 is the authors' recommendation. With
            ``alpha < 1`` the gradient of the distance term at coinciding
            centres is infinite (as in the reference).
        mode: ``'iou'``, ``'giou'``, ``'diou'`` or ``'ciou'`` (default).
        eps: 1e-9, the reference's.
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the Alpha-IoU similarity (the loss is ``1 -``
    it).
    """
    catalog_reference = ('Jacobi93/Alpha-IoU utils/general.py bbox_alpha_iou @ 39d439e; NeurIPS '
                         "2021, arXiv 2110.13675; alpha=3: the paper's recommendation, eps: the "
                         "reference's")

    def __init__(self, alpha: float = 3.0, mode: str = 'ciou', eps: float = 1e-9,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        alpha = _check_real(alpha, 'alpha', 0.0, strict=True)
        if mode not in ALPHA_IOU_MODES:
            raise ValueError(f'mode must be one of {ALPHA_IOU_MODES}, got {mode!r}')
        eps = check_eps(eps)
        super().__init__(reduction, loss_weight, validate)
        self.alpha = alpha
        self.mode = mode
        self.eps = eps

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check_inputs(pred, target)
        return alpha_iou_similarity(to_float32(pred), to_float32(target), self.alpha,
                                    self.mode, self.eps)

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        return aligned_iou(pred, target, 'iou', 'yolo', self.eps)

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return alpha_iou_loss(pred, target, weight, alpha=self.alpha, mode=self.mode,
                              eps=self.eps, reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, mode={self.mode!r}, eps={self.eps}, '
                f'{super().extra_repr()}')


@MODELS.register_module()
class EfficientIoULoss(_BoxLoss):
    """Efficient-IoU loss (Zhang et al. 2021, "Focal and Efficient IOU Loss
    for Accurate Bounding Box Regression", arXiv 2101.08158), and Focal-EIoU
    when ``gamma > 0``.

    ``L = 1 - IoU + rho^2 / c^2 + (w_p - w_t)^2 / (C_w^2 + eps) + (h_p -
    h_t)^2 / (C_h^2 + eps)``: the DIoU distance term plus width and height
    differences over the enclosing box's sides. Focal-EIoU multiplies it by
    ``IoU^gamma``, detached (the common YOLO code's choice). Numerics as
    z1069614715/objectdetection_script ``yolo-improve/iou.py``
    ``bbox_iou(xywh=False, EIoU=True)`` @ cca492c (the authors published no
    code): ``eps`` 1e-7, heights clamped at ``eps``.

    **Not mmdet's** ``EIoULoss``: that one is libfacedetection's *extended*
    IoU (an IoU that goes negative for disjoint boxes, under a smooth-L1
    penalty) and has no distance or width/height terms. Both exist here
    under their own names; "EIoU" in a YOLO fork usually means this one.

    Args:
        gamma: Focal-EIoU exponent; 0 (default) is plain Efficient-IoU.
            The paper uses 0.5.
        eps: 1e-7, the reference's.
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the EIoU similarity ``IoU - penalties`` (the
    un-focused loss is ``1 -`` it).
    """
    catalog_reference = ('Zhang et al. 2021, arXiv 2101.08158; numerics as '
                         'z1069614715/objectdetection_script yolo-improve/iou.py @ cca492c; NOT '
                         "mmdet's EIoULoss (libfacedetection's extended IoU)")

    def __init__(self, gamma: float = 0.0, eps: float = 1e-7, reduction: str = 'mean',
                 loss_weight: float = 1.0, validate: Optional[bool] = None) -> None:
        gamma = _check_real(gamma, 'gamma', 0.0)
        eps = check_eps(eps)
        super().__init__(reduction, loss_weight, validate)
        self.gamma = gamma
        self.eps = eps

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check_inputs(pred, target)
        return _efficient_terms(to_float32(pred), to_float32(target), self.eps)[1]

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        return _efficient_terms(to_float32(pred), to_float32(target), self.eps)[0]

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return efficient_iou_loss(pred, target, weight, gamma=self.gamma, eps=self.eps,
                                  reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return f'gamma={self.gamma}, eps={self.eps}, {super().extra_repr()}'


@MODELS.register_module()
class PIoULoss(_BoxLoss):
    """Powerful-IoU loss, v1 and v2 (Liu et al. 2024, Neural Networks 170;
    fppccc/Powerful-IoU ``YOLOv8/piou.py`` ``piou(xywh=False)`` @ dec8b28).

    ``P = ((|dx1| + |dx2|) / w_t + (|dy1| + |dy2|) / h_t) / 4`` (edge
    distances over the target's size, so it does not grow the predicted
    box); v1: ``L = 2 - IoU - exp(-P^2)``; v2 (non-monotonic attention):
    ``x = Lambda exp(-P)``, ``L = 3 x exp(-x^2) L_v1``, ``exp(-P)`` not
    detached. Heights ``+ eps``; a target width below ``eps`` is floored at
    ``eps`` (the reference divides by it: inf or NaN for zero width).

    Args:
        version: 1 (default) or 2.
        Lambda: v2's attention parameter (the authors' 1.3).
        eps: 1e-7, the reference's.
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the PIoU similarity ``IoU - (1 - exp(-P^2))``
    (the v1 loss is ``1 -`` it).
    """
    catalog_reference = ('fppccc/Powerful-IoU YOLOv8/piou.py @ dec8b28; Neural Networks 2024; '
                         "Lambda=1.3: the authors'")

    def __init__(self, version: int = 1, Lambda: float = 1.3, eps: float = 1e-7,  # noqa: N803
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        if version not in (1, 2) or isinstance(version, bool):
            raise ValueError(f'version must be 1 or 2, got {version!r}')
        Lambda = _check_real(Lambda, 'Lambda', 0.0, strict=True)  # noqa: N806
        eps = check_eps(eps)
        super().__init__(reduction, loss_weight, validate)
        self.version = int(version)
        self.Lambda = Lambda
        self.eps = eps

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check_inputs(pred, target)
        iou, penalty = _piou_terms(to_float32(pred), to_float32(target), self.eps)
        return iou - (1 - torch.exp(-penalty ** 2))

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        return _piou_terms(to_float32(pred), to_float32(target), self.eps)[0]

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return piou_loss(pred, target, weight, version=self.version, Lambda=self.Lambda,
                         eps=self.eps, reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return (f'version={self.version}, Lambda={self.Lambda}, eps={self.eps}, '
                f'{super().extra_repr()}')

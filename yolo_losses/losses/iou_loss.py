"""IoU-family box losses: IoU, GIoU, DIoU, CIoU, EIoU, SIoU (mmdet 3.3.0).

Every loss takes aligned xyxy boxes ``pred`` and ``target`` of shape
``[..., 4]`` (mmdet: ``[N, 4]``; any unit shared by both) and gives one
value per box, ``[...]``, before reduction. Call::

    loss(pred, target, weight=None, avg_factor=None, reduction_override=None)

- ``weight``: ``[...]`` per box (anything broadcasting to ``[...]``), or
  ``[..., 4]`` like ``pred``, which is averaged over the last dimension
  first (mmdet's behaviour).
- mmdet returns ``(pred * weight).sum()`` early when no weight is positive,
  which needs a host sync (``torch.any`` in an ``if``). We skip that shortcut:
  the normal path gives the same 0 for ``'mean'``/``'sum'`` (a zero-weighted
  finite loss), with a zero gradient; for ``reduction='none'`` it gives the
  per-box zeros rather than mmdet's scalar.

Each module has ``iou(pred, target) -> [...]``: the similarity its loss is
built from (``1 - iou`` unless the class says otherwise), under the same
``eps``, ``style`` and clamps, keeping the inputs' graph (detach it to use it
as a target, e.g. yolov5's objectness target).

Value checks (``validating``): NaN/inf and negative sizes (x2 < x1 or
y2 < y1) in ``pred`` and ``target``, NaN/inf in ``weight``. Shape checks
always run. Losses are computed in float32 for float16/bfloat16 input and
under ``torch.autocast``.
"""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..ops.iou import aligned_iou, check_box_pair, check_eps, default_iou_eps
from ..registry import MODELS
from ..validation import check_finite, check_same_shape, check_tensor, check_xyxy
from .base import BaseLoss
from .utils import weighted_loss

__all__ = ['iou_loss', 'giou_loss', 'diou_loss', 'ciou_loss', 'eiou_loss',
           'siou_loss', 'IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss',
           'EIoULoss', 'SIoULoss']

IOU_LOSS_MODES = ('log', 'linear', 'square')
# IoULoss computes the IoU with bbox_overlaps' default eps; its own eps only
# floors the IoU before the log (mmdet 3.3.0 iou_loss).
_OVERLAPS_EPS = 1e-6
# The loss modules' eps default (mmdet 3.3.0 uses 1e-6 in every module, the
# plain functions default to 1e-7; ultralytics uses 1e-7).
MMDET_MODULE_EPS = 1e-6


def _check_iou_loss_mode(mode: str, linear: bool, where: str) -> str:
    if mode not in IOU_LOSS_MODES:
        raise ValueError(f'mode must be one of {IOU_LOSS_MODES}, got {mode!r}')
    if linear:
        warnings.warn(f'Setting "linear=True" in {where} is deprecated, '
                      'please use mode="linear" instead.', DeprecationWarning,
                      stacklevel=3)
        return 'linear'
    return mode


def _iou_log_floor(pred: Tensor, target: Tensor, eps: float) -> Tensor:
    return aligned_iou(pred, target, 'iou', eps=_OVERLAPS_EPS).clamp(min=eps)


@weighted_loss
def iou_loss(pred: Tensor, target: Tensor, linear: bool = False,
             mode: str = 'log', eps: float = 1e-6) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` IoU loss.

    ``iou = max(IoU, eps)``; ``mode`` ``'log'``: ``-log(iou)``, ``'linear'``:
    ``1 - iou``, ``'square'``: ``1 - iou**2``. ``linear=True`` is the
    deprecated spelling of ``mode='linear'``.
    """
    mode = _check_iou_loss_mode(mode, linear, 'iou_loss')
    iou = _iou_log_floor(pred, target, eps)
    if mode == 'linear':
        return 1 - iou
    if mode == 'square':
        return 1 - iou ** 2
    return -iou.log()


@weighted_loss
def giou_loss(pred: Tensor, target: Tensor, eps: float = 1e-7,
              style: str = 'mmdet') -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - GIoU``."""
    return 1 - aligned_iou(pred, target, 'giou', style, eps)


@weighted_loss
def diou_loss(pred: Tensor, target: Tensor, eps: float = 1e-7,
              style: str = 'mmdet') -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - DIoU``."""
    return 1 - aligned_iou(pred, target, 'diou', style, eps)


def _ciou(pred: Tensor, target: Tensor, eps: float, style: str) -> Tensor:
    ciou = aligned_iou(pred, target, 'ciou', style, eps)
    # mmdet clamps the similarity to [-1, 1]; ultralytics does not.
    return ciou.clamp(min=-1.0, max=1.0) if style == 'mmdet' else ciou


@weighted_loss
def ciou_loss(pred: Tensor, target: Tensor, eps: float = 1e-7,
              style: str = 'mmdet') -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - CIoU``.

    ``style='mmdet'``: CIoU clamped to [-1, 1], alpha gated to IoU > 0.5.
    ``style='yolo'``: ultralytics 8.4.190 (no gate, no clamp).
    """
    return 1 - _ciou(pred, target, eps, style)


def _smooth_eiou(distance: Tensor, smooth_point: float) -> Tensor:
    """Smooth-L1-like penalty of ``distance = 1 - extended IoU``: quadratic
    below ``smooth_point``, linear above (the switch is not differentiated,
    as in mmdet)."""
    quadratic = (distance < smooth_point).detach().to(distance.dtype)
    return (0.5 * quadratic * distance ** 2 / smooth_point
            + (1 - quadratic) * (distance - 0.5 * smooth_point))


@weighted_loss
def eiou_loss(pred: Tensor, target: Tensor, smooth_point: float = 0.1,
              eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` mmdet's smooth extended-IoU loss
    of ``1 - eiou`` (see ``aligned_iou(mode='eiou')``)."""
    return _smooth_eiou(1 - aligned_iou(pred, target, 'eiou', eps=eps), smooth_point)


def _siou(pred: Tensor, target: Tensor, eps: float, neg_gamma: bool) -> Tensor:
    siou = aligned_iou(pred, target, 'siou', eps=eps, neg_gamma=neg_gamma)
    return siou.clamp(min=-1.0, max=1.0)


@weighted_loss
def siou_loss(pred: Tensor, target: Tensor, eps: float = 1e-7,
              neg_gamma: bool = False) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` ``1 - SIoU`` (SIoU clamped to
    [-1, 1])."""
    return 1 - _siou(pred, target, eps, neg_gamma)


def _broadcasts_to(shape: torch.Size, target_shape: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target_shape) == target_shape
    except RuntimeError:
        return False


class _BoxLoss(BaseLoss):
    """Input checks, weight handling and reduction shared by the IoU family.

    Subclasses implement ``_loss(pred, target, weight, reduction,
    avg_factor)`` with one of the ``@weighted_loss`` functions above and
    ``iou(pred, target)``.
    """

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args:
            pred: ``[..., 4]`` predicted xyxy boxes.
            target: ``[..., 4]`` target xyxy boxes, same shape and unit.
            weight: ``[...]`` per-box weight (or broadcasting to it), or
                ``[..., 4]``, averaged over the last dimension.
            avg_factor: replaces the box count of ``'mean'``.
            reduction_override: ``'none'``, ``'mean'`` or ``'sum'``.

        Returns:
            ``[...]`` for ``'none'``, else a scalar; times ``loss_weight``.
        """
        reduction = self.resolve_reduction(reduction_override)
        weight = self._check_inputs(pred, target, weight)
        return self.loss_weight * self._loss(pred, target, weight, reduction=reduction,
                                             avg_factor=avg_factor)

    def _check_inputs(self, pred: Tensor, target: Tensor,
                      weight: Optional[Tensor] = None) -> Optional[Tensor]:
        check_box_pair(pred, target)
        check_same_shape('pred', pred, 'target', target)
        if weight is not None:
            check_tensor('weight', weight)
            if weight.shape != pred.shape and not _broadcasts_to(weight.shape,
                                                                 pred.shape[:-1]):
                raise ValueError(
                    f'weight must have shape {tuple(pred.shape[:-1])} (one per box, '
                    f'or broadcasting to it) or {tuple(pred.shape)} (like pred), '
                    f'got {tuple(weight.shape)}')
        if self.validating:
            check_xyxy('pred', pred)
            check_xyxy('target', target)
            check_finite('weight', weight)
        if weight is not None and weight.shape == pred.shape:
            weight = weight.mean(-1)  # mmdet: a [N, 4] weight becomes [N]
        return weight

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` the plain IoU (no penalty) under this
        loss's ``eps`` and ``style``: what the Inner-/Focaler-IoU wrappers
        add back (``iou()`` is the penalised similarity for GIoU/CIoU/...)."""
        return aligned_iou(pred, target, 'iou', getattr(self, 'style', 'mmdet'),
                           getattr(self, 'eps', None))

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        raise NotImplementedError


def _resolve_eps(eps: Optional[float], style: str) -> float:
    if eps is None:
        return MMDET_MODULE_EPS if style == 'mmdet' else default_iou_eps('ciou', style)
    return check_eps(eps)


def _check_style(style: str) -> str:
    if style not in ('mmdet', 'yolo'):
        raise ValueError(f"style must be 'mmdet' or 'yolo', got {style!r}")
    return style


@MODELS.register_module()
class IoULoss(_BoxLoss):
    """IoU loss (mmdet 3.3.0 ``IoULoss``).

    Args:
        linear: deprecated; ``True`` means ``mode='linear'`` (with a
            ``DeprecationWarning``).
        eps: floor of the IoU before the loss (``log(0)`` guard); the IoU
            itself uses ``bbox_overlaps``' union floor 1e-6, as in mmdet.
        reduction, loss_weight, validate: see ``BaseLoss``.
        mode: ``'log'`` (``-log(iou)``), ``'linear'`` (``1 - iou``) or
            ``'square'`` (``1 - iou**2``).

    ``iou(pred, target)`` gives the floored IoU the loss is computed from
    (``-log`` of it in ``'log'`` mode).
    """

    def __init__(self, linear: bool = False, eps: float = 1e-6,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 mode: str = 'log', validate: Optional[bool] = None) -> None:
        mode = _check_iou_loss_mode(mode, linear, 'IoULoss')
        eps = check_eps(eps)
        super().__init__(reduction, loss_weight, validate)
        self.mode = mode
        self.linear = bool(linear)
        self.eps = eps

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` ``max(IoU, eps)``."""
        self._check_inputs(pred, target)
        return _iou_log_floor(pred, target, self.eps)

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return iou_loss(pred, target, weight, mode=self.mode, eps=self.eps,
                        reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, eps={self.eps}, {super().extra_repr()}'


class _StyledIoULoss(_BoxLoss):
    """GIoU/DIoU/CIoU: ``1 - similarity`` in mmdet's or ultralytics' style.

    Args:
        eps: numerical guard; default 1e-6 (mmdet's module default) for
            ``style='mmdet'``, 1e-7 (ultralytics') for ``style='yolo'``.
        reduction, loss_weight, validate: see ``BaseLoss``.
        style: ``'mmdet'`` (mmdet 3.3.0) or ``'yolo'`` (ultralytics 8.4.190
            ``bbox_iou(..., xywh=False)``), see ``yolo_losses.ops.iou``.
    """
    # Each subclass sets the @weighted_loss function of
    # (pred, target, weight, eps=, style=, reduction=, avg_factor=) it calls.
    _loss_function: Callable[..., Tensor]

    def __init__(self, eps: Optional[float] = None, reduction: str = 'mean',
                 loss_weight: float = 1.0, style: str = 'mmdet',
                 validate: Optional[bool] = None) -> None:
        style = _check_style(style)
        eps = _resolve_eps(eps, style)
        super().__init__(reduction, loss_weight, validate)
        self.style = style
        self.eps = eps

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return self._loss_function(pred, target, weight, eps=self.eps,
                                   style=self.style, reduction=reduction,
                                   avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return f'style={self.style!r}, eps={self.eps}, {super().extra_repr()}'


@MODELS.register_module()
class GIoULoss(_StyledIoULoss):
    """Generalized IoU loss ``1 - GIoU`` (mmdet 3.3.0 ``GIoULoss``;
    ``style='yolo'``: ultralytics ``bbox_iou(GIoU=True)``).

    mmdet floors union and enclosing area at ``eps``; ultralytics adds
    ``eps`` to heights, union and enclosing area. See ``_StyledIoULoss`` for
    the arguments.
    """
    _loss_function = staticmethod(giou_loss)

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` GIoU in [-1, 1]."""
        self._check_inputs(pred, target)
        return aligned_iou(pred, target, 'giou', self.style, self.eps)


@MODELS.register_module()
class DIoULoss(_StyledIoULoss):
    """Distance-IoU loss ``1 - DIoU`` (mmdet 3.3.0 ``DIoULoss``;
    ``style='yolo'``: ultralytics ``bbox_iou(DIoU=True)``).
    See ``_StyledIoULoss`` for the arguments."""
    _loss_function = staticmethod(diou_loss)

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` DIoU in [-1, 1]."""
        self._check_inputs(pred, target)
        return aligned_iou(pred, target, 'diou', self.style, self.eps)


@MODELS.register_module()
class CIoULoss(_StyledIoULoss):
    """Complete-IoU loss ``1 - CIoU``.

    ``style='mmdet'`` (default) = mmdet 3.3.0 ``CIoULoss``: alpha (detached)
    only where IoU > 0.5, CIoU clamped to [-1, 1], eps 1e-6.
    ``style='yolo'`` = ultralytics 8.4.190 ``bbox_iou(xywh=False,
    CIoU=True)`` as used by ``v8DetectionLoss``: eps 1e-7 unless given,
    ``alpha = v / (1 - iou + v + eps)`` detached with no gate, no clamp.
    yolov5 7.0's loss calls ``bbox_iou`` on cxcywh boxes (no ``eps`` on the
    heights); with the same boxes in xyxy the two differ by round-off and
    ``O(eps)`` terms only.

    ``iou(pred, target)`` gives the CIoU the loss is ``1 -`` of (clamped in
    the mmdet style).
    """
    _loss_function = staticmethod(ciou_loss)

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` CIoU."""
        self._check_inputs(pred, target)
        return _ciou(pred, target, self.eps, self.style)


@MODELS.register_module()
class EIoULoss(_BoxLoss):
    """mmdet 3.3.0 ``EIoULoss``: a smooth penalty of ``1 - extended IoU``.

    The extended IoU (libfacedetection.train) equals the IoU for overlapping
    boxes and goes negative for disjoint ones; the penalty of
    ``d = 1 - eiou`` is ``0.5 d**2 / smooth_point`` below ``smooth_point``
    and ``d - 0.5 smooth_point`` above. (It is mmdet's EIoU, not Zhang et
    al.'s Efficient-IoU, which is ``EfficientIoULoss``: IoU plus centre,
    width and height distance terms, "EIoU" in most YOLO forks.)

    Args:
        eps: added to the union. Default 1e-6.
        reduction, loss_weight, validate: see ``BaseLoss``.
        smooth_point: > 0, where the penalty turns linear. Default 0.1.

    ``iou(pred, target)`` gives the extended IoU; the loss is the smooth
    penalty of ``1 -`` it, not ``1 -`` it.
    """

    def __init__(self, eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0, smooth_point: float = 0.1,
                 validate: Optional[bool] = None) -> None:
        eps = check_eps(eps)
        smooth_point = check_eps(smooth_point, 'smooth_point')
        if smooth_point <= 0:
            raise ValueError(f'smooth_point must be > 0, got {smooth_point}')
        super().__init__(reduction, loss_weight, validate)
        self.eps = eps
        self.smooth_point = smooth_point

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` extended IoU (<= 1, negative for
        disjoint boxes)."""
        self._check_inputs(pred, target)
        return aligned_iou(pred, target, 'eiou', eps=self.eps)

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return eiou_loss(pred, target, weight, smooth_point=self.smooth_point,
                         eps=self.eps, reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return (f'smooth_point={self.smooth_point}, eps={self.eps}, '
                f'{super().extra_repr()}')


@MODELS.register_module()
class SIoULoss(_BoxLoss):
    """SCYLLA-IoU loss ``1 - SIoU`` (mmdet 3.3.0 ``SIoULoss``, from YOLOv6).

    Args:
        eps: numerical guard. Default 1e-6.
        reduction, loss_weight, validate: see ``BaseLoss``.
        neg_gamma: ``False`` (default, mmdet's, more stable): distance cost
            with ``gamma = 2 - angle_cost``; ``True``: ``angle_cost - 2`` as
            in the paper.

    ``iou(pred, target)`` gives the SIoU clamped to [-1, 1].
    """

    def __init__(self, eps: float = 1e-6, reduction: str = 'mean',
                 loss_weight: float = 1.0, neg_gamma: bool = False,
                 validate: Optional[bool] = None) -> None:
        eps = check_eps(eps)
        if not isinstance(neg_gamma, bool):
            raise TypeError(f'neg_gamma must be a bool, got {type(neg_gamma).__name__}')
        super().__init__(reduction, loss_weight, validate)
        self.eps = eps
        self.neg_gamma = neg_gamma

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` SIoU in [-1, 1]."""
        self._check_inputs(pred, target)
        return _siou(pred, target, self.eps, self.neg_gamma)

    def _loss(self, pred, target, weight, reduction, avg_factor) -> Tensor:
        return siou_loss(pred, target, weight, eps=self.eps, neg_gamma=self.neg_gamma,
                         reduction=reduction, avg_factor=avg_factor)

    def extra_repr(self) -> str:
        return (f'neg_gamma={self.neg_gamma}, eps={self.eps}, '
                f'{super().extra_repr()}')

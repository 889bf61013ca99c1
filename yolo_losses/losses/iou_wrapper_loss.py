"""Inner-IoU and Focaler-IoU: wrappers that re-weight any box loss's IoU.

Both take a base box loss ``loss=dict(type=...)`` (any registered loss with
``iou()``: ``IoULoss``, ``GIoULoss``, ``DIoULoss``, ``CIoULoss``,
``SIoULoss``, ``EfficientIoULoss``, ``WIoULoss``, ... in either style) and
replace the IoU inside it: ``L = L_base + IoU - IoU'``, where ``IoU'`` is the
inner IoU (Inner-IoU) or the linearly re-mapped IoU (Focaler-IoU).

The ``IoU`` added back is the base's *plain* IoU under its own numerics
(``base.overlap()``; the same as ``base.iou()`` for the IoU-valued bases,
``IoULoss`` and ``WIoULoss``). For GIoU/CIoU/SIoU bases ``iou()`` is the
penalised similarity; adding that back would cancel the penalty, which is
not what the authors' ``inner_ciou``/``inner_siou`` compute (they replace the
IoU and keep the penalty): so ``Inner(CIoU) = 1 - IoU_inner + penalty``.
"""
from __future__ import annotations

import copy
from numbers import Real
from typing import Optional, Union

import torch
from torch import Tensor, nn

from ..registry import MODELS
from .iou_loss import _BoxLoss
from .utils import to_float32, weight_reduce_loss

__all__ = ['inner_iou', 'focaler_iou', 'InnerIoULoss', 'FocalerIoULoss']


def inner_iou(pred: Tensor, target: Tensor, ratio: float = 0.75,
              eps: float = 1e-7) -> Tensor:
    """``[..., 4]`` xyxy pairs -> ``[...]`` IoU of the auxiliary boxes: each
    box scaled by ``ratio`` about its centre; ``union + eps``
    (malagoutou/Inner-IoU ``inner_ciou`` @ db9e8db)."""
    pw, ph = pred[..., 2] - pred[..., 0], pred[..., 3] - pred[..., 1]
    tw, th = target[..., 2] - target[..., 0], target[..., 3] - target[..., 1]
    pcx, pcy = (pred[..., 0] + pred[..., 2]) / 2, (pred[..., 1] + pred[..., 3]) / 2
    tcx, tcy = (target[..., 0] + target[..., 2]) / 2, (target[..., 1] + target[..., 3]) / 2
    half = ratio / 2
    inter_w = (torch.minimum(pcx + pw * half, tcx + tw * half)
               - torch.maximum(pcx - pw * half, tcx - tw * half)).clamp(min=0)
    inter_h = (torch.minimum(pcy + ph * half, tcy + th * half)
               - torch.maximum(pcy - ph * half, tcy - th * half)).clamp(min=0)
    inter = inter_w * inter_h
    union = pw * ratio * ph * ratio + tw * ratio * th * ratio - inter + eps
    return inter / union


def focaler_iou(iou: Tensor, d: float = 0.0, u: float = 0.95) -> Tensor:
    """``[...]`` -> ``[...]`` ``clamp((IoU - d) / (u - d), 0, 1)``
    (malagoutou/Focaler-IoU @ d4dfc34), nothing detached."""
    return ((iou - d) / (u - d)).clamp(0, 1)


def _check_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f'{name} must be a real number, got {type(value).__name__}')
    return float(value)


class _IoUWrapperLoss(_BoxLoss):
    """Builds the base from ``loss``, computes ``L_base + IoU - IoU'``
    element-wise, then weights and reduces once."""

    def __init__(self, loss: dict, reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        if not hasattr(loss, 'get') or 'type' not in loss:
            raise TypeError(f'loss must be a config dict with a "type" key, got {loss!r}')
        super().__init__(reduction, loss_weight, validate)
        base = loss if isinstance(loss, nn.Module) else MODELS.build(copy.deepcopy(dict(loss)))
        if not callable(getattr(base, 'iou', None)):
            raise TypeError(f'loss ({type(base).__name__}) must be a box loss with an '
                            f'iou(pred, target) method')
        if float(getattr(base, 'loss_weight', 1.0)) != 1.0:
            raise ValueError(f'set loss_weight on {type(self).__name__}, not on its base '
                             f'loss (got loss_weight={base.loss_weight})')
        # The wrapper checks the inputs once; the base's value checks would
        # repeat the same host syncs.
        if 'validate' not in loss and hasattr(base, 'validate'):
            base.validate = False
        self.loss = base

    @property
    def wants_img_size(self) -> bool:
        """A base that takes ``img_size`` (MPDIoU) gets it through the
        wrapper."""
        return bool(getattr(self.loss, 'wants_img_size', False))

    def _base_overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        overlap = getattr(self.loss, 'overlap', None)
        if callable(overlap):
            return overlap(pred, target)
        return self.loss.iou(pred, target)

    def _replacement(self, iou: Tensor, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Args and result as every box loss; extra keyword arguments
        (``img_size``) go to the base. The base sees ``weight`` (so a
        stateful base such as ``WIoULoss`` skips zero-weight boxes)."""
        reduction = self.resolve_reduction(reduction_override)
        weight = self._check_inputs(pred, target, weight)
        base = self.loss(pred, target, weight=weight, reduction_override='none', **kwargs)
        pred32, target32 = to_float32(pred), to_float32(target)
        with torch.autocast(device_type=pred32.device.type, enabled=False):
            iou = self._base_overlap(pred32, target32).to(base.dtype)
            extra = iou - self._replacement(iou, pred32, target32).to(base.dtype)
            loss = base + (extra if weight is None else extra * weight)
            loss = weight_reduce_loss(loss, None, reduction, avg_factor)
        return self.loss_weight * loss

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """The base's ``iou()`` (e.g. yolov5's objectness target)."""
        return self.loss.iou(pred, target)

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        return self._base_overlap(pred, target)


@MODELS.register_module()
class InnerIoULoss(_IoUWrapperLoss):
    """Inner-IoU (Zhang et al. 2023, arXiv 2311.02877; malagoutou/Inner-IoU
    @ db9e8db): ``L = L_base + IoU - IoU_inner``.

    ``IoU_inner`` is the IoU of auxiliary boxes, each box scaled by
    ``ratio`` about its centre (``union + 1e-7``, as the reference);
    ``ratio < 1`` speeds up high-IoU samples, ``ratio > 1`` low-IoU ones.
    With a ``CIoULoss(style='yolo')`` base this is the authors'
    ``inner_ciou``; with ``SIoULoss`` their ``inner_siou`` (up to the
    base's own SIoU numerics). See the module docstring for the IoU added
    back.

    Args:
        loss: config of the base box loss (built with its own defaults).
        ratio: scale of the auxiliary boxes, > 0; 0.75 default (the
            authors' range is 0.5 to 1.5).
        reduction, loss_weight, validate: see ``BaseLoss``; ``loss_weight``
            scales the whole result (the base's must stay 1).
        eps: added to the inner union, 1e-7.

    ``iou(pred, target)`` gives the base's ``iou()``.
    """
    catalog_reference = ('malagoutou/Inner-IoU @ db9e8db; arXiv 2311.02877; wraps any box loss '
                         "with iou(); ratio 0.75 in the authors' range 0.5-1.5")

    def __init__(self, loss: dict, ratio: float = 0.75, reduction: str = 'mean',
                 loss_weight: float = 1.0, validate: Optional[bool] = None,
                 eps: float = 1e-7) -> None:
        ratio = _check_number(ratio, 'ratio')
        if not ratio > 0:
            raise ValueError(f'ratio must be > 0, got {ratio}')
        super().__init__(loss, reduction, loss_weight, validate)
        self.ratio = ratio
        self.eps = float(eps)

    def _replacement(self, iou: Tensor, pred: Tensor, target: Tensor) -> Tensor:
        return inner_iou(pred, target, self.ratio, self.eps)

    def extra_repr(self) -> str:
        return f'ratio={self.ratio}, {super().extra_repr()}'


@MODELS.register_module()
class FocalerIoULoss(_IoUWrapperLoss):
    """Focaler-IoU (Zhang & Zhang 2024, arXiv 2401.10525;
    malagoutou/Focaler-IoU @ d4dfc34): ``L = L_base + IoU - clamp((IoU - d)
    / (u - d), 0, 1)``, nothing detached.

    The linear re-mapping focuses the loss on hard samples (``d`` up,
    ``u`` up) or easy ones (``d`` down, ``u`` down). See the module
    docstring for which IoU is used.

    Args:
        loss: config of the base box loss (built with its own defaults).
        d, u: the interval, ``0 <= d < u <= 1``; defaults 0.0 and 0.95 are
            the reference code's.
        reduction, loss_weight, validate: see ``BaseLoss``; ``loss_weight``
            scales the whole result (the base's must stay 1).

    ``iou(pred, target)`` gives the base's ``iou()``.
    """
    catalog_reference = ('malagoutou/Focaler-IoU @ d4dfc34; arXiv 2401.10525; wraps any box loss'
                         " with iou(); d=0, u=0.95: the reference code's")

    def __init__(self, loss: dict, d: float = 0.0, u: float = 0.95,
                 reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        d, u = _check_number(d, 'd'), _check_number(u, 'u')
        if not 0.0 <= d < u <= 1.0:
            raise ValueError(f'd and u must satisfy 0 <= d < u <= 1, got d={d}, u={u}')
        super().__init__(loss, reduction, loss_weight, validate)
        self.d = d
        self.u = u

    def _replacement(self, iou: Tensor, pred: Tensor, target: Tensor) -> Tensor:
        return focaler_iou(iou, self.d, self.u)

    def extra_repr(self) -> str:
        return f'd={self.d}, u={self.u}, {super().extra_repr()}'

"""Varifocal loss (Zhang et al., VarifocalNet, https://arxiv.org/abs/2008.13367),
mmdet 3.3's ``VarifocalLoss``.

With ``p = sigmoid(pred)`` and an IoU-aware target score ``q`` in [0, 1]
(the IoU with the ground truth for the true class of a positive, 0
elsewhere)::

    loss = BCE(pred, q) * (q if q > 0 else alpha * p ** gamma)

Positives keep their full BCE, weighted by ``q`` itself (``iou_weighted``)
or by 1; only negatives are down-weighted, unlike the focal loss.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import MODELS
from ..validation import (check_finite, check_range, check_same_shape, check_tensor,
                          check_weight_broadcast)
from . import fused_path
from .base import SigmoidClassLoss
from .utils import weighted_loss

__all__ = ['varifocal_loss', 'VarifocalLoss']


@weighted_loss
def varifocal_loss(pred: Tensor, target: Tensor, alpha: float = 0.75,
                   gamma: float = 2.0, iou_weighted: bool = True) -> Tensor:
    """Element-wise varifocal loss.

    Args:
        pred: logits, any shape, usually ``[N, C]``.
        target: IoU-aware classification scores in [0, 1], shape of ``pred``.
        alpha: weight of the negative part (not the focal loss's alpha).
        gamma: focusing exponent of the negative part.
        iou_weighted: weigh positives by their target score, else by 1.

    Called through ``weighted_loss``: ``varifocal_loss(pred, target,
    weight=None, reduction='mean', avg_factor=None, alpha=..., gamma=...)``.

    mmdet writes the negative weight as ``alpha * |p - q| ** gamma``; for the
    negatives' ``q = 0`` that is ``alpha * p ** gamma``, the same value and
    the same gradient with respect to ``pred`` (targets are constants: a
    gradient into ``target`` at ``q = 0`` is not mmdet's).

    Returns:
        the loss (nats) of ``pred``'s shape before reduction; empty for an
        empty ``pred`` (``'mean'`` of it is 0, not NaN).
    """
    target = target.to(pred.dtype)
    negative_weight = alpha * pred.sigmoid().pow(gamma)
    positive_weight = target if iou_weighted else 1.0
    focal_weight = torch.where(target > 0, positive_weight, negative_weight)
    return F.binary_cross_entropy_with_logits(pred, target, reduction='none') * focal_weight


@MODELS.register_module()
class VarifocalLoss(SigmoidClassLoss):
    """Varifocal loss, mmdet 3.3's ``VarifocalLoss``.

    Args:
        use_sigmoid: must be True (as in mmdet).
        alpha: weight of the negative part, >= 0.
        gamma: focusing exponent of the negative part, >= 0.
        iou_weighted: weigh positives by their target score.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: value checks (NaN/inf, target range); ``None`` follows the
            global switch.
        fused: the fused Triton kernel (:mod:`yolo_losses.kernels`):
            ``None`` uses it on CUDA when Triton imports and the call is
            supported (float32/16/bf16), ``True`` requires it, ``False``
            keeps PyTorch. Same numbers to float32 round-off.

    Call ``loss(pred, target, weight=None, avg_factor=None,
    reduction_override=None)`` with ``pred`` ``[N, C]`` logits, ``target``
    scores in [0, 1] of the same shape and ``weight`` broadcasting to it
    (e.g. ``[N, 1]`` per prior; mmdet broadcasts ``weight`` as is).
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 alpha: float = 0.75,
                 gamma: float = 2.0,
                 iou_weighted: bool = True,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 validate: Optional[bool] = None,
                 fused: Optional[bool] = None) -> None:
        if not use_sigmoid:
            raise NotImplementedError(
                'VarifocalLoss supports only the sigmoid form (use_sigmoid=True), '
                'as mmdet')
        if not alpha >= 0:
            raise ValueError(f'alpha must be >= 0, got {alpha}')
        if not gamma >= 0:
            raise ValueError(f'gamma must be >= 0, got {gamma}')
        super().__init__(reduction, loss_weight, validate, fused)
        self.use_sigmoid = True
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.iou_weighted = bool(iou_weighted)

    # the call path (checks, validation, fused or PyTorch) is
    # SigmoidClassLoss.forward; these are its VarifocalLoss parts (logits
    # only: ``activated`` stays False)

    def _check_call(self, pred: Tensor, target: Tensor,
                    weight: Optional[Tensor]) -> Optional[Tensor]:
        check_tensor('target', target)
        check_same_shape('pred', pred, 'target', target)
        check_weight_broadcast(weight, pred.shape)
        return weight

    def _check_target_values(self, pred: Tensor, target: Tensor) -> None:
        check_finite('target', target)
        check_range('target', target, 0.0, 1.0, 'scores')

    def _fused_unsupported(self, pred: Tensor, target: Tensor,
                           weight: Optional[Tensor]) -> Optional[str]:
        return fused_path.varifocal_unsupported(pred, target, weight)

    def _fused_loss(self, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        return fused_path.fused_varifocal(pred, target, weight, reduction, avg_factor,
                                          self.alpha, self.gamma, self.iou_weighted)

    def _plain_loss(self, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        return varifocal_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor,
            alpha=self.alpha, gamma=self.gamma, iou_weighted=self.iou_weighted)

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, gamma={self.gamma}, '
                f'iou_weighted={self.iou_weighted}, ' + super().extra_repr())

"""Smooth L1 and L1 losses with mmdet 3.3's semantics.

Both are element-wise regression losses over ``pred`` and ``target`` of the
same shape (for boxes ``[N, 4]``, but any shape works). Reduction, ``weight``
and ``avg_factor`` follow :mod:`yolo_losses.losses.utils`.

Two deliberate differences from mmdet's modules, both giving the same numbers:

- mmdet returns ``(pred * weight).sum()`` early when no weight is positive,
  which costs a host-device synchronisation (``torch.any`` in an ``if``).
  Here the ordinary path runs: every weighted element is 0, so the result is
  0 for ``'mean'``, ``'sum'`` and any ``avg_factor`` and the gradient is 0 too,
  with no synchronisation. (With ``reduction='none'`` the zeros keep the
  element-wise shape instead of mmdet's scalar.)
- mmdet's normal path needs ``weight`` broadcastable to the loss; its early
  return also accepted a ``[N]`` weight for a ``[N, 4]`` loss. Here ``weight``
  must always broadcast to the element-wise loss (``ValueError`` otherwise).
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ..registry import MODELS
from ..validation import (check_finite, check_same_shape, check_tensor,
                          check_no_extra_kwargs, check_weight_broadcast)
from .base import BaseLoss
from .utils import weighted_loss


def check_regression_inputs(pred: Tensor, target: Tensor,
                            weight: Optional[Tensor], validate: bool) -> None:
    """Shapes of an element-wise regression loss (always) and finite values
    (only when ``validate``: one host sync per tensor)."""
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target, floating=True)
    check_same_shape('pred', pred, 'target', target)
    check_weight_broadcast(weight, pred.shape)
    if validate:
        check_finite('pred', pred)
        check_finite('target', target)
        check_finite('weight', weight)


def _check_beta(beta: float) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f'beta must be a positive number, got {beta!r}')
    return float(beta)


@weighted_loss
def smooth_l1_loss(pred: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Element-wise smooth L1 (Huber divided by ``beta``) loss.

    ``0.5 * d**2 / beta`` where ``d = |pred - target| < beta``, else
    ``d - 0.5 * beta``; in the units of ``pred`` (pixels for boxes).

    Args:
        pred: predictions, any shape ``[*]``.
        target: targets, the shape of ``pred``.
        beta: where the quadratic part turns linear; > 0.

    Returns:
        The element-wise loss ``[*]`` before the decorator's reduction; empty
        for an empty input (``'mean'`` of it is 0, not NaN).
    """
    beta = _check_beta(beta)
    check_same_shape('pred', pred, 'target', target)
    diff = (pred - target).abs()
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


@weighted_loss
def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise ``|pred - target|`` over ``[*]``-shaped tensors, in the
    units of ``pred``. Empty input: an empty loss."""
    check_same_shape('pred', pred, 'target', target)
    return (pred - target).abs()


@MODELS.register_module()
class SmoothL1Loss(BaseLoss):
    """Smooth L1 loss, mmdet 3.3's ``SmoothL1Loss``.

    Args:
        beta: threshold between the quadratic and the linear part (> 0).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: NaN/inf checks of the inputs (one host sync); ``None``
            follows the global switch.
    """

    def __init__(self, beta: float = 1.0, reduction: str = 'mean',
                 loss_weight: float = 1.0, validate: Optional[bool] = None) -> None:
        beta = _check_beta(beta)
        super().__init__(reduction, loss_weight, validate)
        self.beta = beta

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None, **kwargs) -> Tensor:
        """Args:
            pred: predictions ``[*]`` (e.g. box deltas ``[N, 4]``).
            target: targets, the shape of ``pred``.
            weight: element weights broadcastable to ``[*]``.
            avg_factor: replaces the element count of ``'mean'``.
            reduction_override: replaces the constructor's ``reduction``.

        Returns:
            The loss: ``[*]`` for ``'none'``, else a scalar (float32 for
            half/bfloat16 inputs).
        """
        check_no_extra_kwargs(type(self).__name__, kwargs)
        reduction = self.resolve_reduction(reduction_override)
        check_regression_inputs(pred, target, weight, self.validating)
        return self.loss_weight * smooth_l1_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor,
            beta=self.beta)

    def extra_repr(self) -> str:
        return f'beta={self.beta}, {super().extra_repr()}'


@MODELS.register_module()
class L1Loss(BaseLoss):
    """L1 loss, mmdet 3.3's ``L1Loss``.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: NaN/inf checks of the inputs (one host sync); ``None``
            follows the global switch.
    """

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None, **kwargs) -> Tensor:
        """Same arguments and result as :meth:`SmoothL1Loss.forward`."""
        check_no_extra_kwargs(type(self).__name__, kwargs)
        reduction = self.resolve_reduction(reduction_override)
        check_regression_inputs(pred, target, weight, self.validating)
        return self.loss_weight * l1_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor)

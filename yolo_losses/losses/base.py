"""Shared constructor/call plumbing of the registered loss modules."""
from __future__ import annotations

from typing import Any, Optional, Union

from torch import Tensor, nn

from ..kernels import check_fused_option, resolve_fused
from ..validation import (check_finite, check_range, check_reduction, check_tensor,
                          resolve_validate)


class BaseLoss(nn.Module):
    """``reduction``, ``loss_weight`` and ``validate`` handling, mmdet style.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: value checks (NaN/inf, ranges; one host sync). ``None``
            follows the global switch ``yolo_losses.set_validation``.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)
        self.loss_weight = float(loss_weight)
        self.validate = validate

    def resolve_reduction(self, reduction_override: Optional[str]) -> str:
        if reduction_override is None:
            return self.reduction
        return check_reduction(reduction_override, 'reduction_override')

    @property
    def validating(self) -> bool:
        return resolve_validate(self.validate)

    def extra_repr(self) -> str:
        return f'reduction={self.reduction!r}, loss_weight={self.loss_weight}'


class SigmoidClassLoss(BaseLoss):
    """The call path shared by the sigmoid classification losses with a
    fused kernel (``FocalLoss``, ``VarifocalLoss``, ``QualityFocalLoss``):

    1. reduction and ``pred`` type (always);
    2. ``_check_call``: shape / type checks of ``target`` and ``weight``
       (always; no sync), returning the weight in the form the loss uses;
    3. value checks when validating: ``pred`` finite (and in [0, 1] with
       ``activated``), ``_check_target_values``, ``weight`` finite;
    4. the fused kernel when :func:`yolo_losses.kernels.resolve_fused`
       picks it for ``_fused_unsupported``'s answer, else ``_plain_loss``
       (PyTorch, the reference), both times ``loss_weight`` times the result.

    Subclasses set ``activated`` (``False`` when the loss takes logits only)
    and implement the four ``_`` hooks.
    """

    activated: bool = False

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None,
                 fused: Optional[bool] = None) -> None:
        super().__init__(reduction, loss_weight, validate)
        self.fused = check_fused_option(fused)

    def forward(self,
                pred: Tensor,
                target: Any,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        reduction = self.resolve_reduction(reduction_override)
        check_tensor('pred', pred, floating=True)
        weight = self._check_call(pred, target, weight)
        if self.validating:
            check_finite('pred', pred)
            if self.activated:
                check_range('pred', pred, 0.0, 1.0, 'probabilities')
            self._check_target_values(pred, target)
            check_finite('weight', weight)
        if resolve_fused(self.fused, type(self).__name__, pred.device,
                         self._fused_unsupported(pred, target, weight)):
            return self.loss_weight * self._fused_loss(pred, target, weight, reduction,
                                                       avg_factor)
        return self.loss_weight * self._plain_loss(pred, target, weight, reduction,
                                                   avg_factor)

    def _check_call(self, pred: Tensor, target: Any,
                    weight: Optional[Tensor]) -> Optional[Tensor]:
        raise NotImplementedError

    def _check_target_values(self, pred: Tensor, target: Any) -> None:
        raise NotImplementedError

    def _fused_unsupported(self, pred: Tensor, target: Any,
                           weight: Optional[Tensor]) -> Optional[str]:
        raise NotImplementedError

    def _fused_loss(self, pred: Tensor, target: Any, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        raise NotImplementedError

    def _plain_loss(self, pred: Tensor, target: Any, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        raise NotImplementedError

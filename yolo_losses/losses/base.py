"""Shared constructor/call plumbing of the registered loss modules."""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..validation import check_reduction, resolve_validate


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

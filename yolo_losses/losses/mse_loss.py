"""Mean squared error loss with mmdet 3.3's semantics.

Unlike mmdet's ``mse_loss`` (which gives NaN for ``'mean'`` of an empty
input), ``'mean'`` of an empty input is 0, as the smooth L1 loss does; with
``'none'`` it is the empty element-wise loss, on ``pred``'s graph.
"""
from __future__ import annotations

from typing import Optional, Union

from torch import Tensor

from ..registry import MODELS
from ..validation import check_no_extra_kwargs, check_same_shape
from .base import BaseLoss
from .smooth_l1_loss import check_regression_inputs
from .utils import weighted_loss


@weighted_loss
def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise ``(pred - target) ** 2`` over ``[*]``-shaped tensors, in
    squared units of ``pred``. Empty input: an empty loss."""
    check_same_shape('pred', pred, 'target', target)
    return (pred - target).square()


@MODELS.register_module()
class MSELoss(BaseLoss):
    """Mean squared error, mmdet 3.3's ``MSELoss``.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: NaN/inf checks of the inputs (one host sync); ``None``
            follows the global switch.
    """

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None, **kwargs) -> Tensor:
        """Args:
            pred: predictions ``[*]``.
            target: targets, the shape of ``pred``.
            weight: element weights broadcastable to ``[*]``.
            avg_factor: replaces the element count of ``'mean'``.
            reduction_override: replaces the constructor's ``reduction``.

        Returns:
            ``[*]`` for ``'none'``, else a scalar (float32 for half/bfloat16).
        """
        check_no_extra_kwargs(type(self).__name__, kwargs)
        reduction = self.resolve_reduction(reduction_override)
        check_regression_inputs(pred, target, weight, self.validating)
        return self.loss_weight * mse_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor)

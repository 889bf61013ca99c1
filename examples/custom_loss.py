"""Add your own loss: a registered log-cosh regression loss, checked by the kit.

Run it as a script (``python examples/custom_loss.py``): it builds the loss
from a config dict, computes it once, then runs the conformance kit
(``yolo_losses.testing.check_loss_conventions``) and prints one line.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from yolo_losses import build_loss
from yolo_losses.losses.base import BaseLoss
from yolo_losses.losses.utils import weighted_loss
from yolo_losses.registry import MODELS
from yolo_losses.testing import check_loss_conventions
from yolo_losses.validation import check_finite, check_same_shape


@weighted_loss
def log_cosh_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise ``log(cosh(pred - target))``, shape of ``pred``.

    Written as ``|d| + softplus(-2|d|) - log 2`` because ``cosh`` overflows
    float32 for ``|d| > 89``.
    """
    diff = (pred - target).abs()
    return diff + F.softplus(-2.0 * diff) - math.log(2.0)


@MODELS.register_module()
class LogCoshLoss(BaseLoss):
    """Log-cosh regression loss: quadratic near 0, linear for large errors.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: NaN/inf checks (one host sync); ``None`` follows
            ``yolo_losses.set_validation``.
    """

    def forward(self, pred: Tensor, target: Tensor, weight=None,
                avg_factor=None, reduction_override=None) -> Tensor:
        """``pred``, ``target``: ``[..., K]`` of one shape; ``weight``
        broadcasts against them. Returns a scalar, or ``pred``'s shape with
        ``reduction='none'``."""
        reduction = self.resolve_reduction(reduction_override)
        check_same_shape('pred', pred, 'target', target)
        if self.validating:
            check_finite('pred', pred)
            check_finite('target', target)
        return self.loss_weight * log_cosh_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor)


def make_inputs(device: torch.device, dtype: torch.dtype):
    pred = torch.randn(16, 4, device=device, dtype=dtype) * 3
    target = torch.randn(16, 4, device=device, dtype=dtype)
    return pred, target


def main() -> None:
    loss = build_loss(dict(type='LogCoshLoss', loss_weight=2.0))
    value = loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]]))
    # 2.0 * mean(log cosh 0, log cosh 1) = log(cosh(1))
    assert math.isclose(value.item(), math.log(math.cosh(1.0)), rel_tol=1e-6)
    report = check_loss_conventions(dict(type='LogCoshLoss'), make_inputs)
    print(f'OK: {report}')


if __name__ == '__main__':
    main()

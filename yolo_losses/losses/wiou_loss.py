"""Wise-IoU v1, v2, v3 (Tong et al. 2023, arXiv 2301.10051).

Reference: Instinct323/wiou ``iou.py`` @ ca97fc0 (``IouLoss(ltype='WIoU',
monotonous=None/True/False)``; the paper's code, branch v1 @ ed0649f, has
the same formulas with class-level state).
"""
from __future__ import annotations

from numbers import Real
from typing import Optional, Union

import torch
from torch import Tensor

from ..registry import MODELS
from .iou_loss import _BoxLoss
from .utils import to_float32, weight_reduce_loss

__all__ = ['wiou_terms', 'WIoULoss', 'WIOU_VERSIONS']

WIOU_VERSIONS = ('v1', 'v2', 'v3')


def _floor_tiny(value: Tensor) -> Tensor:
    """A 0 denominator becomes the dtype's smallest normal number: where the
    reference gives 0/0 = NaN (zero-area union, coinciding point boxes) the
    ratio is 0; elsewhere nothing changes."""
    return value.clamp(min=torch.finfo(value.dtype).tiny)


def wiou_terms(pred: Tensor, target: Tensor):
    """``[..., 4]`` xyxy pairs -> ``(L_IoU, R)``, both ``[...]``.

    ``L_IoU = 1 - inter / union`` (no eps, as the reference) and the
    distance attention ``R = exp(rho^2 / (W_g^2 + H_g^2))`` with only the
    enclosing box's squared diagonal detached. Wise-IoU v1 is ``R * L_IoU``.
    """
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    # relu, as the reference: its gradient at a zero-width overlap is 0
    inter = (torch.relu(torch.minimum(px2, tx2) - torch.maximum(px1, tx1))
             * torch.relu(torch.minimum(py2, ty2) - torch.maximum(py1, ty1)))
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    l_iou = 1 - inter / _floor_tiny(union)
    enclose_w = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
    enclose_h = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    diag2 = _floor_tiny(enclose_w ** 2 + enclose_h ** 2).detach()
    centre2 = ((px1 + px2 - tx1 - tx2) ** 2 + (py1 + py2 - ty1 - ty2) ** 2) / 4
    return l_iou, torch.exp(centre2 / diag2)


def _check_positive(value, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f'{name} must be a real number, got {type(value).__name__}')
    value = float(value)
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float('inf'):
        raise ValueError(f'{name} must be {">= 0" if allow_zero else "> 0"} and finite, '
                         f'got {value}')
    return value


@MODELS.register_module()
class WIoULoss(_BoxLoss):
    """Wise-IoU loss, v1/v2/v3 (Tong et al. 2023; Instinct323/wiou
    ``iou.py`` @ ca97fc0).

    - ``L_IoU = 1 - IoU`` (no eps); v1: ``L = exp(rho^2 / (W_g^2 + H_g^2))
      * L_IoU``, the enclosing-box diagonal detached.
    - ``beta = L_IoU.detach() / iou_mean`` (the outlier degree);
      v2: ``L = v1 * beta^gamma`` (monotonic focusing; the reference's
      ``sqrt`` is ``gamma = 0.5``); v3: ``L = v1 * beta / (delta *
      alpha^(beta - delta))`` (non-monotonic focusing).

    State: the buffer ``iou_mean`` (the running mean of ``L_IoU``, initial
    1.0) is saved in checkpoints and restored on resume (the forks keep it as
    a class attribute and lose it: yolov9 #200). In training mode only, on
    every call, after every input check and *before* the loss is computed
    (as the reference does): ``iou_mean = (1 - momentum) * iou_mean +
    momentum * mean(L_IoU.detach())`` over the call's boxes. Boxes whose
    ``weight`` is 0 are not part of that mean (the composite losses pass
    fixed-size slots where background slots have weight 0); a call with no
    box (or only zero weights) leaves ``iou_mean`` unchanged (the reference
    would store a NaN). The update runs on the device, without a host sync.
    In eval mode ``iou_mean`` is read, never written. The update happens for
    v1 too (v1's value does not depend on it), as in the reference.

    Distributed training: under DDP each process keeps its own ``iou_mean``
    from its own boxes, as the reference does; the processes' means drift
    apart slightly and the rank-0 checkpoint saves rank 0's. (Averaging
    across processes is not done.)

    Finite where the reference is not: a zero-area union or two coinciding
    point boxes give ``IoU = 0`` and ``R = 1`` (the reference: NaN).

    Args:
        version: ``'v1'``, ``'v2'`` or ``'v3'`` (default).
        alpha, delta: v3's focusing parameters; defaults 1.9 and 3.0 are the
            paper's (the reference repository's class defaults are 1.7 and
            2.7).
        gamma: v2's exponent, 0.5 (the reference's ``sqrt``).
        momentum: of the running mean; 0.01 as the reference. (The paper's
            suggestion is ``1 - 0.05 ** (1 / (batches per epoch * epochs
            until mAP levels off))``.)
        reduction, loss_weight, validate: see ``BaseLoss``.

    ``iou(pred, target)`` gives the plain IoU ``1 - L_IoU`` (no state
    change).
    """
    catalog_reference = ('Instinct323/wiou iou.py @ ca97fc0; Tong et al. 2023, arXiv 2301.10051;'
                         " alpha, delta: the paper's (the repository's class defaults are 1.7, "
                         "2.7), momentum: the repository's")

    def __init__(self, version: str = 'v3', alpha: float = 1.9, delta: float = 3.0,
                 gamma: float = 0.5, momentum: float = 0.01, reduction: str = 'mean',
                 loss_weight: float = 1.0, validate: Optional[bool] = None) -> None:
        if version not in WIOU_VERSIONS:
            raise ValueError(f'version must be one of {WIOU_VERSIONS}, got {version!r}')
        alpha = _check_positive(alpha, 'alpha')
        delta = _check_positive(delta, 'delta')
        gamma = _check_positive(gamma, 'gamma', allow_zero=True)
        momentum = _check_positive(momentum, 'momentum', allow_zero=True)
        if momentum > 1:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        super().__init__(reduction, loss_weight, validate)
        self.version = version
        self.alpha = alpha
        self.delta = delta
        self.gamma = gamma
        self.momentum = momentum
        self.register_buffer('iou_mean', torch.tensor(1.0))

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args and result as every box loss (``_BoxLoss.forward``); in
        training mode the call first updates ``iou_mean``."""
        reduction = self.resolve_reduction(reduction_override)
        weight = self._check_inputs(pred, target, weight)
        pred32, target32 = to_float32(pred), to_float32(target)
        with torch.autocast(device_type=pred32.device.type, enabled=False):
            l_iou, distance = wiou_terms(pred32, target32)
            if self.training:
                self._update_mean(l_iou.detach(), weight)
            loss = distance * l_iou
            if self.version != 'v1':
                beta = l_iou.detach() / self.iou_mean.to(l_iou.dtype)
                if self.version == 'v2':
                    loss = loss * beta ** self.gamma
                else:
                    loss = loss * (beta / (self.delta * self.alpha ** (beta - self.delta)))
            loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss

    @torch.no_grad()
    def _update_mean(self, l_iou: Tensor, weight: Optional[Tensor]) -> None:
        if weight is None:
            included = torch.ones_like(l_iou)
        else:
            included = torch.broadcast_to(weight != 0, l_iou.shape).to(l_iou.dtype)
        count = included.sum()
        batch_mean = (l_iou * included).sum() / count.clamp(min=1)
        current = self.iou_mean.to(l_iou.dtype)
        updated = (1 - self.momentum) * current + self.momentum * batch_mean
        self.iou_mean.copy_(torch.where(count > 0, updated, current))

    def iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """``[..., 4]`` x2 -> ``[...]`` plain IoU, no eps (0 for a zero
        union)."""
        self._check_inputs(pred, target)
        return self.overlap(pred, target)

    def overlap(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = to_float32(pred), to_float32(target)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return 1 - wiou_terms(pred, target)[0]

    def extra_repr(self) -> str:
        return (f'version={self.version!r}, alpha={self.alpha}, delta={self.delta}, '
                f'gamma={self.gamma}, momentum={self.momentum}, {super().extra_repr()}')

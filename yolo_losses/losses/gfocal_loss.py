"""Generalized focal loss (Li et al., GFL, https://arxiv.org/abs/2006.04388):
quality focal loss (QFL) and distribution focal loss (DFL), mmdet 3.3's
``QualityFocalLoss`` and ``DistributionFocalLoss``.

QFL, with ``p = sigmoid(pred)`` and a soft target ``y`` in [0, 1] (the
quality, e.g. IoU, on the true class of a positive, 0 elsewhere), summed over
the classes::

    QFL = sum_c BCE(pred_c, y_c) * |y_c - p_c| ** beta

DFL, for a distance ``y`` between the integer bins ``y_l = floor(y)`` and
``y_r = y_l + 1`` of a discrete distribution ``S = softmax(pred)`` over
``{0, ..., n}``::

    DFL = -((y_r - y) * log S[y_l] + (y - y_l) * log S[y_r])
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import MODELS
from ..validation import (check_finite, check_ndim, check_range, check_same_shape,
                          check_tensor, check_weight_broadcast)
from . import fused_path
from .base import BaseLoss, SigmoidClassLoss
from .utils import weighted_loss

__all__ = ['quality_focal_loss', 'quality_focal_loss_with_prob',
           'quality_focal_loss_tensor_target', 'distribution_focal_loss',
           'QualityFocalLoss', 'DistributionFocalLoss']


def _quality_focal_summed(pred: Tensor, soft_target: Tensor, beta: float,
                          activated: bool) -> Tensor:
    """QFL of ``pred`` ``[N, C, ...]`` against soft targets of its shape,
    summed over the class dimension 1 -> ``[N, ...]``.

    mmdet computes negatives as ``BCE(pred, 0) * p ** beta`` and overwrites
    the positives; with ``y = 0`` the single formula ``BCE(pred, y) *
    |y - p| ** beta`` gives exactly those numbers and the same gradient with
    respect to ``pred``, with no indexing (targets are constants: a gradient
    into a tensor target at ``y = 0``, which mmdet cuts, is not mmdet's).
    An empty ``pred`` gives an empty loss (``'mean'`` of it is 0, not NaN).
    """
    soft_target = soft_target.to(pred.dtype)
    if activated:
        prob = pred
        bce = F.binary_cross_entropy(pred, soft_target, reduction='none')
    else:
        prob = pred.sigmoid()
        bce = F.binary_cross_entropy_with_logits(pred, soft_target, reduction='none')
    return (bce * (soft_target - prob).abs().pow(beta)).sum(dim=1)


def _soft_target_from_labels(label: Tensor, score: Tensor, num_classes: int,
                             dtype: torch.dtype) -> Tensor:
    """``[N, C]`` soft target: ``score`` on each prior's class, 0 elsewhere.

    Class ids outside [0, C) (C is the background) match no column, so those
    priors are negatives, as in mmdet.
    """
    classes = torch.arange(num_classes, device=label.device)
    is_true_class = label.unsqueeze(1) == classes
    return torch.where(is_true_class, score.to(dtype).unsqueeze(1), 0.0)


def _split_label_score(target) -> Tuple[Tensor, Tensor]:
    if len(target) != 2:
        raise ValueError(
            'target for QFL must be a tensor or a pair (label, score), '
            f'got a sequence of {len(target)}')
    return target[0], target[1]


@weighted_loss
def quality_focal_loss(pred: Tensor, target: Sequence[Tensor],
                       beta: float = 2.0) -> Tensor:
    """QFL on logits with a ``(label, score)`` target.

    Args:
        pred: ``[N, C]`` logits of the joint class-quality score.
        target: ``label`` ``[N]`` integer class ids (``C`` = background) and
            ``score`` ``[N]`` quality (IoU) of each prior's true class.
        beta: modulating exponent.

    Called through ``weighted_loss``: ``quality_focal_loss(pred, (label,
    score), weight=None, reduction='mean', avg_factor=None, beta=...)``.

    Returns:
        ``[N]`` loss (nats) summed over the classes, before reduction.
    """
    label, score = _split_label_score(target)
    soft_target = _soft_target_from_labels(label, score, pred.shape[1], pred.dtype)
    return _quality_focal_summed(pred, soft_target, beta, activated=False)


@weighted_loss
def quality_focal_loss_with_prob(pred: Tensor, target: Sequence[Tensor],
                                 beta: float = 2.0) -> Tensor:
    """QFL as :func:`quality_focal_loss`, with ``pred`` probabilities in
    [0, 1] (BCE logarithms clamped at -100 as ``F.binary_cross_entropy``)."""
    label, score = _split_label_score(target)
    soft_target = _soft_target_from_labels(label, score, pred.shape[1], pred.dtype)
    return _quality_focal_summed(pred, soft_target, beta, activated=True)


@weighted_loss
def quality_focal_loss_tensor_target(pred: Tensor, target: Tensor,
                                     beta: float = 2.0,
                                     activated: bool = False) -> Tensor:
    """QFL with a soft target tensor.

    Args:
        pred: ``[N, C, ...]`` logits, or probabilities with ``activated``.
        target: soft targets in [0, 1] of ``pred``'s shape (one-hot
            weighted by quality).
        beta: modulating exponent.
        activated: ``pred`` are probabilities.

    Returns:
        ``[N, ...]`` loss (nats) summed over the class dimension 1.
    """
    return _quality_focal_summed(pred, target, beta, activated)


@weighted_loss
def distribution_focal_loss(pred: Tensor, label: Tensor) -> Tensor:
    """Element-wise DFL.

    Args:
        pred: ``[N, n + 1]`` logits of a distribution over the integer
            distances ``{0, ..., n}`` (any ``[..., n + 1]``), in bins.
        label: ``[N]`` target distance in bins, in [0, n] (``pred``'s shape
            without its last dimension).

    Called through ``weighted_loss``: ``distribution_focal_loss(pred, label,
    weight=None, reduction='mean', avg_factor=None)``.

    ``label == n`` puts all the weight on bin ``n`` (mmdet would index bin
    ``n + 1`` there and fail).

    Returns:
        the loss (nats) of ``label``'s shape, before reduction; empty for an
        empty ``pred`` (``'mean'`` of it is 0, not NaN).
    """
    if not label.is_floating_point():
        label = label.to(pred.dtype)
    max_bin = pred.shape[-1] - 1
    left_bin = label.long()  # floor, as labels are >= 0
    right_bin = left_bin + 1
    left_weight = right_bin.to(label.dtype) - label
    right_weight = label - left_bin.to(label.dtype)
    # One log-softmax and one gather for both bins (mmdet runs cross-entropy
    # twice); clamping only matters at label == n, where right_weight is 0.
    bins = torch.stack((left_bin, right_bin), dim=-1).clamp_(0, max_bin)
    log_probs = pred.log_softmax(dim=-1).gather(-1, bins)
    return -(log_probs[..., 0] * left_weight + log_probs[..., 1] * right_weight)


@MODELS.register_module()
class QualityFocalLoss(SigmoidClassLoss):
    """Quality focal loss, mmdet 3.3's ``QualityFocalLoss``.

    Args:
        use_sigmoid: must be True (as in mmdet).
        beta: modulating exponent, >= 0.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        activated: ``pred`` are probabilities rather than logits.
        validate: value checks (NaN/inf, class ids, score range); ``None``
            follows the global switch.
        fused: the fused Triton kernel (:mod:`yolo_losses.kernels`) for
            logits ``[N, C]`` with a soft-target tensor: ``None`` uses it on
            CUDA when Triton imports and the call is supported, ``True``
            requires it, ``False`` keeps PyTorch. Same numbers to float32
            round-off.

    Call ``loss(pred, target, weight=None, avg_factor=None,
    reduction_override=None)`` with ``pred`` ``[N, C]`` and ``target`` either
    a pair ``(label [N] integer class ids, C = background; score [N] in
    [0, 1])`` or a tensor of soft targets of ``pred``'s shape (``[N, C, ...]``,
    classes on dimension 1). The loss is summed over the classes, so
    ``weight`` broadcasts to ``[N]`` (``[N, ...]``).
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 beta: float = 2.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 activated: bool = False,
                 validate: Optional[bool] = None,
                 fused: Optional[bool] = None) -> None:
        if not use_sigmoid:
            raise NotImplementedError(
                'QualityFocalLoss supports only the sigmoid form '
                '(use_sigmoid=True), as mmdet')
        if not beta >= 0:
            raise ValueError(f'beta must be >= 0, got {beta}')
        super().__init__(reduction, loss_weight, validate, fused)
        self.use_sigmoid = True
        self.beta = float(beta)
        self.activated = bool(activated)

    # the call path (checks, validation, fused or PyTorch) is
    # SigmoidClassLoss.forward; these are its QualityFocalLoss parts

    def _check_call(self, pred: Tensor, target: Union[Tensor, Sequence[Tensor]],
                    weight: Optional[Tensor]) -> Optional[Tensor]:
        if isinstance(target, Tensor):
            if pred.dim() < 2:
                raise ValueError(
                    f'pred must be [N, C, ...] with classes on dimension 1, '
                    f'got shape {tuple(pred.shape)}')
            check_same_shape('pred', pred, 'target', target)
        elif isinstance(target, (tuple, list)):
            self._check_label_score(pred, target)
        else:
            raise TypeError(
                'target must be a tensor or a pair (label, score), '
                f'got {type(target).__name__}')
        # the loss is summed over the classes (dimension 1)
        check_weight_broadcast(weight, pred.shape[:1] + pred.shape[2:])
        return weight

    def _check_label_score(self, pred: Tensor, target: Sequence) -> None:
        label, score = _split_label_score(target)
        check_ndim('pred', pred, (2,))
        check_tensor('target label', label)
        check_tensor('target score', score, floating=True)
        if label.is_floating_point() or label.dtype == torch.bool:
            raise TypeError(f'target label must be integer class ids, got {label.dtype}')
        num_priors = pred.shape[0]
        if label.shape != (num_priors,):
            raise ValueError(
                f'target label must have shape ({num_priors},), got {tuple(label.shape)}')
        if score.shape != (num_priors,):
            raise ValueError(
                f'target score must have shape ({num_priors},), got {tuple(score.shape)}')

    def _check_target_values(self, pred: Tensor,
                             target: Union[Tensor, Sequence[Tensor]]) -> None:
        if isinstance(target, Tensor):
            check_finite('target', target)
            check_range('target', target, 0.0, 1.0, 'scores')
            return
        label, score = target
        num_classes = pred.shape[1]
        check_range('target label', label, 0, num_classes,
                    f'class ids (background = {num_classes})')
        check_finite('target score', score)
        check_range('target score', score, 0.0, 1.0, 'scores')

    def _fused_unsupported(self, pred: Tensor, target, weight: Optional[Tensor]
                           ) -> Optional[str]:
        return fused_path.quality_focal_unsupported(pred, target, weight, self.activated)

    def _fused_loss(self, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        return fused_path.fused_quality_focal(pred, target, weight, reduction, avg_factor,
                                              self.beta)

    def _plain_loss(self, pred: Tensor, target, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        kwargs = dict(reduction=reduction, avg_factor=avg_factor, beta=self.beta)
        if isinstance(target, Tensor):
            return quality_focal_loss_tensor_target(
                pred, target, weight, activated=self.activated, **kwargs)
        if self.activated:
            return quality_focal_loss_with_prob(pred, tuple(target), weight, **kwargs)
        return quality_focal_loss(pred, tuple(target), weight, **kwargs)

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, activated={self.activated}, '
                + super().extra_repr())


@MODELS.register_module()
class DistributionFocalLoss(BaseLoss):
    """Distribution focal loss, mmdet 3.3's ``DistributionFocalLoss``.

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        validate: value checks (NaN/inf, label range); ``None`` follows the
            global switch.

    Call ``loss(pred, target, weight=None, avg_factor=None,
    reduction_override=None)`` with ``pred`` ``[N, n + 1]`` logits over the
    bins ``{0, ..., n}`` (e.g. ``n + 1 = reg_max = 16`` in YOLOv8), ``target``
    ``[N]`` distances in bins in [0, n], and ``weight`` broadcasting to
    ``[N]`` (YOLOv8 weighs each side by its box's target score and divides
    by their sum through ``avg_factor``).
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0,
                 validate: Optional[bool] = None) -> None:
        super().__init__(reduction, loss_weight, validate)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[Union[float, Tensor]] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        reduction = self.resolve_reduction(reduction_override)
        check_tensor('pred', pred, floating=True)
        check_tensor('target', target)
        if pred.dim() == 0 or pred.shape[-1] < 2:
            raise ValueError(
                'pred must be [N, n + 1] logits over at least 2 bins, '
                f'got shape {tuple(pred.shape)}')
        if target.shape != pred.shape[:-1]:
            raise ValueError(
                f'target must have shape {tuple(pred.shape[:-1])} (pred '
                f'{tuple(pred.shape)} without its bins), got {tuple(target.shape)}')
        if target.dtype == torch.bool:
            raise TypeError('target must hold distances in bins, got a bool tensor')
        check_weight_broadcast(weight, target.shape)
        if self.validating:
            check_finite('pred', pred)
            check_finite('target', target)
            max_bin = pred.shape[-1] - 1
            check_range('target', target, 0.0, max_bin, f'distances (bins 0..{max_bin})')
            check_finite('weight', weight)
        loss = distribution_focal_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor)
        return self.loss_weight * loss

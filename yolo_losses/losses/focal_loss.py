"""Sigmoid focal loss (Lin et al., https://arxiv.org/abs/1708.02002), mmdet 3.3's
``FocalLoss``.

With ``p = sigmoid(pred)`` and a target ``t`` in [0, 1] (one-hot or soft),
the element-wise loss is::

    BCE(pred, t) * (alpha * t + (1 - alpha) * (1 - t)) * (p + t - 2 * p * t) ** gamma

``p + t - 2 p t`` is the paper's ``1 - p_t``: ``1 - p`` for a positive, ``p``
for a negative, linear in between for soft targets (mmdet's
``py_sigmoid_focal_loss``). mmdet sends label-index targets on CUDA to an
mmcv kernel whose numbers equal this one-hot formula; here the same formula
runs everywhere, in plain PyTorch.

yolov5's ``FocalLoss`` (wrapping ``BCEWithLogitsLoss(pos_weight=...)``) is the
same formula with ``pos_weight`` inside the BCE; it is the ``pos_weight``
option here.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import MODELS
from ..validation import check_finite, check_range, check_tensor
from . import fused_path
from .base import SigmoidClassLoss
from .utils import weighted_loss

__all__ = ['sigmoid_focal_loss', 'focal_loss_with_prob', 'FocalLoss', 'per_prior_weight']


def _focal_modulation(prob: Tensor, target: Tensor, gamma: float,
                      alpha: float) -> Tensor:
    """``alpha_t * (1 - p_t) ** gamma``, element-wise, shape of ``prob``."""
    # 1 - p_t = p + t * (1 - 2p): one fused multiply-add where mmdet spends
    # four products and two sums; equal to it up to float round-off.
    one_minus_pt = torch.addcmul(prob, target, torch.rsub(prob, 1.0, alpha=2.0))
    # alpha * t + (1 - alpha) * (1 - t), rearranged to one scale and shift.
    alpha_t = target * (2.0 * alpha - 1.0) + (1.0 - alpha)
    return alpha_t * one_minus_pt.pow(gamma)


@weighted_loss
def sigmoid_focal_loss(pred: Tensor, target: Tensor, gamma: float = 2.0,
                       alpha: float = 0.25,
                       pos_weight: Optional[Tensor] = None) -> Tensor:
    """Element-wise sigmoid focal loss on logits.

    Args:
        pred: logits, any shape, usually ``[N, C]``.
        target: one-hot or soft targets in [0, 1], shape of ``pred``.
        gamma: focusing exponent.
        alpha: weight of the positive part; ``1 - alpha`` weighs the negative.
        pos_weight: optional weight of the positive term inside the BCE,
            broadcasting against ``pred`` (``[C]`` or ``[1]``), as
            ``BCEWithLogitsLoss(pos_weight=...)``.

    Called through ``weighted_loss``: ``sigmoid_focal_loss(pred, target,
    weight=None, reduction='mean', avg_factor=None, gamma=..., alpha=...)``;
    give everything after ``target`` by keyword. ``weight`` broadcasts as
    is; ``FocalLoss`` also accepts mmdet's per-prior ``[N]`` weights.

    Returns:
        the loss (nats) of ``pred``'s shape before reduction; empty for an
        empty ``pred`` (``'mean'`` of it is 0, not NaN).
    """
    target = target.to(pred.dtype)
    if pos_weight is not None:
        pos_weight = pos_weight.to(pred.dtype)
    bce = F.binary_cross_entropy_with_logits(
        pred, target, reduction='none', pos_weight=pos_weight)
    return bce * _focal_modulation(pred.sigmoid(), target, gamma, alpha)


@weighted_loss
def focal_loss_with_prob(pred: Tensor, target: Tensor, gamma: float = 2.0,
                         alpha: float = 0.25) -> Tensor:
    """Element-wise focal loss on probabilities (mmdet's
    ``py_focal_loss_with_prob``): ``pred`` already went through a sigmoid.

    The BCE is ``F.binary_cross_entropy``, whose logarithms are clamped at
    -100, so probabilities of exactly 0 or 1 give a finite loss.

    Args:
        pred: probabilities in [0, 1], any shape.
        target: one-hot or soft targets in [0, 1], shape of ``pred``.
        gamma, alpha: as in :func:`sigmoid_focal_loss`.

    Empty ``pred``: an empty loss of its shape.
    """
    target = target.to(pred.dtype)
    bce = F.binary_cross_entropy(pred, target, reduction='none')
    return bce * _focal_modulation(pred, target, gamma, alpha)


def per_prior_weight(weight, loss_shape: torch.Size) -> Tensor:
    """mmdet's weight rules for ``[N, C]`` focal losses, for any ``[..., C]``.

    - the loss's shape: used as is;
    - one weight per prior, ``[...]`` or ``[..., 1]`` (``[N]``, ``[N, 1]``):
      reshaped to ``[..., 1]`` so it spreads over the classes;
    - a flat ``[N * C]`` (FSAF): reshaped to the loss's shape.

    Anything else is a ``ValueError`` naming ``weight``.
    """
    check_tensor('weight', weight)
    if weight.shape == loss_shape:
        return weight
    prior_shape = loss_shape[:-1]
    if weight.shape in (prior_shape, prior_shape + (1,)):
        return weight.reshape(prior_shape + (1,))
    if weight.dim() == 1 and weight.numel() == loss_shape.numel():
        return weight.reshape(loss_shape)
    raise ValueError(
        f'weight must have the shape of pred {tuple(loss_shape)}, one weight '
        f'per prior {tuple(prior_shape)} or {tuple(prior_shape + (1,))}, or '
        f'the flat ({loss_shape.numel()},); got {tuple(weight.shape)}')


@MODELS.register_module()
class FocalLoss(SigmoidClassLoss):
    """Sigmoid focal loss, mmdet 3.3's ``FocalLoss``.

    Args:
        use_sigmoid: must be True (softmax focal loss is not implemented,
            as in mmdet).
        gamma: focusing exponent, >= 0.
        alpha: weight of positives in [0, 1]; negatives get ``1 - alpha``.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the reduced loss.
        activated: ``pred`` are probabilities (already through a sigmoid)
            rather than logits.
        pos_weight: yolov5's ``cls_pw``: a float or one value per class that
            weighs the positive term inside the BCE (logits only).
        validate: value checks (NaN/inf, class ids, target range); ``None``
            follows the global switch.
        fused: the fused Triton kernel (:mod:`yolo_losses.kernels`):
            ``None`` uses it on CUDA when Triton imports and the call is
            supported (logits, float32/16/bf16), ``True`` requires it,
            ``False`` keeps PyTorch. Same numbers to float32 round-off.

    Call ``loss(pred, target, weight=None, avg_factor=None,
    reduction_override=None)`` with

    - ``pred``: ``[N, C]`` logits (any ``[..., C]``), or probabilities with
      ``activated=True``;
    - ``target``: class ids ``[N]`` (integer, ``C`` means background), or
      one-hot / soft targets in [0, 1] of ``pred``'s shape;
    - ``weight``: ``pred``'s shape, one per prior ``[N]`` / ``[N, 1]``, or
      flat ``[N * C]``.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 gamma: float = 2.0,
                 alpha: float = 0.25,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 activated: bool = False,
                 pos_weight: Union[None, float, Sequence[float], Tensor] = None,
                 validate: Optional[bool] = None,
                 fused: Optional[bool] = None) -> None:
        if not use_sigmoid:
            raise NotImplementedError(
                'FocalLoss supports only the sigmoid form (use_sigmoid=True), '
                'as mmdet')
        if not gamma >= 0:
            raise ValueError(f'gamma must be >= 0, got {gamma}')
        if not 0 <= alpha <= 1:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}')
        if pos_weight is not None:
            if activated:
                raise NotImplementedError(
                    'pos_weight weighs the positive term of BCE on logits; '
                    'it is not implemented for activated=True')
            pos_weight = torch.as_tensor(pos_weight, dtype=torch.float32)
            if pos_weight.dim() > 1:
                raise ValueError(
                    'pos_weight must be a number or one value per class, '
                    f'got shape {tuple(pos_weight.shape)}')
            if not bool(torch.isfinite(pos_weight).all() & (pos_weight >= 0).all()):
                raise ValueError(
                    f'pos_weight must be finite and >= 0, got {pos_weight.tolist()}')
        super().__init__(reduction, loss_weight, validate, fused)
        self.use_sigmoid = True
        self.gamma = float(gamma)
        self.alpha = float(alpha)
        self.activated = bool(activated)
        # A buffer so that .to(device) moves it; configuration, not state.
        self.register_buffer('pos_weight', pos_weight, persistent=False)

    # the call path (checks, validation, fused or PyTorch) is
    # SigmoidClassLoss.forward; these are its FocalLoss parts

    def _check_call(self, pred: Tensor, target: Tensor,
                    weight: Optional[Tensor]) -> Optional[Tensor]:
        check_tensor('target', target)
        if pred.dim() == 0:
            raise ValueError('pred must have a class dimension, got a 0-d tensor')
        num_classes = pred.shape[-1]
        if self._is_label(pred, target):
            if target.shape != pred.shape[:-1]:
                raise ValueError(
                    f'target class ids must have shape {tuple(pred.shape[:-1])} '
                    f'(pred {tuple(pred.shape)} without its class dimension), '
                    f'got {tuple(target.shape)}')
            if target.is_floating_point() or target.dtype == torch.bool:
                raise TypeError(
                    f'target class ids must be an integer tensor, got {target.dtype}; '
                    'soft targets must have the shape of pred')
        elif target.shape != pred.shape:
            raise ValueError(
                f'target must be class ids of shape {tuple(pred.shape[:-1])} or '
                f'one-hot/soft targets of shape {tuple(pred.shape)}, '
                f'got {tuple(target.shape)}')
        if weight is not None:
            weight = per_prior_weight(weight, pred.shape)
        if self.pos_weight is not None and self.pos_weight.numel() not in (1, num_classes):
            raise ValueError(
                f'pos_weight has {self.pos_weight.numel()} values, pred has '
                f'{num_classes} classes')
        return weight

    @staticmethod
    def _is_label(pred: Tensor, target: Tensor) -> bool:
        """Class ids ``[...]`` rather than targets of ``pred``'s shape."""
        return target.dim() == pred.dim() - 1

    def _check_target_values(self, pred: Tensor, target: Tensor) -> None:
        if self._is_label(pred, target):
            num_classes = pred.shape[-1]
            check_range('target', target, 0, num_classes,
                        f'class ids (background = {num_classes})')
        else:
            check_finite('target', target)
            check_range('target', target, 0.0, 1.0)

    def _fused_unsupported(self, pred: Tensor, target: Tensor,
                           weight: Optional[Tensor]) -> Optional[str]:
        return fused_path.focal_unsupported(pred, target, weight, self.pos_weight,
                                            self.activated)

    def _fused_loss(self, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        return fused_path.fused_sigmoid_focal(
            pred, target, weight, reduction, avg_factor, self.gamma, self.alpha,
            self.pos_weight, class_ids=self._is_label(pred, target))

    def _plain_loss(self, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    reduction: str, avg_factor) -> Tensor:
        if self._is_label(pred, target):
            # class id C (background) becomes the dropped last column
            target = F.one_hot(target.long(), pred.shape[-1] + 1)[..., :pred.shape[-1]]
        if self.activated:
            return focal_loss_with_prob(
                pred, target, weight, reduction=reduction, avg_factor=avg_factor,
                gamma=self.gamma, alpha=self.alpha)
        return sigmoid_focal_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor,
            gamma=self.gamma, alpha=self.alpha, pos_weight=self.pos_weight)

    def extra_repr(self) -> str:
        extra = f', pos_weight={self.pos_weight.tolist()}' if self.pos_weight is not None else ''
        return (f'gamma={self.gamma}, alpha={self.alpha}, activated={self.activated}'
                f'{extra}, ' + super().extra_repr())

"""The fused path of each sigmoid loss: which calls the kernel supports, and
the call itself with mmdet's ``weight`` / ``reduction`` / ``avg_factor``.

This module belongs to the losses (it applies their reduction,
:mod:`yolo_losses.losses.utils`); :mod:`yolo_losses.kernels` holds only the
kernels and the switch and imports nothing of the losses.

Each ``*_unsupported`` function returns ``None`` when the kernel can run a
(shape-checked) call, else a short reason; the losses pass it to
:func:`yolo_losses.kernels.resolve_fused`. Supported, for every loss:

- ``pred`` float32, float16 or bfloat16 with at least one dimension, its
  classes on the last one (float64 stays on PyTorch: the kernel computes in
  float32). Rows that are evenly strided (e.g. ``x[..., 5:]``) are read in
  place; other layouts are copied first.
- ``target``, ``weight`` and ``pos_weight`` without gradient (the kernel
  differentiates ``pred`` only), on ``pred``'s device, not bool, ``weight``
  not float64 (it would make the PyTorch result float64).
- ``weight`` of any shape that broadcasts to the loss: one number, one per
  row, one per class and the full shape run without a copy; any other
  broadcast is materialised first.

Reductions: a reduced call sums the weighted loss in the kernel and never
writes it; ``'mean'`` then divides by the element count (what ``loss.mean()``
does), and ``avg_factor`` / ``'sum'`` go through
:func:`yolo_losses.losses.utils.weight_reduce_loss` on that sum (the sum of
a 0-d tensor is itself, so its ``loss.sum() / (avg_factor + eps)`` and its
errors are unchanged). ``'none'`` returns the weighted element-wise loss.
An empty ``pred`` returns what the PyTorch path returns (``'none'``: an
empty tensor of the element-wise shape on the graph; ``'mean'``/``'sum'``: a
0-d zero) without a launch.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ..validation import check_reduction
from .utils import to_float32, weight_reduce_loss

__all__ = ['bce_unsupported', 'focal_unsupported', 'varifocal_unsupported',
           'quality_focal_unsupported', 'fused_binary_cross_entropy', 'fused_sigmoid_focal',
           'fused_varifocal', 'fused_quality_focal']

AvgFactor = Optional[Union[float, Tensor]]
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _common_unsupported(pred: Tensor, target: Optional[Tensor], weight: Optional[Tensor],
                        pos_weight: Optional[Tensor] = None) -> Optional[str]:
    if pred.dtype not in _KERNEL_DTYPES:
        return f'pred is {pred.dtype} (the kernel takes float32, float16 and bfloat16)'
    if pred.dim() == 0:
        return 'pred is 0-d (the kernel needs a class dimension)'
    for name, value in (('target', target), ('weight', weight), ('pos_weight', pos_weight)):
        if value is None:
            continue
        if value.requires_grad:
            return f'{name} requires grad (the kernel differentiates pred only)'
        if value.device != pred.device:
            return f'{name} is on {value.device}, pred on {pred.device}'
        if value.dtype == torch.bool or value.is_complex():
            return f'{name} is {value.dtype}'
    if weight is not None and weight.dtype == torch.float64:
        return 'weight is float64 (the PyTorch result would be float64)'
    if pos_weight is not None and pos_weight.numel() != 1 and (
            pos_weight.shape[-1] != pred.shape[-1]
            or any(size != 1 for size in pos_weight.shape[:-1])):
        return (f'pos_weight of shape {tuple(pos_weight.shape)} (the kernel takes one '
                'number or one per class)')
    return None


def _reduced(pred: Tensor, target: Tensor, spec, *, labels: bool, weight: Optional[Tensor],
             pos_weight: Optional[Tensor], reduction: str, avg_factor: AvgFactor,
             count: int, sum_classes: bool = False) -> Tensor:
    """Run the kernel and apply mmdet's reduction; ``count`` is the number of
    elements of the loss that ``'mean'`` divides by."""
    from ..kernels.elementwise import fused_elementwise_loss  # imports triton

    check_reduction(reduction)
    if pred.numel() == 0:
        # the PyTorch path's element-wise loss of an empty input: an empty
        # tensor of the element-wise shape, on pred's graph
        empty = to_float32(pred) * 0
        if sum_classes:
            empty = empty.sum(dim=1)
        return weight_reduce_loss(empty, None, reduction, avg_factor)
    if reduction == 'none':
        loss = fused_elementwise_loss(pred, target, spec, labels=labels, weight=weight,
                                      pos_weight=pos_weight)
        if sum_classes:
            loss = loss.sum(dim=1)
        return weight_reduce_loss(loss, None, reduction, avg_factor)
    total = fused_elementwise_loss(pred, target, spec, labels=labels, weight=weight,
                                   pos_weight=pos_weight, reduce=True)
    if avg_factor is None and reduction == 'mean':
        return total / count  # loss.mean() of the `count` weighted elements
    return weight_reduce_loss(total, None, reduction, avg_factor)


# --- CrossEntropyLoss(use_sigmoid=True) ------------------------------------------

def bce_unsupported(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                    pos_weight: Optional[Tensor]) -> Optional[str]:
    """Sigmoid ``CrossEntropyLoss`` (class ids or dense targets)."""
    return _common_unsupported(pred, target, weight, pos_weight)


def fused_binary_cross_entropy(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                               reduction: str, avg_factor: AvgFactor,
                               pos_weight: Optional[Tensor], ignore_index: int,
                               avg_non_ignore: bool, label_smoothing: float,
                               class_ids: bool) -> Tensor:
    """``cross_entropy_loss._sigmoid_loss`` on the kernel: class ids ``[*]``
    (one-hot rows, never built; ids >= C are background) or dense targets of
    ``pred``'s shape; negative or ``ignore_index`` entries weigh 0; label
    smoothing after masking; ``weight`` per sample ``[*]`` with class ids."""
    from ..kernels.elementwise import BCE, LossSpec

    if class_ids and weight is not None and weight.shape == target.shape:
        weight = weight.unsqueeze(-1)  # one weight per sample, as mmdet
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        valid = (target >= 0) & (target != ignore_index)
        avg_factor = valid.sum() * pred.shape[-1] if class_ids else valid.sum()
    spec = LossSpec(BCE, mask_invalid=True, ignore_index=ignore_index,
                    label_smoothing=label_smoothing)
    return _reduced(pred, target, spec, labels=class_ids, weight=weight,
                    pos_weight=pos_weight, reduction=reduction, avg_factor=avg_factor,
                    count=pred.numel())


# --- FocalLoss ---------------------------------------------------------------------

def focal_unsupported(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                      pos_weight: Optional[Tensor], activated: bool) -> Optional[str]:
    """``FocalLoss`` on logits (class ids or dense targets)."""
    if activated:
        return 'activated=True (the kernel takes logits)'
    return _common_unsupported(pred, target, weight, pos_weight)


def fused_sigmoid_focal(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                        reduction: str, avg_factor: AvgFactor, gamma: float, alpha: float,
                        pos_weight: Optional[Tensor], class_ids: bool) -> Tensor:
    """``sigmoid_focal_loss`` on the kernel; class ids ``[*]`` (C =
    background) become one-hot rows inside it."""
    from ..kernels.elementwise import FOCAL, LossSpec

    spec = LossSpec(FOCAL, gamma=gamma, alpha=alpha)
    return _reduced(pred, target, spec, labels=class_ids, weight=weight,
                    pos_weight=pos_weight, reduction=reduction, avg_factor=avg_factor,
                    count=pred.numel())


# --- VarifocalLoss -----------------------------------------------------------------

def varifocal_unsupported(pred: Tensor, target: Tensor,
                          weight: Optional[Tensor]) -> Optional[str]:
    return _common_unsupported(pred, target, weight)


def fused_varifocal(pred: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str,
                    avg_factor: AvgFactor, alpha: float, gamma: float,
                    iou_weighted: bool) -> Tensor:
    """``varifocal_loss`` on the kernel."""
    from ..kernels.elementwise import VARIFOCAL, LossSpec

    spec = LossSpec(VARIFOCAL, gamma=gamma, alpha=alpha, iou_weighted=iou_weighted)
    return _reduced(pred, target, spec, labels=False, weight=weight, pos_weight=None,
                    reduction=reduction, avg_factor=avg_factor, count=pred.numel())


# --- QualityFocalLoss with a tensor target ------------------------------------------

def quality_focal_unsupported(pred: Tensor, target, weight: Optional[Tensor],
                              activated: bool) -> Optional[str]:
    """``QualityFocalLoss`` with soft targets ``[N, C]`` (the ``(label,
    score)`` pair and ``[N, C, ...]`` stay on PyTorch)."""
    if not isinstance(target, Tensor):
        return 'a (label, score) target (the kernel takes the soft-target tensor form)'
    if activated:
        return 'activated=True (the kernel takes logits)'
    if pred.dim() != 2:
        return f'pred is {pred.dim()}-d (the kernel takes [N, C])'
    return _common_unsupported(pred, target, weight)


def fused_quality_focal(pred: Tensor, target: Tensor, weight: Optional[Tensor],
                        reduction: str, avg_factor: AvgFactor, beta: float) -> Tensor:
    """``quality_focal_loss_tensor_target`` on the kernel: the loss of each
    prior is its sum over the classes, so ``weight`` (broadcasting to
    ``[N]``) weighs rows and ``'mean'`` divides by ``N``."""
    from ..kernels.elementwise import QUALITY_FOCAL, LossSpec

    if weight is not None and weight.dim() > 0:
        weight = weight.unsqueeze(-1)  # [N] or [1] -> one weight per row
    spec = LossSpec(QUALITY_FOCAL, gamma=beta)
    return _reduced(pred, target, spec, labels=False, weight=weight, pos_weight=None,
                    reduction=reduction, avg_factor=avg_factor, count=pred.shape[0],
                    sum_classes=True)

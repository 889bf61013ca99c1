"""Reduction conventions of mmdet 3.3 (``mmdet/models/losses/utils.py``).

The one place where ``weight``, ``reduction`` and ``avg_factor`` are applied:

- ``weight`` multiplies the element-wise loss (broadcasting);
- ``reduction`` is ``'none'``, ``'mean'`` or ``'sum'``;
- ``avg_factor`` replaces the element count of ``'mean'``:
  ``loss.sum() / (avg_factor + eps)`` with ``eps`` the float32 machine
  epsilon, as mmdet does; with ``'sum'`` it is an error; with ``'none'`` it is
  ignored (mmdet's behaviour).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..validation import check_reduction

AVG_FACTOR_EPS = torch.finfo(torch.float32).eps
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Reduce an element-wise loss: ``'none'`` keeps it, ``'mean'``/``'sum'``
    reduce over every element.

    The mean of an empty loss is 0 (mmdet's is NaN): empty targets are normal
    input. ``'none'`` of an empty loss is that empty loss, of the element-wise
    shape and on the graph (PyTorch's and mmdet's ``reduction='none'``), so a
    caller's ``.sum(-1)`` or indexing works as for any other batch. ``numel``
    is shape metadata, so this costs no host sync.
    """
    check_reduction(reduction)
    if reduction == 'mean':
        return loss.mean() if loss.numel() else loss.sum()
    if reduction == 'sum':
        return loss.sum()
    return loss


def weight_reduce_loss(loss: Tensor,
                       weight: Optional[Tensor] = None,
                       reduction: str = 'mean',
                       avg_factor: Optional[Union[float, Tensor]] = None) -> Tensor:
    """Apply element-wise ``weight``, then reduce (mmdet 3.3 semantics)."""
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return reduce_loss(loss, reduction)
    check_reduction(reduction)
    if reduction == 'mean':
        return loss.sum() / (avg_factor + AVG_FACTOR_EPS)
    if reduction == 'sum':
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


def to_float32(tensor):
    """Half and bfloat16 tensors go to float32 so exp/log/pow cannot overflow;
    float32 and float64 pass through unchanged."""
    if isinstance(tensor, Tensor) and tensor.dtype in _LOW_PRECISION:
        return tensor.float()
    return tensor


def weighted_loss(loss_func: Callable) -> Callable:
    """Give an element-wise ``loss_func(pred, target, **kwargs)`` the call
    ``(pred, target, weight=None, reduction='mean', avg_factor=None, **kwargs)``.

    ``pred`` and ``target`` in float16/bfloat16 are computed in float32 (so
    the loss is safe under ``torch.autocast``); the result is float32 then.
    """

    @functools.wraps(loss_func)
    def wrapper(pred: Tensor,
                target,
                weight: Optional[Tensor] = None,
                reduction: str = 'mean',
                avg_factor: Optional[Union[float, Tensor]] = None,
                **kwargs) -> Tensor:
        pred = to_float32(pred)
        if isinstance(target, (tuple, list)):
            target = type(target)(to_float32(t) for t in target)
        else:
            target = to_float32(target)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            loss = loss_func(pred, target, **kwargs)
            return weight_reduce_loss(loss, weight, reduction, avg_factor)

    return wrapper

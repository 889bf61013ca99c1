"""Input checks shared by every loss (the contract's bad-input policy).

Shape and dtype checks cost nothing and always run. Value checks (NaN or
infinite values, class ids out of range, negative sizes) need one
host-device synchronisation, so they can be switched off:

- per loss: ``validate=False`` in its config;
- process-wide: ``yolo_losses.set_validation(False)`` or the environment
  variable ``YOLO_LOSSES_VALIDATE=0``;
- for a block of code: ``with yolo_losses.validation(False):`` (a training
  config's ``yolo_losses_validate = False`` is applied this way for the run
  by ``tools/train.py`` / ``tools/test.py``).

A loss built with ``validate=None`` (the default) follows the switch.

The switch is a process-wide default (``set_validation``, the environment
variable) plus a per-context override (``with validation(False):``, a
:class:`contextvars.ContextVar`): one thread's block never changes what
another thread sees (:mod:`yolo_losses.switches`).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from .switches import Switch

_switch = Switch('validation', 'YOLO_LOSSES_VALIDATE')


def set_validation(enabled: bool) -> None:
    """Set the process-wide default of value validation for every loss
    built with ``validate=None`` (also the calling context's value when it
    is inside ``with validation(...)``)."""
    _switch.set_default(enabled)


def validation_enabled() -> bool:
    """Whether value checks run in the calling context (its
    ``validation(...)`` override, else the process default)."""
    return _switch.enabled()


def validation(enabled: bool):
    """Context manager: value checks on or off in the calling thread / task
    until the block exits; other threads keep the process default."""
    return _switch.override(enabled)


def resolve_validate(validate: Optional[bool]) -> bool:
    return _switch.enabled() if validate is None else bool(validate)


# --- checks that never synchronise -----------------------------------------

def check_tensor(name: str, value, *, floating: bool = False) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, got {type(value).__name__}')
    if floating and not value.is_floating_point():
        raise TypeError(f'{name} must be a floating-point tensor, got {value.dtype}')
    return value


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f'{name_b} must have the shape of {name_a} {tuple(a.shape)}, '
            f'got {tuple(b.shape)}')


def check_ndim(name: str, value: Tensor, ndims: Sequence[int]) -> None:
    if value.dim() not in ndims:
        expected = ' or '.join(str(n) for n in ndims)
        raise ValueError(
            f'{name} must have {expected} dimensions, got shape {tuple(value.shape)}')


def check_last_dim(name: str, value: Tensor, size: int) -> None:
    if value.dim() == 0 or value.shape[-1] != size:
        raise ValueError(
            f'{name} must have last dimension {size}, got shape {tuple(value.shape)}')


def check_reduction(reduction: str, name: str = 'reduction') -> str:
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(
            f"{name} must be 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


def check_weight_broadcast(weight: Optional[Tensor], loss_shape: Sequence[int],
                           name: str = 'weight') -> None:
    """``weight`` (when given) is a tensor that broadcasts to ``loss_shape``
    without enlarging it. Shape-only: never synchronises."""
    if weight is None:
        return
    check_tensor(name, weight)
    loss_shape = torch.Size(loss_shape)
    try:
        broadcast = torch.broadcast_shapes(weight.shape, loss_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != loss_shape:
        raise ValueError(
            f'{name} of shape {tuple(weight.shape)} does not broadcast to the '
            f'element-wise loss of shape {tuple(loss_shape)}')


def check_no_extra_kwargs(loss_name: str, kwargs: Dict[str, Any]) -> None:
    """mmdet's signatures end in ``**kwargs`` but every extra keyword ends in
    a ``TypeError`` there; say so plainly instead of ignoring it."""
    if kwargs:
        raise TypeError(f'{loss_name}.forward() got unexpected keyword '
                        f'arguments {sorted(kwargs)}')


# --- value checks: one host sync each, run only when validation is on ------

def check_finite(name: str, value: Optional[Tensor]) -> None:
    if value is None or not value.is_floating_point() or value.numel() == 0:
        return
    if not bool(torch.isfinite(value).all()):
        bad = 'NaN' if bool(torch.isnan(value).any()) else 'infinite'
        raise ValueError(f'{name} contains {bad} values')


def check_range(name: str, value: Tensor, low: float, high: float,
                what: str = 'values') -> None:
    """Every element in the closed interval [low, high]."""
    if value.numel() == 0:
        return
    ok = (value >= low) & (value <= high)
    if not bool(ok.all()):
        bad = value[~ok].flatten()[0]
        raise ValueError(
            f'{name} has {what} outside [{low}, {high}], e.g. {bad.tolist()}')


def check_xyxy(name: str, boxes: Tensor) -> None:
    """Boxes (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1 and finite values."""
    check_finite(name, boxes)
    if boxes.numel() == 0:
        return
    sizes = boxes[..., 2:4] - boxes[..., 0:2]
    if not bool((sizes >= 0).all()):
        raise ValueError(
            f'{name} has boxes of negative width or height (x2 < x1 or y2 < y1)')

"""Per-class weights of a composite loss's class term (ultralytics' ``cls_pw``).

Pure functions, no registry entry and nothing of the training stack:

- :func:`class_weights_from_counts`: ultralytics 8.4.190's
  ``DetectionTrainer.compute_class_weights`` + ``set_class_weights``
  (normalised inverse-frequency weights, absent classes get the mean);
- :func:`check_class_weights`: the checks a loss's ``class_weights`` argument
  and ``set_class_weights(weights)`` share (length C, finite, >= 0).

A loss with class weights multiplies the class BCE of every point (or slot)
and class, positives and negatives alike, by ``weights[c]`` (ultralytics'
``bce_loss *= model.class_weights``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ['class_weights_from_counts', 'check_class_weights']

ClassWeights = Optional[Union[Sequence[float], np.ndarray, Tensor]]


def _as_float64_vector(name: str, values) -> np.ndarray:
    """``values`` as a 1-D float64 array, or a TypeError/ValueError naming
    ``name``."""
    if isinstance(values, (str, bytes)) or isinstance(values, bool):
        raise TypeError(f'{name} must be a sequence of numbers, got {values!r}')
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f'{name} must be a sequence of numbers, got {values!r}') from None
    if array.ndim != 1:
        raise ValueError(f'{name} must be one-dimensional, got shape {array.shape}')
    return array


def check_class_weights(weights: ClassWeights, num_classes: int,
                        name: str = 'class_weights') -> Optional[np.ndarray]:
    """``weights`` as a float64 ``[C]`` array (``None`` stays ``None``).

    Raises ``TypeError``/``ValueError`` naming ``name`` unless ``weights`` is
    a length-``num_classes`` sequence (list, tuple, array or tensor) of finite
    numbers >= 0. Reads the values on the host: for constructors and setters,
    never for a loss's forward.
    """
    if weights is None:
        return None
    array = _as_float64_vector(name, weights)
    if array.shape[0] != num_classes:
        raise ValueError(f'{name} must have one weight per class ({num_classes}), '
                         f'got {array.shape[0]}')
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f'{name} must be finite numbers >= 0, got {array.tolist()}')
    return array


def class_weights_from_counts(counts, power: float) -> Tensor:
    """Normalised inverse-frequency class weights, ultralytics 8.4.190's.

    ``w_c = (1 / n_c) ** power`` for every class with ``n_c > 0`` labels, the
    mean of those for classes without labels, then ``w / mean(w)`` (so the
    weights average 1). ``power = 0`` (ultralytics' default ``cls_pw``) or no
    label at all gives ones (ultralytics then keeps no weights, which is the
    same loss).

    Args:
        counts: ``[C]`` label count of each class in the training set
            (numbers >= 0; list, array or tensor).
        power: ``cls_pw`` >= 0 (ultralytics allows [0, 1]; larger powers are
            accepted here).

    Returns:
        ``[C]`` float32 tensor on the CPU (computed in float64).
    """
    counts = _as_float64_vector('counts', counts)
    if counts.shape[0] == 0:
        raise ValueError('counts must hold at least one class')
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f'counts must be finite numbers >= 0, got {counts.tolist()}')
    if isinstance(power, bool) or not isinstance(power, (int, float, np.floating, np.integer)) \
            or not math.isfinite(power) or power < 0:
        raise ValueError(f'power must be a finite number >= 0, got {power!r}')
    present = counts > 0
    if power == 0 or not present.any():
        return torch.ones(counts.shape[0], dtype=torch.float32)
    weights = (1.0 / np.where(present, counts, 1.0)) ** float(power)
    weights = np.where(present, weights, weights[present].mean())
    weights = weights / weights.mean()
    return torch.from_numpy(weights).float()

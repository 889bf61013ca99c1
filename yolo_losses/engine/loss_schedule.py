"""Hooks that feed training state to stateful losses.

- ``LossEpochHook``: at each train epoch start, ``set_epoch(runner.epoch,
  runner.max_epochs)`` on every loss that has ``set_epoch`` (``E2ELoss``'s
  progressive one-to-many / one-to-one weights). ``runner.epoch`` is the
  number of epochs completed, ultralytics' ``updates``. A resumed run
  restarts at the checkpoint's epoch, so its weights equal an uninterrupted
  run's; the loss also keeps the position in buffers (checkpointed).
- ``ClassWeightsHook``: with the config key ``class_weight_power`` (ultralytics'
  ``cls_pw``; 0 = off, the default) it counts the training set's labels once
  before the first step, turns them into per-class multipliers of the class
  loss with ``yolo_losses.class_weights_from_counts``, logs them and gives
  them to every loss with ``set_class_weights``. They live in the loss's
  ``class_weights`` buffer, so checkpoints hold them.

Both reach the loss inside model wrappers (DDP) and also update the EMA
copy of the model (mmengine's ``EMAHook``), so the averaged model's loss
state equals the trained one's instead of an average of past values.
"""
from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from ..registry import HOOKS

#: Top-level config key of ``ClassWeightsHook`` (ultralytics' ``cls_pw``).
CLASS_WEIGHT_POWER_KEY = 'class_weight_power'


def _unwrap(model: nn.Module) -> nn.Module:
    while is_model_wrapper(model):
        model = model.module
    return model


def outermost_modules_with(model: nn.Module, method: str) -> List[nn.Module]:
    """The submodules of ``model`` (itself included, wrappers unwrapped)
    that have a callable ``method``, without those nested inside another
    such module (an ``E2ELoss`` forwards ``set_class_weights`` to its two
    branch losses itself)."""
    found, prefixes = [], []
    for name, module in _unwrap(model).named_modules():
        if any(name == p or name.startswith(p + '.') for p in prefixes):
            continue
        if callable(getattr(module, method, None)):
            found.append(module)
            prefixes.append(name)
            if name == '':  # the model itself: nothing below is outermost
                break
    return found


def _models(runner) -> Iterator[nn.Module]:
    """The trained model and the EMA copies of hooks that hold one."""
    yield runner.model
    for hook in getattr(runner, 'hooks', ()):
        ema = getattr(hook, 'ema_model', None)
        if isinstance(ema, nn.Module):
            yield getattr(ema, 'module', ema)


@HOOKS.register_module()
class LossEpochHook(Hook):
    """Calls ``set_epoch(runner.epoch, runner.max_epochs)`` on every loss
    that has ``set_epoch``, at each train epoch start (see module doc).

    ``runner.epoch`` is the number of epochs completed (0 for the first
    epoch), the schedule position ``E2ELoss.set_epoch`` expects, and
    ``runner.max_epochs`` the horizon. A model without such a loss is left
    alone.
    """

    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        for model in _models(runner):
            for module in outermost_modules_with(model, 'set_epoch'):
                module.set_epoch(runner.epoch, runner.max_epochs)


def count_labels(dataset, num_classes: int) -> torch.Tensor:
    """``[num_classes]`` float64 count of the boxes of each class in
    ``dataset`` (``get_data_info(i)['instances']``, mmengine's
    ``BaseDataset`` layout; instances with ``ignore_flag`` set are
    skipped). A label outside ``[0, num_classes)`` is a ``ValueError``."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for index in range(len(dataset)):
        for instance in dataset.get_data_info(index).get('instances', ()):
            if instance.get('ignore_flag', 0):
                continue
            label = int(instance['bbox_label'])
            if not 0 <= label < num_classes:
                raise ValueError(f'training image {index} has a box of class {label}, '
                                 f'outside [0, {num_classes})')
            counts[label] += 1
    return counts


def _num_classes(model: nn.Module) -> Optional[int]:
    for module in _unwrap(model).modules():
        value = getattr(module, 'num_classes', None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def check_class_weight_power(power) -> float:
    """The value of ``class_weight_power``: a finite number >= 0."""
    if isinstance(power, bool) or not isinstance(power, (int, float)) \
            or not math.isfinite(power) or power < 0:
        raise ValueError(f'{CLASS_WEIGHT_POWER_KEY} must be a finite number >= 0 '
                         f'(0 = no class weights), got {power!r}')
    return float(power)


@HOOKS.register_module()
class ClassWeightsHook(Hook):
    """Per-class weights of the class loss from the training labels
    (ultralytics' ``cls_pw``), computed once before the first step.

    Args:
        power: the exponent of ``class_weights_from_counts``; None (default)
            reads the config key ``class_weight_power`` (0 when absent).
            0 does nothing.

    With ``power > 0``: counts the training set's boxes per class,
    ``weights = class_weights_from_counts(counts, power)``, logs counts and
    weights, and calls ``set_class_weights(weights)`` on every loss of the
    model that has it (``ValueError`` when none has). A resumed run computes
    the same weights from the same data.
    """

    priority = 'NORMAL'

    def __init__(self, power: Optional[float] = None) -> None:
        self.power = None if power is None else check_class_weight_power(power)
        self.weights: Optional[torch.Tensor] = None

    def before_train(self, runner) -> None:
        power = self.power
        if power is None:
            power = check_class_weight_power(
                runner.cfg.get(CLASS_WEIGHT_POWER_KEY, 0.0))
        if power == 0:
            return
        from .. import class_weights_from_counts

        losses = outermost_modules_with(runner.model, 'set_class_weights')
        if not losses:
            raise ValueError(f'{CLASS_WEIGHT_POWER_KEY}={power}: the model has no '
                             'loss with set_class_weights')
        num_classes = _num_classes(runner.model)
        if num_classes is None:
            raise ValueError(f'{CLASS_WEIGHT_POWER_KEY}: cannot tell the number of '
                             'classes (no num_classes attribute in the model)')
        counts = count_labels(runner.train_dataloader.dataset, num_classes)
        weights = torch.as_tensor(class_weights_from_counts(counts, power),
                                  dtype=torch.float32)
        self.weights = weights
        runner.logger.info(
            f'class weights ({CLASS_WEIGHT_POWER_KEY}={power:g}) from '
            f'{_fmt(counts, "{:.0f}")} training boxes per class: {_fmt(weights)}')
        for model in _models(runner):
            for module in outermost_modules_with(model, 'set_class_weights'):
                module.set_class_weights(weights)


def _fmt(values: Sequence, pattern: str = '{:.4f}') -> str:
    return '[' + ', '.join(pattern.format(float(v)) for v in values) + ']'

"""Plumbing shared by the composite YOLO losses (v3, v5, v8).

Each composite loss is an assigner plus registered parts, all config dicts,
with data flowing one way: raw preds -> decode -> assign -> parts -> dict of
named losses. This module holds what the three have in common: building a
part from its config, and the input checks of the shared call
``loss(preds, targets, img_size=None, max_boxes=None)``.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..ops.anchors import resolve_img_size
from ..ops.targets import check_targets, resolve_max_boxes
from ..registry import MODELS
from ..validation import check_finite, check_tensor, resolve_validate


def build_part(cfg: dict, name: str) -> nn.Module:
    """Build a part (``loss_cls``, ``loss_bbox``, ...) from its config dict.

    A composite loss validates its own inputs; its parts only see tensors
    derived from them, so their value checks would be repeated host syncs.
    Parts therefore get ``validate=False`` unless their config sets it.
    """
    if not hasattr(cfg, 'get') or 'type' not in cfg:
        raise TypeError(f'{name} must be a config dict with a "type" key, got {cfg!r}')
    part = MODELS.build(copy.deepcopy(dict(cfg)))
    if 'validate' not in cfg and hasattr(part, 'validate'):
        part.validate = False
    return part


def wants_img_size(part: nn.Module) -> bool:
    """Whether a box part asks for the input image size: a true class (or
    instance) attribute ``wants_img_size``, as ``MPDIoULoss`` and the
    Inner-/Focaler-IoU wrappers around it declare. Any registered loss can
    opt in the same way; the composite losses then call it with
    ``img_size=`` in the unit of the boxes they give it."""
    return bool(getattr(part, 'wants_img_size', False))


def box_part_kwargs(part: nn.Module, img_size: Optional[Tuple[int, int]],
                    unit: Tensor) -> Dict[str, Tensor]:
    """Extra call arguments of a box part: ``dict(img_size=[K, 2])`` for a
    part that wants the image size, else ``{}``.

    Args:
        part: the box loss.
        img_size: input ``(h, w)`` in pixels.
        unit: ``[K]`` or ``[K, 1]``: pixels per unit of box k's coordinates
            (its stride when the composite computes the box term in stride
            or grid units), so that ``img_size`` is in the boxes' unit:
            ``(h, w) / unit``, per box. No host sync (a device fill, not a
            tensor from Python data).
    """
    if not wants_img_size(part):
        return {}
    if img_size is None:
        raise ValueError(f'{type(part).__name__} wants img_size, but the composite '
                         'loss was not given the input size')
    height, width = img_size
    size = torch.full((1, 2), float(height), dtype=unit.dtype, device=unit.device)
    size[:, 1] = float(width)
    return dict(img_size=size / unit.reshape(-1, 1))


class CompositeLoss(nn.Module):
    """Base of the composite YOLO losses: validation switch and input checks.

    Subclasses set ``num_classes`` and ``strides`` and implement
    ``check_level(name, pred)`` (the per-level channel layout).
    """

    #: layout of one level's raw prediction, for error messages
    level_layout = '[B, C, H, W]'

    def __init__(self, validate: Optional[bool] = None) -> None:
        super().__init__()
        self.validate = validate

    @property
    def validating(self) -> bool:
        return resolve_validate(self.validate)

    def check_level(self, name: str, pred: Tensor) -> None:
        raise NotImplementedError

    def check_preds(self, preds) -> None:
        """Shape checks of ``preds`` (no host sync)."""
        if isinstance(preds, Tensor) or not isinstance(preds, (list, tuple)):
            raise TypeError(f'preds must be a list of {self.level_layout} tensors, '
                            f'one per level, got {type(preds).__name__}')
        if len(preds) != len(self.strides):
            raise ValueError(f'preds has {len(preds)} levels but the loss has '
                             f'{len(self.strides)} (strides {tuple(self.strides)})')
        for level, pred in enumerate(preds):
            name = f'preds[{level}]'
            check_tensor(name, pred, floating=True)
            self.check_level(name, pred)
            if pred.shape[0] != preds[0].shape[0]:
                raise ValueError(f'{name} has batch size {pred.shape[0]}, preds[0] '
                                 f'has {preds[0].shape[0]}')
            if pred.device != preds[0].device:
                raise ValueError(f'{name} is on {pred.device}, preds[0] on '
                                 f'{preds[0].device}')
            if pred.shape[2] == 0 or pred.shape[3] == 0:
                raise ValueError(f'{name} has an empty grid {tuple(pred.shape[-2:])}')

    def check_inputs(self, preds: Sequence[Tensor], targets: Tensor,
                     img_size: Optional[Sequence[int]],
                     max_boxes: Optional[int]) -> Tuple[int, Tuple[int, int], int]:
        """Every check of the shared call, before any state changes.

        Returns ``(batch_size, (h, w) input size in pixels, max_boxes)``.
        Value checks (one host sync) only when ``self.validating``; without
        them and with ``max_boxes`` given this reads no tensor value.
        """
        validate = self.validating
        self.check_preds(preds)
        batch_size = preds[0].shape[0]
        size = resolve_img_size(preds, self.strides, img_size)
        check_targets(targets, batch_size, self.num_classes, validate)
        if targets.device != preds[0].device:
            raise ValueError(f'targets is on {targets.device} but preds on '
                             f'{preds[0].device}')
        if validate:
            for level, pred in enumerate(preds):
                check_finite(f'preds[{level}]', pred)
        max_boxes = resolve_max_boxes(targets, batch_size, max_boxes, validate)
        return batch_size, size, max_boxes

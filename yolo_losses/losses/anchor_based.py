"""Base of the anchor-based composite losses (``YOLOv3Loss``, ``YOLOv5Loss``).

Both read the same head layout (``[B, A*(5+C), H, W]`` per level, per anchor
x, y, w, h, objectness, C class logits), take anchors in input pixels and
strides, and run the same call:

    check (``CompositeLoss.check_inputs``: every check, before anything)
    -> prepare (decode, assign: a typed target bundle; public ``assign()``)
    -> losses (the parts, a dict of named losses)
    -> state (training mode only, after everything above succeeded)

The subclasses implement ``_prepare`` and ``_losses`` (and ``_update_state``
when they keep state): ``YOLOv8Loss`` is split the same way.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..ops.anchors import (DEFAULT_ANCHORS, DEFAULT_STRIDES, anchors_to_tensor,
                           check_strides, split_level_pred)
from .class_weights import ClassWeights, ClassWeightsArg
from .composite import CompositeLoss


class AnchorBasedLoss(ClassWeights, CompositeLoss):
    """Anchors, strides, class count, class weights and the call template
    of the anchor-based YOLO losses.

    Args:
        num_classes: C (a positive int).
        anchors: ``[level][anchor] -> (w, h)`` in input pixels, increasing
            stride; kept as the non-persistent buffer ``anchors`` ``[L, A, 2]``.
        strides: stride of each level in pixels, one per anchor level.
        class_weights: ``None`` or C multipliers of the class loss per class
            (see :mod:`yolo_losses.losses.class_weights`).
        validate: value checks of the inputs; ``None`` follows the switch.
    """

    level_layout = '[B, A*(5+C), H, W]'

    def __init__(self, num_classes: int,
                 anchors: Sequence[Sequence[Sequence[float]]] = DEFAULT_ANCHORS,
                 strides: Sequence[float] = DEFAULT_STRIDES,
                 class_weights: ClassWeightsArg = None,
                 validate: Optional[bool] = None) -> None:
        super().__init__(validate)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        anchor_table = anchors_to_tensor(anchors, 'anchors')
        self.strides = check_strides(strides, anchor_table.shape[0], 'strides')
        self.num_classes = num_classes
        self.num_levels, self.num_anchors = anchor_table.shape[:2]
        self.register_buffer('anchors', anchor_table, persistent=False)
        self._init_class_weights(class_weights)

    def check_level(self, name: str, pred: Tensor) -> None:
        split_level_pred(pred, self.num_anchors, self.num_classes, name)

    def forward(self, preds: Sequence[Tensor], targets: Tensor,
                img_size: Optional[Sequence[int]] = None,
                max_boxes: Optional[int] = None) -> Dict[str, Tensor]:
        prepared = self.assign(preds, targets, img_size, max_boxes)
        with torch.autocast(device_type=preds[0].device.type, enabled=False):
            losses, state_input = self._losses(prepared)
        # Last: every check passed and every part ran, so a call that raises
        # leaves the state (buffers) as it was.
        if self.training and state_input is not None:
            self._update_state(state_input)
        return losses

    def assign(self, preds: Sequence[Tensor], targets: Tensor,
               img_size: Optional[Sequence[int]] = None,
               max_boxes: Optional[int] = None):
        """The decoded predictions and targets ``forward`` computes its
        losses from (same arguments and checks), for inspection."""
        _, size, max_boxes = self.check_inputs(preds, targets, img_size, max_boxes)
        with torch.autocast(device_type=preds[0].device.type, enabled=False):
            return self._prepare(preds, targets, size, max_boxes)

    def _prepare(self, preds: Sequence[Tensor], targets: Tensor,
                 img_size: Tuple[int, int], max_boxes: int):
        raise NotImplementedError

    def _losses(self, prepared) -> Tuple[Dict[str, Tensor], Any]:
        """``(losses, state_input)``: ``state_input`` goes to
        ``_update_state`` in training mode (``None``: no state)."""
        raise NotImplementedError

    def _update_state(self, state_input: Any) -> None:
        pass

    @staticmethod
    def compute_dtype(preds: Sequence[Tensor]) -> torch.dtype:
        """float64 when the predictions are, else float32 (half inputs are
        computed in float32)."""
        return torch.float64 if preds[0].dtype == torch.float64 else torch.float32

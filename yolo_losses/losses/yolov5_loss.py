"""YOLOv5 loss: ultralytics/yolov5 ``utils/loss.py`` ``ComputeLoss`` (7.0).

``YOLOv5Loss`` returns the three components of yolov5's loss, each already
multiplied by its weight (``loss_weight`` of its part) and never by the
batch size:

- ``loss_box``: per level, ``1 - CIoU`` of the decoded box against the
  matched ground truth, averaged over that level's matches; summed over
  levels.
- ``loss_obj``: per level, BCE-with-logits of every objectness logit against
  the detached, 0-clamped CIoU of the match at that cell (0 elsewhere),
  averaged over the level's cells and weighted by the level's balance;
  summed over levels.
- ``loss_cls``: per level, BCE-with-logits of the class logits of the matches
  against one-hot targets (label smoothing optional), averaged over
  matches x classes; summed over levels. 0 with one class (yolov5 skips it).

The defaults are ``hyp.scratch-low``: box 0.05, obj 1.0, cls 0.5,
anchor_t 4.0, no label smoothing, gr 1.0, balance (4.0, 1.0, 0.4).
yolov5's ``train.py`` rescales the gains by ``3 / nl``, ``nc / 80`` and the
image size before building the loss; that is a training-recipe choice, so
set the parts' ``loss_weight`` accordingly if you want it.

Assignment (``YOLOv5Assigner``) keeps fixed-size candidate slots per image
(``[B, M, A, 5]``), and the parts get ``weight`` masks and ``avg_factor``
(the match count) instead of filtered tensors, so with ``max_boxes`` given
and validation off nothing synchronises with the device.

Where several matches fall on one objectness cell (same image, anchor and
cell), yolov5 keeps whichever it writes last (the highest IoU with
``sort_obj_iou``); here the cell's target is the largest of them
(``scatter_reduce`` amax), which does not depend on the order of the
target rows and equals yolov5's ``sort_obj_iou=True`` result.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..ops.anchors import (DEFAULT_ANCHORS, DEFAULT_STRIDES, NUM_BOX_ATTRS,
                           decode_yolov5_boxes, gather_objectness_and_slots)
from ..ops.boxes import cxcywh_to_xyxy
from ..ops.targets import pad_targets
from ..registry import MODELS, TASK_UTILS
from .anchor_based import AnchorBasedLoss
from .composite import box_part_kwargs, build_part

#: yolov5's objectness balance of levels P3..P7 (``ComputeLoss.balance``).
YOLOV5_OBJ_LEVEL_WEIGHTS = {3: (4.0, 1.0, 0.4)}
YOLOV5_OBJ_LEVEL_WEIGHTS_P3_P7 = (4.0, 1.0, 0.25, 0.06, 0.02)

#: yolov5's autobalance: ``balance = balance * 0.9999 + 0.0001 / obj_loss``.
AUTOBALANCE_MOMENTUM = 0.9999
AUTOBALANCE_GAIN = 0.0001
#: Stride whose level the autobalanced weights are normalised by (yolov5).
AUTOBALANCE_REFERENCE_STRIDE = 16.0

# Target (cx, cy, w, h) of slots that are not matches: a harmless unit box,
# so the box loss never sees a zero-size box (NaN) before the mask zeroes it.
_PLACEHOLDER_BOX_VALUE = 1.0


def default_obj_level_weights(num_levels: int) -> Tuple[float, ...]:
    """yolov5's objectness balance for ``num_levels`` levels (P3 first)."""
    if num_levels in YOLOV5_OBJ_LEVEL_WEIGHTS:
        return YOLOV5_OBJ_LEVEL_WEIGHTS[num_levels]
    if num_levels > len(YOLOV5_OBJ_LEVEL_WEIGHTS_P3_P7):
        raise ValueError(
            f'yolov5 defines objectness level weights for at most '
            f'{len(YOLOV5_OBJ_LEVEL_WEIGHTS_P3_P7)} levels; pass obj_level_weights '
            f'for {num_levels} levels')
    return YOLOV5_OBJ_LEVEL_WEIGHTS_P3_P7[:num_levels]


def _with_pos_weight(cfg: dict, pos_weight: float, name: str) -> dict:
    """``cfg`` with ``pos_weight`` set (BCE positive-class weight)."""
    if not hasattr(cfg, 'get') or 'type' not in cfg:
        raise TypeError(f'{name} must be a config dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    if pos_weight == 1.0:
        return cfg
    if cfg.get('pos_weight', pos_weight) != pos_weight:
        raise ValueError(f'{name} sets pos_weight={cfg["pos_weight"]!r} but the '
                         f'loss was given a different value {pos_weight!r}')
    cfg['pos_weight'] = pos_weight
    return cfg


class YOLOv5Targets(NamedTuple):
    """Decoded predictions and their assignment (``YOLOv5Loss.assign``).

    Per level (lists of L tensors): B images, M padded boxes, A anchors, the
    5 candidate cells of yolov5's matching (own cell and neighbours); the
    slots are ``[B, M, A, 5]``. All levels' slots are concatenated, level
    by level, into the K rows of the flat tensors.

    valid: per level ``[B, M, A, 5]`` bool, slots that are matches.
    obj_index: per level ``[B, M, A, 5]`` long, each slot's flat index
        ``(image * A + anchor) * H*W + cell`` into the objectness plane.
    obj_logits: per level ``[B, A, H*W]`` objectness logits.
    pred_boxes: ``[K, 4]`` decoded xyxy boxes of the slots, grid units of the
        slot's level (on the graph).
    target_boxes: ``[K, 4]`` matched ground truth, xyxy grid units (a unit
        placeholder box where not valid).
    cls_logits: ``[K, C]`` class logits of the slots (``None`` when the
        class loss is skipped, one class).
    cls_targets: ``[K, C]`` class targets (one-hot, label smoothing applied;
        ``None`` as ``cls_logits``).
    box_kwargs: extra arguments of the box part: ``img_size`` ``[K, 2]``,
        the input ``(h, w)`` over each slot's stride (the boxes' grid units),
        for a part that wants the image size (MPDIoU); else empty.
    """
    valid: List[Tensor]
    obj_index: List[Tensor]
    obj_logits: List[Tensor]
    pred_boxes: Tensor
    target_boxes: Tensor
    cls_logits: Optional[Tensor]
    cls_targets: Optional[Tensor]
    box_kwargs: Dict[str, Tensor] = {}


@MODELS.register_module()
class YOLOv5Loss(AnchorBasedLoss):
    """yolov5 ``ComputeLoss`` as a registered, configurable loss.

    Call: ``loss(preds, targets, img_size=None, max_boxes=None)`` ->
    ``{'loss_box', 'loss_obj', 'loss_cls'}`` scalar tensors;
    ``loss.assign(...)`` (same arguments) -> :class:`YOLOv5Targets`.

    - ``preds``: one ``[B, A*(5+C), H, W]`` raw head output per level,
      increasing stride; per anchor: x, y, w, h, objectness, C class logits.
    - ``targets``: float ``[N, 6]`` (batch_index, class_id, cx, cy, w, h),
      coordinates normalised to [0, 1]; any row order; N may be 0.
    - ``img_size``: input ``(h, w)`` pixels, only checked against the grids
      (matching works in grid units, as yolov5's); default: level-0 stride
      times the level-0 grid.
    - ``max_boxes``: bound on boxes per image; given, the loss needs no host
      sync (validation off); ``None``: computed (one sync).

    Args:
        num_classes: C.
        anchors: ``[level][anchor] -> (w, h)`` in input pixels, increasing
            stride (default: yolov5's P3-P5 anchors).
        strides: stride of each level in pixels.
        loss_cls: config of the class loss (sigmoid BCE by default; a
            ``FocalLoss`` config gives yolov5's ``fl_gamma``), reduction
            ``'mean'``. Called once for all levels with ``[K, C]`` logits
            and float targets, ``reduction_override='sum'`` and a ``[K, C]``
            weight of ``1 / (matches x C + eps)`` of the slot's level (0 for
            an empty slot): each level's mean over its matches, as
            ``avg_factor`` would give it per level.
        loss_obj: config of the objectness loss, called per level with
            ``[N, 1]`` logits and float targets, mean over all cells of the
            level.
        loss_bbox: config of the box loss, reduction ``'mean'``. Called once
            for all levels with ``[K, 4]`` xyxy boxes (grid units),
            ``reduction_override='sum'`` and a ``[K]`` weight of
            ``1 / (matches + eps)`` of the slot's level. Its
            ``iou(pred, target)`` method (detached, clamped at 0) gives the
            objectness target.
        assigner: config of the assigner (``YOLOv5Assigner``).
        obj_level_weights: objectness weight of each level (yolov5's
            ``balance``); default: (4.0, 1.0, 0.4) for 3 levels, else the
            first ``L`` of (4.0, 1.0, 0.25, 0.06, 0.02).
        gr: objectness target ``(1 - gr) + gr * iou`` (yolov5's
            ``model.gr``), in [0, 1].
        label_smoothing: class targets ``1 - eps/2`` and ``eps/2`` (yolov5's
            ``smooth_BCE``), in [0, 1).
        cls_pw, obj_pw: BCE positive weight (yolov5's hyps); set into the
            part's ``pos_weight`` when not 1.
        autobalance: adapt ``obj_level_weights`` after every training call
            (yolov5's ``autobalance``); the weights live in the buffer
            ``balance`` (saved in ``state_dict`` when autobalancing) and
            change only after a call that succeeded, in training mode.
            Needs a stride-16 level, which the weights are normalised by.
        skip_cls_for_single_class: with one class ``loss_cls`` is 0, as in
            yolov5; False computes it anyway.
        class_weights: ``None`` or C non-negative multipliers, one per
            class, of the class BCE of every class entry of every match
            (ultralytics' ``model.class_weights`` semantics; the
            normalisation by matches x C is unchanged). Kept in the
            persistent buffer ``class_weights`` (ones when ``None``);
            ``set_class_weights(weights)`` changes it.
        validate: value checks of ``preds`` and ``targets`` (NaN/inf, class
            ids, batch indices, negative sizes, centres and sizes outside
            [0, 1], ``max_boxes``; host syncs);
            ``None`` follows ``yolo_losses.set_validation``. The parts are
            built with ``validate=False`` unless their config sets it: they
            only see tensors derived from the checked inputs.
    """

    def __init__(self,
                 num_classes: int,
                 anchors: Sequence[Sequence[Sequence[float]]] = DEFAULT_ANCHORS,
                 strides: Sequence[float] = DEFAULT_STRIDES,
                 loss_cls: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                       reduction='mean', loss_weight=0.5),
                 loss_obj: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                       reduction='mean', loss_weight=1.0),
                 loss_bbox: dict = dict(type='CIoULoss', style='yolo',
                                        reduction='mean', loss_weight=0.05),
                 assigner: dict = dict(type='YOLOv5Assigner', prior_match_thr=4.0),
                 obj_level_weights: Optional[Sequence[float]] = None,
                 gr: float = 1.0,
                 label_smoothing: float = 0.0,
                 cls_pw: float = 1.0,
                 obj_pw: float = 1.0,
                 autobalance: bool = False,
                 skip_cls_for_single_class: bool = True,
                 class_weights: Optional[Sequence[float]] = None,
                 validate: Optional[bool] = None) -> None:
        super().__init__(num_classes, anchors, strides, class_weights, validate)
        if not 0.0 <= float(gr) <= 1.0:
            raise ValueError(f'gr must be in [0, 1], got {gr!r}')
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing!r}')
        for name, value in (('cls_pw', cls_pw), ('obj_pw', obj_pw)):
            if not float(value) > 0:
                raise ValueError(f'{name} must be positive, got {value!r}')
        self.gr = float(gr)
        self.label_smoothing = float(label_smoothing)
        self.autobalance = bool(autobalance)
        self.skip_cls_for_single_class = bool(skip_cls_for_single_class)

        if obj_level_weights is None:
            weights = default_obj_level_weights(self.num_levels)
        else:
            weights = tuple(float(w) for w in obj_level_weights)
            if len(weights) != self.num_levels:
                raise ValueError(f'obj_level_weights needs {self.num_levels} values '
                                 f'(one per level), got {len(weights)}')
        if self.autobalance:
            if AUTOBALANCE_REFERENCE_STRIDE not in self.strides:
                raise ValueError('autobalance normalises the objectness weights by '
                                 f'the stride-16 level; strides {self.strides} '
                                 'have none')
            self.reference_level = self.strides.index(AUTOBALANCE_REFERENCE_STRIDE)
        # Persistent only when it evolves, so a checkpoint of a fixed-weight
        # loss never overrides the configured weights.
        self.register_buffer('balance', torch.tensor(weights, dtype=torch.float32),
                             persistent=self.autobalance)

        self.loss_cls = build_part(_with_pos_weight(loss_cls, float(cls_pw), 'loss_cls'),
                                   'loss_cls')
        self.loss_obj = build_part(_with_pos_weight(loss_obj, float(obj_pw), 'loss_obj'),
                                   'loss_obj')
        self.loss_bbox = build_part(loss_bbox, 'loss_bbox')
        for name in ('loss_bbox', 'loss_cls'):
            reduction = getattr(getattr(self, name), 'reduction', 'mean')
            if reduction != 'mean':
                raise ValueError(f"{name} must have reduction 'mean' (the loss averages "
                                 f"each level over its matches, as yolov5), got {reduction!r}")
        self.assigner = TASK_UTILS.build(assigner)
        if not callable(getattr(self.loss_bbox, 'iou', None)):
            raise TypeError(f'loss_bbox ({type(self.loss_bbox).__name__}) needs an '
                            'iou(pred, target) method for the objectness target')
        if self.autobalance and getattr(self.loss_obj, 'loss_weight', 1.0) == 0:
            raise ValueError('autobalance needs loss_obj with a non-zero loss_weight')

    @property
    def uses_cls_loss(self) -> bool:
        return self.num_classes > 1 or not self.skip_cls_for_single_class

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, strides={self.strides}, '
                f'num_anchors={self.num_anchors}, gr={self.gr}, '
                f'label_smoothing={self.label_smoothing}, autobalance={self.autobalance}')

    # ----------------------------------------------------------------- prepare
    def _prepare(self, preds: Sequence[Tensor], targets: Tensor,
                 img_size: Tuple[int, int], max_boxes: int) -> YOLOv5Targets:
        device = preds[0].device
        dtype = self.compute_dtype(preds)
        batch_size = preds[0].shape[0]
        num_classes, num_anchors = self.num_classes, self.num_anchors
        attrs = NUM_BOX_ATTRS + num_classes
        padded = pad_targets(targets.to(dtype), batch_size, max_boxes)

        image = torch.arange(batch_size, device=device).view(-1, 1, 1, 1)
        slot_anchor = torch.arange(num_anchors, device=device).view(1, 1, -1, 1)
        valid, obj_index, obj_logits = [], [], []
        cls_parts, pred_parts, target_parts = [], [], []
        for level, pred in enumerate(preds):
            height, width = pred.shape[-2:]
            anchors = (self.anchors[level] / self.strides[level]).to(dtype)   # grid units
            assigned = self.assigner.assign(padded.boxes, padded.mask, anchors,
                                            (height, width))
            level_valid = assigned.valid                             # [B, M, A, 5]
            cell = assigned.cell_y * width + assigned.cell_x
            # The objectness plane and the candidate slots, read as one op.
            level_obj, picked = gather_objectness_and_slots(
                pred, num_anchors, slot_anchor.expand_as(cell).reshape(batch_size, -1),
                cell.reshape(batch_size, -1))
            picked = picked.view(*level_valid.shape, attrs).to(dtype)   # [B, M, A, 5, 5+C]
            # split, not slices: its backward is one concatenation instead
            # of a zero-filled [B, M, A, 5, 5+C] gradient per slice
            box_raw, _, cls_raw = picked.split((4, 1, num_classes), dim=-1)
            valid.append(level_valid)
            obj_logits.append(level_obj)
            obj_index.append((image * num_anchors + slot_anchor) * (height * width) + cell)
            cls_parts.append(cls_raw)
            pred_parts.append(decode_yolov5_boxes(box_raw, anchors[:, None, :]))
            target_parts.append(torch.where(level_valid[..., None],
                                            assigned.target_boxes.to(dtype),
                                            _PLACEHOLDER_BOX_VALUE))

        # Every level's slots in one tensor each, so the box and class parts
        # run once for all levels instead of once per level (fewer launches).
        pred_boxes = cxcywh_to_xyxy(torch.cat([part.reshape(-1, 4) for part in pred_parts]))
        target_boxes = cxcywh_to_xyxy(torch.cat([part.reshape(-1, 4) for part in target_parts]))
        cls_logits = cls_targets = None
        if self.uses_cls_loss:
            positive = 1.0 - 0.5 * self.label_smoothing
            negative = 0.5 * self.label_smoothing
            class_ids = torch.arange(num_classes, device=device)
            is_label = padded.labels[..., None] == class_ids         # [B, M, C]
            cls_target = is_label.to(dtype) * (positive - negative) + negative
            cls_logits = torch.cat([part.reshape(-1, num_classes) for part in cls_parts])
            cls_targets = torch.cat([
                cls_target[:, :, None, None, :].expand(
                    *part.shape, num_classes).reshape(-1, num_classes)
                for part in valid])
        # Boxes are in grid units of their level: a part that wants the
        # image size (MPDIoU) gets (h, w) / stride per slot.
        slot_strides = torch.cat([
            torch.full((level_valid.numel(),), float(stride), dtype=dtype, device=device)
            for level_valid, stride in zip(valid, self.strides)])
        return YOLOv5Targets(valid, obj_index, obj_logits, pred_boxes, target_boxes,
                             cls_logits, cls_targets,
                             box_part_kwargs(self.loss_bbox, img_size, slot_strides))

    # ------------------------------------------------------------------ losses
    def _losses(self, prepared: YOLOv5Targets) -> Tuple[Dict[str, Tensor], List[Tensor]]:
        valid = prepared.valid
        device, dtype = prepared.pred_boxes.device, prepared.pred_boxes.dtype
        num_classes = self.num_classes
        # A copy: autobalance updates the buffer in place after this call,
        # and the graph keeps these weights for the backward pass.
        balance = self.balance.to(dtype, copy=True)

        # yolov5 averages each level over its own matches, so every slot is
        # weighted by 1 / (its level's matches): mmdet's avg_factor division
        # moved inside the one sum over all levels.
        avg_eps = torch.finfo(torch.float32).eps
        weights = [level_valid.to(dtype) for level_valid in valid]
        num_matches = [weight.sum() for weight in weights]
        box_scale = torch.cat([(weight / (count + avg_eps)).reshape(-1)
                               for weight, count in zip(weights, num_matches)])
        loss_box = self.loss_bbox(prepared.pred_boxes, prepared.target_boxes,
                                  weight=box_scale, reduction_override='sum',
                                  **prepared.box_kwargs)
        with torch.no_grad():
            iou = self.loss_bbox.iou(prepared.pred_boxes.detach(),
                                     prepared.target_boxes).to(dtype).clamp(min=0)
        level_iou = iou.split([level_valid.numel() for level_valid in valid])

        if self.uses_cls_loss:
            cls_scale = torch.cat([
                (weight / (count * num_classes + avg_eps)).reshape(-1, 1)
                for weight, count in zip(weights, num_matches)])
            if self.class_weighted:    # per-class multipliers of the class BCE
                cls_weight = cls_scale * self.class_weights.to(dtype)
            else:
                cls_weight = cls_scale.expand(-1, num_classes)
            loss_cls = self.loss_cls(prepared.cls_logits, prepared.cls_targets,
                                     weight=cls_weight, reduction_override='sum')
        else:
            loss_cls = torch.zeros((), dtype=dtype, device=device)

        # Objectness per level: each level has its own plane, mean and
        # balance weight, and autobalance needs each level's value.
        loss_obj = torch.zeros((), dtype=dtype, device=device)
        level_obj: List[Tensor] = []
        for level, level_valid in enumerate(valid):
            obj_logits = prepared.obj_logits[level]                  # [B, A, H*W]
            with torch.no_grad():
                iou = level_iou[level].reshape(level_valid.shape)
                obj_value = torch.where(level_valid, (1.0 - self.gr) + self.gr * iou,
                                        torch.zeros_like(iou))
                # Every value is >= 0, so zeros absorb the non-matches and
                # a cell hit twice keeps its largest target.
                obj_target = torch.zeros(obj_logits.numel(), dtype=dtype, device=device)
                obj_target.scatter_reduce_(0, prepared.obj_index[level].reshape(-1),
                                           obj_value.reshape(-1), 'amax')
            obj_level = self.loss_obj(obj_logits.reshape(-1, 1).to(dtype),
                                      obj_target.view(-1, 1))
            level_obj.append(obj_level)
            loss_obj = loss_obj + obj_level * balance[level]

        losses = dict(loss_box=loss_box, loss_obj=loss_obj, loss_cls=loss_cls)
        return losses, (level_obj if self.autobalance else None)

    # ------------------------------------------------------------------- state
    @torch.no_grad()
    def _update_state(self, level_obj: List[Tensor]) -> None:
        """yolov5's autobalance, as a detached tensor update (no ``.item()``)."""
        obj_weight = getattr(self.loss_obj, 'loss_weight', 1.0)
        unweighted = torch.stack([value.detach() for value in level_obj]).float() / obj_weight
        balance = (self.balance * AUTOBALANCE_MOMENTUM
                   + AUTOBALANCE_GAIN / unweighted.to(self.balance).clamp(min=torch.finfo(torch.float32).tiny))
        self.balance.copy_(balance / balance[self.reference_level])

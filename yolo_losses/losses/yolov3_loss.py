"""YOLOv3 loss in the three forms a YOLOv3 user knows (``style``).

``YOLOv3Loss(preds, targets, img_size=None, max_boxes=None)`` returns
``loss_xy``, ``loss_wh``, ``loss_obj`` and ``loss_cls`` (scalars, each already
weighted, never multiplied by the batch size), summed over levels:

- ``'keras'`` (default), qqwweee/keras-yolo3 ``yolo_loss``: one anchor of all
  nine per box; xy BCE-with-logits against the in-cell offset and wh
  ``0.5 * (raw - log(w_px / anchor_px))^2``, both weighted by ``2 - w*h``
  (normalised sizes); objectness BCE on positives and on negatives whose
  predicted box has IoU below ``ignore_thresh`` (0.5) with every box this
  level holds for the image; class BCE on positives; each term summed and
  divided by the batch size (the parts' ``reduction='mean'`` with
  ``avg_factor`` = batch size).
- ``'darknet'``, pjreddie darknet ``yolo_layer.c``: the same terms summed
  with no division (the parts' ``reduction='sum'``), so the gradient with
  respect to the raw outputs is the negated ``l.delta``; negatives are
  ignored when IoU ``> ignore_thresh`` (0.7) with any box of the image.
- ``'pytorch_yolov3'``, eriklindernoren PyTorch-YOLOv3 ``build_targets`` +
  ``YOLOLayer``: each box positive at the best anchor of every level; MSE of
  ``sigmoid(xy)`` against the offset and of raw wh against
  ``log(w / anchor + 1e-16)`` (grid units), means over the level's
  positives; objectness ``obj_scale * BCE`` mean over positives plus
  ``noobj_scale`` (100) ``* BCE`` mean over negatives, anchors of a box's
  cell with shape IoU ``> ignore_thresh`` (0.5) not being negatives; class
  BCE mean over positives x classes. A mean over nothing is 0 (the original
  gives NaN). The original computes BCE on sigmoid outputs (``nn.BCELoss``,
  log clamped at -100); here it is computed from logits, equal wherever the
  sigmoid does not saturate.

Assignment, collisions (the box last in canonical order owns a slot's box
target, class bits add up) and the ignore masks are ``YOLOv3Assigner``'s
(``yolo_losses/assigners/yolov3_assigner.py``). Boxes of zero width or height
match nothing (keras drops them too). keras-yolo3 floors the pixel centre in
its data pipeline; with cxcywh targets the centre is taken as given.

Every part is a registry config. Normalisation: a part whose ``reduction``
is ``'mean'`` gets ``avg_factor`` (the batch size for keras/darknet; the
positive, negative or positive x class count for pytorch_yolov3); with
``'sum'`` it sums. ``loss_xy`` gets the raw x, y logits when the part has
``use_sigmoid=True`` (BCE, focal), else ``sigmoid(x)``, ``sigmoid(y)``
(MSE, L1). ``loss_xy``, ``loss_wh`` and ``loss_cls`` run on the ``B x M``
box slots (``M`` = ``max_boxes``), gathered at each box's slot and weighted
by "this box holds its slot" (a held box is exactly one positive; padding
and boxes that lost a collision weigh 0); ``loss_obj`` runs on every slot of
the grid, its positives and negatives being masks (``weight``). Every shape
is fixed, so with ``max_boxes`` given and validation off nothing
synchronises with the device.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..assigners.yolov3_assigner import YOLOv3LevelAssignment, scale_pairs
from ..ops.anchors import (DEFAULT_ANCHORS, DEFAULT_STRIDES, NUM_BOX_ATTRS,
                           gather_objectness_and_slots, grid_cells)
from ..ops.targets import pad_targets
from ..registry import MODELS, TASK_UTILS
from .anchor_based import AnchorBasedLoss
from .composite import build_part

STYLES = ('keras', 'darknet', 'pytorch_yolov3')

# PyTorch-YOLOv3 adds 1e-16 inside the log of its wh target.
_PYTORCH_YOLOV3_LOG_EPS = 1e-16


def _bce(reduction: str) -> dict:
    return dict(type='CrossEntropyLoss', use_sigmoid=True, reduction=reduction,
                loss_weight=1.0)


def default_part_configs(style: str) -> Dict[str, dict]:
    """The four part configs that reproduce ``style``'s reference."""
    if style == 'pytorch_yolov3':
        return dict(loss_xy=dict(type='MSELoss', reduction='mean', loss_weight=1.0),
                    loss_wh=dict(type='MSELoss', reduction='mean', loss_weight=1.0),
                    loss_obj=_bce('mean'), loss_cls=_bce('mean'))
    # keras: sums divided by the batch size; darknet: plain sums.
    reduction = 'mean' if style == 'keras' else 'sum'
    return dict(loss_xy=_bce(reduction),
                loss_wh=dict(type='MSELoss', reduction=reduction, loss_weight=0.5),
                loss_obj=_bce(reduction), loss_cls=_bce(reduction))


class YOLOv3LevelTargets(NamedTuple):
    """One level's decoded predictions and targets (B images, M padded
    boxes, A anchors, an ``H x W`` grid).

    assigned: the assigner's result for the level (per-box slots, offsets,
        class targets, positive mask; ``YOLOv3LevelAssignment``).
    obj_logits: ``[B, A, H*W, 1]`` objectness logits of the whole grid.
    box_logits: ``[B, M, 5+C]`` raw channels at each box's slot on this
        level (x, y, w, h, objectness, classes; meaningful where held).
    wh_target: ``[B, M, 2]`` ``log(size / anchor)`` in the style's units
        (0 where the box does not hold its slot).
    ignored: ``[B, A, H*W]`` bool, slots that are not negatives (their
        predicted box overlaps a ground truth, per the style's rule).
    """
    assigned: YOLOv3LevelAssignment
    obj_logits: Tensor
    box_logits: Tensor
    wh_target: Tensor
    ignored: Tensor


class YOLOv3Targets(NamedTuple):
    """What ``YOLOv3Loss.assign`` returns and its losses are computed from.

    boxes: ``[B, M, 4]`` padded ground truth (cx, cy, w, h), normalised.
    box_mask: ``[B, M]`` bool, real boxes of non-zero size.
    levels: one :class:`YOLOv3LevelTargets` per level.
    """
    boxes: Tensor
    box_mask: Tensor
    levels: List[YOLOv3LevelTargets]


@MODELS.register_module()
class YOLOv3Loss(AnchorBasedLoss):
    """YOLOv3 loss, keras-yolo3 / darknet / PyTorch-YOLOv3 semantics.

    Call: ``loss(preds, targets, img_size=None, max_boxes=None)`` ->
    ``{'loss_xy', 'loss_wh', 'loss_obj', 'loss_cls'}`` scalar tensors;
    ``loss.assign(...)`` (same arguments) -> :class:`YOLOv3Targets`.

    - ``preds``: one ``[B, A*(5+C), H, W]`` raw head output per level,
      increasing stride; per anchor x, y, w, h, objectness, C class logits
      (``view(B, A, 5+C, H, W).permute(0, 1, 3, 4, 2)``).
    - ``targets``: float ``[N, 6]`` (batch_index, class_id, cx, cy, w, h),
      coordinates normalised to [0, 1] of the input; any row order; N may
      be 0.
    - ``img_size``: input ``(h, w)`` in pixels; default: level-0 stride times
      the level-0 grid. Non-square inputs scale x by the width and y by the
      height.
    - ``max_boxes``: bound on boxes per image; given, nothing synchronises
      (with validation off); ``None``: computed (one sync).

    Args:
        num_classes: C (1 is fine: the class loss is kept).
        anchors: ``[level][anchor] -> (w, h)`` in input pixels, increasing
            stride; default: the nine keras-yolo3 / yolov5 anchors.
        strides: stride of each level in pixels.
        style: ``'keras'`` (default), ``'darknet'`` or ``'pytorch_yolov3'``.
        ignore_thresh: IoU threshold of the ignore mask; ``None``: 0.5 keras,
            0.7 darknet, 0.5 pytorch_yolov3.
        obj_scale: weight of the positives' objectness term.
        noobj_scale: weight of the negatives' objectness term; ``None``: 100
            for pytorch_yolov3 (its ``noobj_scale``), 1 otherwise.
        box_scale: weight the xy and wh terms by ``2 - w*h``; ``None``: on
            for keras and darknet, off for pytorch_yolov3 (on there is the
            variant with darknet's scale added).
        loss_xy, loss_wh, loss_obj, loss_cls: part configs; ``None`` takes the
            style's (``default_part_configs``). Each is called as
            ``part(pred [K, n], target [K, n], weight=[K, n], avg_factor=...)``
            (``K = B*M`` box slots; ``B*A*H*W`` grid slots for ``loss_obj``).
        assigner: assigner config; it gets ``style`` and ``ignore_thresh``
            from this loss unless it sets them (they must then agree).
        class_weights: ``None`` or C non-negative multipliers, one per
            class, of the class BCE of every class entry of every positive
            (ultralytics' ``model.class_weights`` semantics; the styles'
            normalisations are unchanged). Every style takes them: the class
            term is an element-wise BCE over the positives' C class bits in
            all three, so a weight per class entry is well defined; for
            ``'darknet'`` the class delta of class c becomes
            ``w_c * (target - sigmoid)`` (darknet itself has no class
            weights). Kept in the persistent buffer ``class_weights`` (ones
            when ``None``); ``set_class_weights(weights)`` changes it.
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
                 style: str = 'keras',
                 ignore_thresh: Optional[float] = None,
                 obj_scale: float = 1.0,
                 noobj_scale: Optional[float] = None,
                 box_scale: Optional[bool] = None,
                 loss_xy: Optional[dict] = None,
                 loss_wh: Optional[dict] = None,
                 loss_obj: Optional[dict] = None,
                 loss_cls: Optional[dict] = None,
                 assigner: dict = dict(type='YOLOv3Assigner'),
                 class_weights: Optional[Sequence[float]] = None,
                 validate: Optional[bool] = None) -> None:
        if style not in STYLES:
            raise ValueError(f'style must be one of {", ".join(map(repr, STYLES))}, '
                             f'got {style!r}')
        super().__init__(num_classes, anchors, strides, class_weights, validate)
        self.style = style
        self.obj_scale = self._non_negative('obj_scale', obj_scale)
        self.noobj_scale = self._non_negative(
            'noobj_scale',
            (100.0 if style == 'pytorch_yolov3' else 1.0) if noobj_scale is None
            else noobj_scale)
        if box_scale is None:
            box_scale = style != 'pytorch_yolov3'
        if not isinstance(box_scale, bool):
            raise TypeError(f'box_scale must be a bool or None, got {box_scale!r}')
        self.box_scale = box_scale

        defaults = default_part_configs(style)
        given = dict(loss_xy=loss_xy, loss_wh=loss_wh, loss_obj=loss_obj,
                     loss_cls=loss_cls)
        self._normalised: Dict[str, bool] = {}
        for name, cfg in given.items():
            if cfg is None:
                cfg = defaults[name]
            part = build_part(cfg, name)
            reduction = getattr(part, 'reduction', 'mean')
            if reduction not in ('mean', 'sum'):
                raise ValueError(f"{name} must have reduction 'mean' or 'sum' (the "
                                 f'loss reduces every part to a scalar), got '
                                 f'{reduction!r}')
            self._normalised[name] = reduction == 'mean'
            setattr(self, name, part)
        # A part that applies the sigmoid itself gets the x, y logits.
        self.xy_from_logits = bool(getattr(self.loss_xy, 'use_sigmoid', False))

        self.assigner = TASK_UTILS.build(self._assigner_cfg(assigner, ignore_thresh))
        self.ignore_thresh = getattr(self.assigner, 'ignore_thresh', ignore_thresh)

    def _assigner_cfg(self, assigner: dict, ignore_thresh: Optional[float]) -> dict:
        if not hasattr(assigner, 'get') or 'type' not in assigner:
            raise TypeError(f'assigner must be a config dict with a "type" key, '
                            f'got {assigner!r}')
        cfg = dict(assigner)
        if cfg.setdefault('style', self.style) != self.style:
            raise ValueError(f"assigner style {cfg['style']!r} differs from the loss "
                             f'style {self.style!r}; set match/ignore on the assigner '
                             'to mix rules')
        if ignore_thresh is not None:
            if cfg.setdefault('ignore_thresh', ignore_thresh) != ignore_thresh:
                raise ValueError(f"assigner ignore_thresh {cfg['ignore_thresh']!r} "
                                 f'differs from the loss ignore_thresh {ignore_thresh!r}')
        return cfg

    @staticmethod
    def _non_negative(name: str, value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not float(value) >= 0:
            raise ValueError(f'{name} must be a non-negative number, got {value!r}')
        return float(value)

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, style={self.style!r}, '
                f'strides={self.strides}, num_anchors={self.num_anchors}, '
                f'ignore_thresh={self.ignore_thresh}, obj_scale={self.obj_scale}, '
                f'noobj_scale={self.noobj_scale}, box_scale={self.box_scale}')


    # ----------------------------------------------------------------- prepare
    def _prepare(self, preds: Sequence[Tensor], targets: Tensor,
                 img_size: Tuple[int, int], max_boxes: int) -> YOLOv3Targets:
        dtype = self.compute_dtype(preds)
        batch_size = preds[0].shape[0]
        num_anchors = self.num_anchors
        pytorch_style = self.style == 'pytorch_yolov3'
        img_h, img_w = img_size
        # One padded slot at least, so gathers never index an empty axis.
        padded = pad_targets(targets.detach().to(dtype), batch_size, max(max_boxes, 1))
        boxes = padded.boxes
        box_mask = padded.mask & (boxes[..., 2] > 0) & (boxes[..., 3] > 0)
        anchors = self.anchors.to(dtype)
        grid_sizes = [tuple(pred.shape[-2:]) for pred in preds]
        # Per-box targets only: a held box is exactly one positive slot, so
        # the box and class terms run on the [B, M] held boxes' gathered
        # predictions, and only objectness runs over the whole grid.
        assignments = self.assigner.assign(boxes, padded.labels, box_mask, anchors,
                                           self.strides, grid_sizes, img_size,
                                           self.num_classes, dense=False)
        levels = []
        for level, raw in enumerate(preds):
            height, width = grid_sizes[level]
            cells = height * width
            assigned = assignments[level]
            level_anchors = anchors[level]                        # [A, 2] px

            # The objectness plane and the held boxes' slots, read as one op.
            cell = assigned.box_cell_y * width + assigned.box_cell_x
            obj_logits, picked = gather_objectness_and_slots(
                raw, num_anchors, assigned.box_anchor, cell)

            # wh target: log of the size over the anchor; 0 off the held
            # boxes (log 1, not log 0).
            box_anchors = level_anchors[assigned.box_anchor]      # [B, M, 2] px
            if pytorch_style:
                ratio = (scale_pairs(boxes[..., 2:4], width, height)
                         / (box_anchors / float(self.strides[level]))
                         + _PYTORCH_YOLOV3_LOG_EPS)
            else:
                ratio = scale_pairs(boxes[..., 2:4], img_w, img_h) / box_anchors
            ratio = torch.where(assigned.box_held[..., None], ratio, torch.ones_like(ratio))

            # Negatives whose predicted box overlaps a ground truth enough
            # are ignored (not negatives): decoded from the detached grid.
            with torch.no_grad():
                planes = raw.detach().reshape(batch_size, num_anchors, -1, cells)
                pred_boxes = self._decode_grid(planes[:, :, 0:4].to(dtype),
                                               level_anchors, height, width,
                                               img_h, img_w)
                ignored = self.assigner.ignore_mask(
                    pred_boxes.view(batch_size, num_anchors, height, width, 4),
                    boxes, box_mask, assigned)
            levels.append(YOLOv3LevelTargets(
                assigned=assigned,
                obj_logits=obj_logits.to(dtype)[..., None],       # [B, A, H*W, 1]
                box_logits=picked.to(dtype),                      # [B, M, 5+C]
                wh_target=ratio.log(),
                ignored=ignored.view(batch_size, num_anchors, cells)))
        return YOLOv3Targets(boxes, box_mask, levels)

    # ------------------------------------------------------------------ losses
    def _part(self, name: str, pred: Tensor, target: Tensor, weight: Tensor,
              avg_factor) -> Tensor:
        """Call part ``name`` on flattened ``[K, n]`` tensors."""
        size = pred.shape[-1]
        args = (pred.reshape(-1, size), target.reshape(-1, size))
        weight = weight.expand_as(pred).reshape(-1, size)
        part = getattr(self, name)
        if self._normalised[name]:
            return part(*args, weight=weight, avg_factor=avg_factor)
        return part(*args, weight=weight)

    def _losses(self, prepared: YOLOv3Targets) -> Tuple[Dict[str, Tensor], None]:
        boxes = prepared.boxes
        batch_size = boxes.shape[0]
        dtype, device = boxes.dtype, boxes.device
        pytorch_style = self.style == 'pytorch_yolov3'
        per_image = batch_size
        totals = {name: torch.zeros((), dtype=dtype, device=device)
                  for name in ('loss_xy', 'loss_wh', 'loss_obj', 'loss_cls')}
        class_weights = self.class_weights.to(dtype) if self.class_weighted else None
        for level_targets in prepared.levels:
            assigned = level_targets.assigned
            picked = level_targets.box_logits
            held_weight = assigned.box_held.to(dtype)
            num_pos = held_weight.sum()
            if self.box_scale:
                coord_weight = held_weight * (2.0 - boxes[..., 2] * boxes[..., 3])
            else:
                coord_weight = held_weight
            coord_weight = coord_weight[..., None]
            norm_pos = num_pos if pytorch_style else per_image

            # xy: offset of the centre in its cell.
            raw_xy = picked[..., 0:2]
            xy_input = raw_xy if self.xy_from_logits else raw_xy.sigmoid()
            totals['loss_xy'] = totals['loss_xy'] + self._part(
                'loss_xy', xy_input, assigned.box_offsets, coord_weight, norm_pos)
            totals['loss_wh'] = totals['loss_wh'] + self._part(
                'loss_wh', picked[..., 2:4], level_targets.wh_target, coord_weight,
                norm_pos)

            # Objectness: positives, and negatives not ignored, over the grid.
            obj_logit = level_targets.obj_logits
            pos = assigned.pos_mask.view(level_targets.ignored.shape)
            pos_weight = pos.to(dtype)
            neg_weight = (~pos & ~level_targets.ignored).to(dtype)
            obj_target = pos_weight[..., None]
            if pytorch_style:
                obj_term = self.obj_scale * self._part(
                    'loss_obj', obj_logit, obj_target, obj_target, num_pos)
                obj_term = obj_term + self.noobj_scale * self._part(
                    'loss_obj', obj_logit, obj_target, neg_weight[..., None],
                    neg_weight.sum())
            else:
                obj_weight = self.obj_scale * pos_weight + self.noobj_scale * neg_weight
                obj_term = self._part('loss_obj', obj_logit, obj_target,
                                      obj_weight[..., None], per_image)
            totals['loss_obj'] = totals['loss_obj'] + obj_term

            # Classes: held boxes only, every class bit of the slot, each
            # class's BCE times its class weight when weights are set.
            cls_norm = num_pos * self.num_classes if pytorch_style else per_image
            cls_weight = held_weight[..., None]
            if class_weights is not None:
                cls_weight = cls_weight * class_weights
            totals['loss_cls'] = totals['loss_cls'] + self._part(
                'loss_cls', picked[..., NUM_BOX_ATTRS:], assigned.box_classes,
                cls_weight, cls_norm)
        return totals, None

    @staticmethod
    def _decode_grid(raw_box: Tensor, anchors: Tensor, height: int, width: int,
                     img_h: int, img_w: int) -> Tensor:
        """Predicted boxes of a whole level, normalised to the input.

        Args:
            raw_box: ``[B, A, 4, H*W]`` raw x, y, w, h logits (channel planes).
            anchors: ``[A, 2]`` anchor (w, h) in input pixels.

        Returns:
            ``[B, A, H*W, 4]`` (cx, cy, w, h): ``(sigmoid(xy) + cell) / grid``
            and ``exp(wh) * anchor / input size``.
        """
        cell_x, cell_y = grid_cells(height, width, device=raw_box.device,
                                    dtype=raw_box.dtype).reshape(-1, 2).unbind(-1)
        centre_x = (raw_box[:, :, 0].sigmoid() + cell_x) * (1.0 / width)
        centre_y = (raw_box[:, :, 1].sigmoid() + cell_y) * (1.0 / height)
        size_w = raw_box[:, :, 2].exp() * anchors[:, 0, None] * (1.0 / img_w)
        size_h = raw_box[:, :, 3].exp() * anchors[:, 1, None] * (1.0 / img_h)
        return torch.stack((centre_x, centre_y, size_w, size_h), dim=-1)

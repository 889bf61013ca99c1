"""YOLOv8 loss: ultralytics ``v8DetectionLoss`` (8.4.190).

``YOLOv8Loss`` returns the three components of ultralytics' detection loss,
each already multiplied by its weight (``loss_weight`` of its part) and never
by the batch size (ultralytics multiplies the sum by the batch size; the
training step here sums the components as they are):

- ``loss_box``: ``1 - CIoU`` of each positive point's decoded box against its
  assigned box (grid units of the point's level), weighted by the point's
  target score, summed and divided by the sum of all target scores ``S``
  (``S = max(sum, 1)``); weight 7.5.
- ``loss_cls``: sigmoid BCE of every class logit of every point against the
  soft targets of the assigner, summed and divided by ``S``; weight 0.5.
- ``loss_dfl``: distribution focal loss of the four side distributions of
  each positive point against the distances to its assigned box (clamped to
  ``[0, reg_max - 1.01]``), averaged over the sides, weighted by the point's
  target score, summed and divided by ``S``; weight 1.5.

Assignment is :class:`~yolo_losses.assigners.TaskAlignedAssigner` (topk 10,
alpha 0.5, beta 6.0, ultralytics 8.4.190's widening of ground-truth sides
shorter than the second stride) on the detached predictions, in input pixels.

The class loss runs over all points; the box and distribution losses over a
fixed number of slots that hold every positive point (``B * M * topk``, the
most positives the assigner can give, or all points when that is not fewer),
with weight masks (0 on background slots, whose target boxes are harmless
placeholders). So with ``max_boxes`` given and validation off nothing
synchronises with the device, and no shape depends on the data.

Where this differs from ultralytics, on purpose:

- the parts divide by ``S + eps`` (mmdet's ``avg_factor``, ``eps`` the
  float32 machine epsilon), ultralytics by ``S``: at most 1.2e-7 relative;
- target rows may come in any order; where the assigner breaks a tie by box
  position (equal overlaps), boxes are in the canonical order of
  ``pad_targets`` (image, class, cx, cy, w, h), not in row order;
- ``topk`` is capped at the number of points (ultralytics fails below it);
- mmdet's sigmoid ``class_weight`` of ``loss_cls`` is a positive-class
  weight; ultralytics' per-class factors of the whole class BCE are this
  loss's own ``class_weights``.

``reg_max=1`` (YOLO26, ultralytics' ``BboxLoss`` with ``reg_max <= 1``): each
level is ``[B, 4 + C, H, W]``, four raw distances (left, top, right, bottom,
grid units of the level, no activation) then the class logits. The keys are
``loss_box``, ``loss_cls`` and ``loss_l1``: ``loss_l1`` is the L1 distance of
the predicted and the target distances of each positive point, both times
the stride and divided by the input width (left, right) or height (top,
bottom), averaged over the four sides, weighted by the point's target score
and divided by ``S``; weight 1.5 (ultralytics' ``dfl`` gain). Nothing is
clamped: a positive point outside its box (possible through the small-box
enlargement of the assigner) has a negative target distance, as in
ultralytics.
"""
from __future__ import annotations

import copy
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..assigners.task_aligned_assigner import TaskAlignedAssigner, TaskAlignedAssignment
from ..ops.anchors import DEFAULT_STRIDES, check_strides
from ..ops.boxes import cxcywh_to_xyxy
from ..ops.points import (boxes_to_distances, distances_to_boxes,
                          distribution_expectation, level_points)
from ..ops.targets import pad_targets
from ..registry import MODELS, TASK_UTILS
from .class_weights import ClassWeights, check_class_weights
from .composite import CompositeLoss, build_part

#: ultralytics keeps DFL targets this far below the last bin, so the right
#: neighbour bin of every target exists.
DFL_TARGET_MARGIN = 0.01

#: Half side (grid units) of the placeholder target box of background points.
_PLACEHOLDER_HALF_SIDE = 1.0


class SharedTargets(NamedTuple):
    """What the losses of one head's branches compute alike: point geometry
    and padded targets (``YOLOv8Loss.shared_targets``; ``E2ELoss`` computes
    it once for both branches).

    points: ``[N, 2]`` anchor points, grid units of each point's level.
    point_strides: ``[N, 1]`` stride of each point (pixels per grid unit).
    labels: ``[B, M]`` long class ids of the padded boxes.
    gt_boxes: ``[B, M, 4]`` padded ground truth, xyxy input pixels.
    gt_mask: ``[B, M]`` bool, real boxes.
    img_size: ``(h, w)`` input pixels (Python ints).
    """
    points: Tensor
    point_strides: Tensor
    labels: Tensor
    gt_boxes: Tensor
    gt_mask: Tensor
    img_size: Tuple[int, int]


class YOLOv8Targets(NamedTuple):
    """Decoded predictions and their assignment (``YOLOv8Loss.assign``).

    N points over all levels, B images, C classes, R = ``reg_max``.

    cls_logits: ``[B, N, C]`` class logits.
    dist_logits: ``[B, N, 4, R]`` side-distribution logits (l, t, r, b);
        with ``reg_max=1`` ``[B, N, 4, 1]`` raw distances (grid units).
    pred_boxes: ``[B, N, 4]`` decoded xyxy boxes, grid units of each point's
        level (detached: what the assigner sees).
    points: ``[N, 2]`` anchor points, grid units.
    point_strides: ``[N, 1]`` stride of each point (pixels per grid unit).
    gt_boxes: ``[B, M, 4]`` padded ground truth, xyxy input pixels.
    gt_mask: ``[B, M]`` bool, real boxes.
    assignment: the assigner's result (boxes in pixels).
    img_size: ``(h, w)`` input pixels.
    """
    cls_logits: Tensor
    dist_logits: Tensor
    pred_boxes: Tensor
    points: Tensor
    point_strides: Tensor
    gt_boxes: Tensor
    gt_mask: Tensor
    assignment: TaskAlignedAssignment
    img_size: Tuple[int, int]


@MODELS.register_module()
class YOLOv8Loss(CompositeLoss):
    """ultralytics ``v8DetectionLoss`` as a registered, configurable loss.

    Call: ``loss(preds, targets, img_size=None, max_boxes=None)`` ->
    ``{'loss_box', 'loss_cls', 'loss_dfl'}`` scalar tensors
    (``{'loss_box', 'loss_cls', 'loss_l1'}`` with ``reg_max=1``).

    - ``preds``: one ``[B, 4*reg_max + C, H, W]`` raw head output per level,
      increasing stride: the left, top, right and bottom distributions
      (``reg_max`` bin logits each, in that order), then C class logits
      (ultralytics' ``Detect`` layout). With ``reg_max=1``: four raw
      distances (grid units of the level), then the class logits.
    - ``targets``: float ``[N, 6]`` (batch_index, class_id, cx, cy, w, h),
      coordinates normalised to [0, 1] of the input; any row order; N may be
      0. A box whose corner coordinates sum to 0 or less (in pixels) is
      ignored, as ultralytics does.
    - ``img_size``: input ``(h, w)`` in pixels, which scales the targets;
      default: level-0 stride times the level-0 grid (ultralytics).
    - ``max_boxes``: bound on boxes per image; given, the loss needs no host
      sync (validation off); ``None``: computed (one sync).

    Args:
        num_classes: C (1 is fine: the class loss is kept, as ultralytics).
        strides: stride of each level in pixels, increasing.
        reg_max: bins per side distribution (>= 2), or 1 for four raw
            distances and the L1 distance loss (YOLO26).
        loss_cls: config of the class loss, called with ``[B, N, C]`` logits
            and soft targets and ``avg_factor=S``; needs ``reduction='mean'``.
            ``FocalLoss``/``VarifocalLoss`` configs work as well.
        loss_bbox: config of the box loss, called with ``[K, 4]`` xyxy
            boxes (grid units), a ``[K]`` weight and ``avg_factor=S``, K the
            positive slots (``min(B*M*topk, B*N)``);
            needs ``reduction='mean'`` (``SIoULoss`` etc. work as well).
        loss_dfl: config of the distribution loss, called with
            ``[K*4, reg_max]`` logits, ``[K*4]`` distances, a ``[K*4]``
            weight and ``avg_factor=4*S``; needs ``reduction='mean'``. Used
            when ``reg_max >= 2``.
        loss_l1: config of the distance loss of ``reg_max=1``, called with
            ``[K, 4]`` image-normalised predicted and target distances, a
            ``[K, 4]`` weight and ``avg_factor=4*S``; needs
            ``reduction='mean'``. Used when ``reg_max=1``.
        class_weights: ``None`` or C numbers >= 0 multiplying the class loss
            of every point and class (ultralytics' ``model.class_weights``,
            e.g. from :func:`yolo_losses.class_weights_from_counts`). Kept in
            the persistent buffer ``class_weights`` ``[C]`` (ones for
            ``None``); change it with :meth:`set_class_weights`.
        assigner: config of the assigner (``TaskAlignedAssigner``; its
            ``strides`` default to this loss's). It is called with sigmoid
            scores ``[B, N, C]``, predicted xyxy boxes ``[B, N, 4]`` and
            points ``[N, 2]`` in input pixels, labels ``[B, M]``, boxes
            ``[B, M, 4]`` (xyxy pixels) and a box mask ``[B, M]`` (a
            ``TaskAlignedAssigner`` gets the class logits and
            ``score_logits=True`` instead of the sigmoid scores).
        validate: value checks of ``preds`` and ``targets`` (NaN/inf, class
            ids, batch indices, negative sizes, ``max_boxes``; host syncs);
            ``None`` follows ``yolo_losses.set_validation``. The parts are
            built with ``validate=False`` unless their config sets it: they
            only see tensors derived from the checked inputs.
    """

    def __init__(self,
                 num_classes: int,
                 strides: Sequence[float] = DEFAULT_STRIDES,
                 reg_max: int = 16,
                 loss_cls: dict = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                       reduction='mean', loss_weight=0.5),
                 loss_bbox: dict = dict(type='CIoULoss', style='yolo',
                                        reduction='mean', loss_weight=7.5),
                 loss_dfl: dict = dict(type='DistributionFocalLoss',
                                       reduction='mean', loss_weight=1.5),
                 assigner: dict = dict(type='TaskAlignedAssigner', topk=10,
                                       alpha=0.5, beta=6.0),
                 validate: Optional[bool] = None,
                 loss_l1: dict = dict(type='L1Loss', reduction='mean', loss_weight=1.5),
                 class_weights: ClassWeights = None) -> None:
        super().__init__(validate)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        if isinstance(reg_max, bool) or not isinstance(reg_max, int) or reg_max < 1:
            raise ValueError(f'reg_max must be a positive int (1: raw distances, '
                             f'>= 2: distributions), got {reg_max!r}')
        weights = check_class_weights(class_weights, num_classes)
        self.strides = check_strides(strides, None, 'strides')
        self.num_classes = num_classes
        self.reg_max = reg_max

        self.loss_cls = build_part(loss_cls, 'loss_cls')
        self.loss_bbox = build_part(loss_bbox, 'loss_bbox')
        # reg_max 1 has no distributions: the distance term is the L1 part
        # (ultralytics' BboxLoss with reg_max <= 1), under its own key.
        self.distance_key = 'loss_l1' if reg_max == 1 else 'loss_dfl'
        if reg_max == 1:
            self.loss_l1 = build_part(loss_l1, 'loss_l1')
        else:
            self.loss_dfl = build_part(loss_dfl, 'loss_dfl')
        for name in ('loss_cls', 'loss_bbox', self.distance_key):
            reduction = getattr(getattr(self, name), 'reduction', 'mean')
            if reduction != 'mean':
                raise ValueError(
                    f"{name} must use reduction='mean' (YOLOv8Loss divides by the "
                    f"target-score sum through avg_factor), got {reduction!r}")

        if not hasattr(assigner, 'get') or 'type' not in assigner:
            raise TypeError(f'assigner must be a config dict with a "type" key, '
                            f'got {assigner!r}')
        assigner = copy.deepcopy(dict(assigner))
        assigner_type = assigner['type']
        if isinstance(assigner_type, str):
            assigner_type = TASK_UTILS.get(assigner_type)
        if isinstance(assigner_type, type) and issubclass(assigner_type, TaskAlignedAssigner):
            assigner.setdefault('strides', self.strides)
        self.assigner = TASK_UTILS.build(assigner)

        self.register_buffer('class_weights', torch.ones(num_classes), persistent=True)
        # Ones multiply nothing: the class loss then skips the weight (a
        # [B, N, C] product). Python state mirroring the buffer, refreshed by
        # set_class_weights and by load_state_dict.
        self._class_weights_uniform = True
        self.set_class_weights(weights)

    def set_class_weights(self, weights: ClassWeights) -> None:
        """Replace the per-class factors of the class loss (``None``: ones).

        ``weights``: C finite numbers >= 0 (list, array or tensor). Checked
        before anything changes (``ValueError`` naming ``class_weights``);
        then copied into the ``class_weights`` buffer (its device and dtype
        stay). A host-side call, not for the training step's hot path.
        """
        array = check_class_weights(weights, self.num_classes)
        with torch.no_grad():
            if array is None:
                self.class_weights.fill_(1)
            else:
                self.class_weights.copy_(torch.from_numpy(array))
        self._class_weights_uniform = array is None or bool((array == 1).all())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # A loaded buffer may hold any weights: refresh the mirror (one read
        # at load time, not in the step).
        self._class_weights_uniform = bool((self.class_weights == 1).all())

    @property
    def num_outputs(self) -> int:
        """Channels of each level's prediction: ``4 * reg_max + C`` (``4 + C``
        for ``reg_max=1``)."""
        return 4 * self.reg_max + self.num_classes

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, strides={self.strides}, '
                f'reg_max={self.reg_max}, '
                f'class_weights={"ones" if self._class_weights_uniform else "set"}')

    # ------------------------------------------------------------------ checks
    level_layout = '[B, 4*reg_max + C, H, W]'

    def check_level(self, name: str, pred: Tensor) -> None:
        if pred.dim() != 4 or pred.shape[1] != self.num_outputs:
            raise ValueError(
                f'{name} must be [B, 4*reg_max + C, H, W] = [B, {self.num_outputs}, '
                f'H, W] for reg_max={self.reg_max} and C={self.num_classes} '
                f'classes, got shape {tuple(pred.shape)}')

    # ----------------------------------------------------------------- forward
    def forward(self, preds: Sequence[Tensor], targets: Tensor,
                img_size: Optional[Sequence[int]] = None,
                max_boxes: Optional[int] = None) -> Dict[str, Tensor]:
        _, size, max_boxes = self.check_inputs(preds, targets, img_size, max_boxes)
        with torch.autocast(device_type=preds[0].device.type, enabled=False):
            shared = self.shared_targets(preds, targets, size, max_boxes)
            return self._losses(self._prepare(preds, shared))

    def assign(self, preds: Sequence[Tensor], targets: Tensor,
               img_size: Optional[Sequence[int]] = None,
               max_boxes: Optional[int] = None) -> YOLOv8Targets:
        """The decoded predictions and targets ``forward`` computes its
        losses from (same arguments and checks), for inspection."""
        _, size, max_boxes = self.check_inputs(preds, targets, img_size, max_boxes)
        with torch.autocast(device_type=preds[0].device.type, enabled=False):
            return self._prepare(preds, self.shared_targets(preds, targets, size, max_boxes))

    @staticmethod
    def compute_dtype(preds: Sequence[Tensor]) -> torch.dtype:
        """float64 when any level is float64, else float32 (half and
        bfloat16 head outputs are computed in float32)."""
        return torch.float64 if any(p.dtype == torch.float64 for p in preds) \
            else torch.float32

    def shared_targets(self, preds: Sequence[Tensor], targets: Tensor,
                       img_size: Tuple[int, int], max_boxes: int,
                       dtype: Optional[torch.dtype] = None) -> SharedTargets:
        """Point geometry and padded pixel targets for ``preds`` (checked
        inputs; ``img_size`` and ``max_boxes`` resolved). Depends on the
        grid sizes, strides, device and dtype only, so branches of one head
        share it."""
        device = preds[0].device
        dtype = self.compute_dtype(preds) if dtype is None else dtype
        batch_size = preds[0].shape[0]
        points, point_strides = level_points([p.shape[-2:] for p in preds], self.strides,
                                             device=device, dtype=dtype)
        # Targets in input pixels, xyxy, padded per image.
        padded = pad_targets(targets.to(dtype), batch_size, max_boxes)
        height, width = img_size
        # Filled on the device: a tensor from Python data would be a blocking
        # host-to-device copy on CUDA.
        scale = torch.full((4,), float(width), dtype=dtype, device=device)
        scale[1::2] = float(height)
        gt_boxes = cxcywh_to_xyxy(padded.boxes * scale)
        gt_mask = padded.mask & (gt_boxes.sum(-1) > 0)
        return SharedTargets(points, point_strides, padded.labels, gt_boxes, gt_mask,
                             (int(height), int(width)))

    def decode_distances(self, dist_logits: Tensor) -> Tensor:
        """``[..., 4, R]`` -> ``[..., 4]`` distances in grid units: the
        distributions' expectations, or the raw values for ``reg_max=1``."""
        if self.reg_max == 1:
            return dist_logits.squeeze(-1)
        return distribution_expectation(dist_logits)

    def _prepare(self, preds: Sequence[Tensor], shared: SharedTargets) -> YOLOv8Targets:
        dtype = shared.points.dtype
        batch_size = preds[0].shape[0]
        reg_max = self.reg_max

        # Each level is split into its distribution and class channels (views)
        # and each part is concatenated over the levels once, point-major:
        # distributions [B, N, 4, R] (the softmax runs over the last
        # dimension) and class logits [B, N, C]. That one copy does the
        # transposition, and everything after runs on contiguous tensors
        # (element-wise ops mixing a transposed view with the assigner's
        # contiguous targets cost a transposing copy per op, forward and
        # backward). ``split`` (not slicing) makes the backward one
        # concatenation per level, straight into the head's layout, without
        # a zero-filled full-size gradient per slice.
        dist_parts, cls_parts = [], []
        for pred in preds:
            dist_part, cls_part = pred.flatten(2).split((4 * reg_max, self.num_classes), dim=1)
            dist_parts.append(dist_part.transpose(1, 2).to(dtype))
            cls_parts.append(cls_part.transpose(1, 2).to(dtype))
        dist_logits = torch.cat(dist_parts, dim=1)
        num_points = dist_logits.shape[1]
        dist_logits = dist_logits.reshape(batch_size, num_points, 4, reg_max)
        cls_logits = torch.cat(cls_parts, dim=1)

        points, point_strides = shared.points, shared.point_strides
        # All points are decoded for the assigner only (no gradient); the box
        # and distance losses decode the points they need again.
        with torch.no_grad():
            pred_boxes = distances_to_boxes(self.decode_distances(dist_logits), points)

        # The task-aligned assigner takes the logits and applies the sigmoid
        # to the [B, M, N] scores it reads (same numbers, not [B, N, C]).
        if isinstance(self.assigner, TaskAlignedAssigner):
            scores, score_kwargs = cls_logits.detach(), dict(score_logits=True)
        else:
            scores, score_kwargs = cls_logits.detach().sigmoid(), {}
        assignment = self.assigner(scores, pred_boxes * point_strides,
                                   points * point_strides, shared.labels, shared.gt_boxes,
                                   shared.gt_mask, **score_kwargs)
        return YOLOv8Targets(cls_logits, dist_logits, pred_boxes, points, point_strides,
                             shared.gt_boxes, shared.gt_mask, assignment, shared.img_size)

    def _positive_slots(self, fg_mask: Tensor, num_boxes: int) -> Optional[Tensor]:
        """``[K]`` indices into the ``B * N`` points of the batch that hold
        every positive point, or ``None`` when K would be all the points.

        The task-aligned assigner gives each box at most ``topk`` positives,
        so the batch has at most ``K = B * M * topk`` of them (M padded boxes
        per image): a bound known from shapes alone. The box and distribution
        losses then run over K slots instead of all ``B * N`` points, with a
        fixed shape and no host sync (``nonzero`` would size them by the
        data). The positives come first, in point order, so that a larger
        ``max_boxes`` (more padding) only appends background slots of weight
        0 and leaves the order of the summed terms alone.
        """
        batch_size, num_points = fg_mask.shape
        topk = getattr(self.assigner, 'topk', None)
        if not isinstance(self.assigner, TaskAlignedAssigner) or not isinstance(topk, int):
            return None
        total = batch_size * num_points
        num_slots = batch_size * num_boxes * min(topk, num_points)
        if num_slots >= total:
            return None
        # Positives rank above background, earlier points above later ones.
        rank = torch.arange(total - 1, -1, -1, device=fg_mask.device)
        rank += fg_mask.reshape(-1).long() * total
        return rank.topk(num_slots, sorted=True).indices

    def _losses(self, prepared: YOLOv8Targets) -> Dict[str, Tensor]:
        cls_logits, dist_logits, _, points, point_strides = prepared[:5]
        assignment = prepared.assignment
        batch_size, num_points = cls_logits.shape[:2]
        reg_max = self.reg_max
        target_scores = assignment.scores.to(cls_logits.dtype)
        score_sum = target_scores.sum().clamp(min=1)

        # Class weights multiply the BCE of every point and class; an
        # expanded (stride-0) view has the loss's shape, which every class
        # part accepts as an element-wise weight.
        class_weight = None
        if not self._class_weights_uniform:
            class_weight = self.class_weights.to(device=cls_logits.device,
                                                 dtype=cls_logits.dtype)
            class_weight = class_weight.expand_as(cls_logits)
        loss_cls = self.loss_cls(cls_logits, target_scores, weight=class_weight,
                                 avg_factor=score_sum)

        # The points the box and distance losses see, flattened over the
        # batch: the fixed-size slots holding every positive, else all.
        point_weight = target_scores.sum(-1).reshape(-1)               # [B*N]
        fg_mask = assignment.fg_mask.reshape(-1)
        assigned_boxes = assignment.boxes.to(dist_logits.dtype).reshape(-1, 4)
        dist_logits = dist_logits.reshape(-1, 4, reg_max)
        slots = self._positive_slots(assignment.fg_mask, prepared.gt_mask.shape[1])
        if slots is None:
            points = points.repeat(batch_size, 1)
            point_strides = point_strides.repeat(batch_size, 1)
        else:
            dist_logits = dist_logits[slots]
            assigned_boxes = assigned_boxes[slots]
            point_weight = point_weight[slots]
            fg_mask = fg_mask[slots]
            point_index = slots % num_points
            points, point_strides = points[point_index], point_strides[point_index]
        pred_distances = self.decode_distances(dist_logits)              # [K, 4]
        pred_boxes = distances_to_boxes(pred_distances, points)

        # Background points get a finite stand-in box (weight 0 there), so no
        # 0 * NaN can reach the gradient.
        placeholder = torch.cat((points - _PLACEHOLDER_HALF_SIDE,
                                 points + _PLACEHOLDER_HALF_SIDE), dim=-1)
        target_boxes = torch.where(fg_mask.unsqueeze(-1), assigned_boxes / point_strides,
                                   placeholder)
        loss_box = self.loss_bbox(pred_boxes.reshape(-1, 4), target_boxes.reshape(-1, 4),
                                  weight=point_weight.reshape(-1), avg_factor=score_sum)

        side_weight = point_weight.unsqueeze(-1).expand(-1, 4)
        if reg_max == 1:
            # ultralytics' BboxLoss for reg_max <= 1: distances in pixels
            # (times the stride), x sides over the input width and y sides
            # over its height; no clamp, negative target distances included.
            height, width = prepared.img_size
            size = torch.full((4,), float(width), dtype=pred_distances.dtype,
                              device=pred_distances.device)
            size[1::2] = float(height)
            target_distances = boxes_to_distances(points, target_boxes)
            loss_l1 = self.loss_l1(pred_distances * point_strides / size,
                                   target_distances * point_strides / size,
                                   weight=side_weight, avg_factor=4 * score_sum)
            return dict(loss_box=loss_box, loss_cls=loss_cls, loss_l1=loss_l1)

        target_distances = boxes_to_distances(points, target_boxes,
                                              reg_max - 1 - DFL_TARGET_MARGIN)
        loss_dfl = self.loss_dfl(dist_logits.reshape(-1, reg_max),
                                 target_distances.reshape(-1),
                                 weight=side_weight.reshape(-1), avg_factor=4 * score_sum)
        return dict(loss_box=loss_box, loss_cls=loss_cls, loss_dfl=loss_dfl)

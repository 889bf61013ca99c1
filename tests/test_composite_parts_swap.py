"""Swapping a part of a composite YOLO loss from the config alone.

Each case is built only from a config dict, run forward and backward, and
checked number by number in a tiny case whose assignment is known by hand
(one ground-truth box, one positive): the swapped component must equal the
swapped part's formula (written out here) applied to that positive, and the
default component the default formula, so the test also proves the two
differ. The registry parts applied by hand to the same tensors give the
same numbers (the part really is the one from the config).

- ``YOLOv5Loss`` with ``FocalLoss`` (class) and ``SIoULoss`` (box, and
  through its ``iou`` the objectness target);
- ``YOLOv8Loss`` with ``VarifocalLoss`` (class) and ``SIoULoss`` (box);
- ``YOLOv3Loss`` (keras) with ``FocalLoss`` (class);
- a loss registered in this file, used as ``YOLOv5Loss``'s class part.
"""
from __future__ import annotations

import math
from typing import List

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from yolo_losses import build_loss
from yolo_losses.losses.base import BaseLoss
from yolo_losses.losses.utils import weighted_loss
from yolo_losses.registry import MODELS

IMG = 64                        # grids 8, 4, 2 for strides 8, 16, 32
STRIDES = (8, 16, 32)
CIOU_EPS = 1e-7                 # yolov5 / ultralytics bbox_iou
RTOL = 2e-6


# ----------------------------------------------------------------------------
# Formulas, written out
# ----------------------------------------------------------------------------

def bce(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """BCE with logits: max(x, 0) - x t + log(1 + exp(-|x|))."""
    return x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))


def sigmoid_focal(x, t, gamma: float, alpha: float):
    """mmdet's sigmoid focal loss: alpha_t (1 - p_t)^gamma BCE."""
    p = torch.sigmoid(x)
    one_minus_pt = (1 - p) * t + p * (1 - t)
    alpha_t = alpha * t + (1 - alpha) * (1 - t)
    return alpha_t * one_minus_pt.pow(gamma) * bce(x, t)


def varifocal(x, t, alpha: float, gamma: float):
    """mmdet's varifocal loss (iou_weighted): t BCE on positives (t > 0),
    alpha p^gamma BCE on negatives."""
    p = torch.sigmoid(x)
    weight = torch.where(t > 0, t, alpha * (p - t).abs().pow(gamma))
    return weight * bce(x, t)


def ciou(b1, b2, eps: float = CIOU_EPS):
    """CIoU of xyxy boxes, yolov5 / ultralytics ``bbox_iou(CIoU=True)``."""
    w1, h1 = b1[..., 2] - b1[..., 0], b1[..., 3] - b1[..., 1] + eps
    w2, h2 = b2[..., 2] - b2[..., 0], b2[..., 3] - b2[..., 1] + eps
    inter = ((torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0]))
             .clamp(min=0)
             * (torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1]))
             .clamp(min=0))
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = torch.maximum(b1[..., 2], b2[..., 2]) - torch.minimum(b1[..., 0], b2[..., 0])
    ch = torch.maximum(b1[..., 3], b2[..., 3]) - torch.minimum(b1[..., 1], b2[..., 1])
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((b2[..., 0] + b2[..., 2] - b1[..., 0] - b1[..., 2]) ** 2
            + (b2[..., 1] + b2[..., 3] - b1[..., 1] - b1[..., 3]) ** 2) / 4
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def cxcywh_to_xyxy(box):
    return torch.cat((box[..., :2] - box[..., 2:] / 2, box[..., :2] + box[..., 2:] / 2), -1)


def leaf_preds(arrays: List[np.ndarray]) -> List[torch.Tensor]:
    return [torch.from_numpy(a.astype(np.float32)).requires_grad_() for a in arrays]


def backward_is_finite(losses, preds) -> None:
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    sum(losses.values()).backward()
    for level, pred in enumerate(preds):
        assert pred.grad is not None and torch.isfinite(pred.grad).all(), level


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL) -> None:
    torch.testing.assert_close(actual.detach().double(), expected.detach().double(),
                               rtol=rtol, atol=1e-9)


# ----------------------------------------------------------------------------
# YOLOv5: one anchor per level, one box matching one cell of level 1
# ----------------------------------------------------------------------------
#
# Anchors 8, 32, 128 px (1 per level). A 32 x 32 px box (w = h = 0.5) has side
# ratio exactly 4 to the level-0 and level-2 anchors (no match: yolov5 needs
# < 4) and 1 to level 1's. Its centre (24, 40) px is (1.5, 2.5) cells of
# level 1 (stride 16): fractional parts 0.5, so no neighbour cell is added.
# The only positive is image 0, anchor 0, cell (x=1, y=2) of level 1, with
# target (cx, cy, w, h) = (0.5, 0.5, 2, 2) grid units relative to the cell.

V5_CLASSES = 4
V5_ANCHORS = [[(8, 8)], [(32, 32)], [(128, 128)]]
V5_TARGETS = torch.tensor([[0.0, 2.0, 0.375, 0.625, 0.5, 0.5]])
V5_BALANCE = (4.0, 1.0, 0.4)
V5_TARGET_BOX = torch.tensor([0.5, 0.5, 2.0, 2.0], dtype=torch.float64)


def v5_preds() -> List[torch.Tensor]:
    rng = np.random.default_rng(5)
    channels = 5 + V5_CLASSES
    return leaf_preds([rng.normal(0.0, 0.8, (2, channels, IMG // s, IMG // s))
                       for s in STRIDES])


def v5_positive(preds):
    """Raw channels of the positive and its decoded box (grid units)."""
    raw = preds[1][0, :, 2, 1].detach().double()
    xy = 2 * torch.sigmoid(raw[0:2]) - 0.5
    wh = (2 * torch.sigmoid(raw[2:4])) ** 2 * 2.0      # anchor 32 px / stride 16
    return raw, torch.cat((xy, wh))


def v5_obj_loss(preds, positive_iou: torch.Tensor) -> torch.Tensor:
    """Level-balanced mean BCE of objectness, target iou at the positive."""
    total = torch.zeros((), dtype=torch.float64)
    for level, pred in enumerate(preds):
        logits = pred[:, 4].detach().double()
        target = torch.zeros_like(logits)
        if level == 1:
            target[0, 2, 1] = positive_iou.clamp(min=0)
        total = total + V5_BALANCE[level] * bce(logits, target).mean()
    return total


def build_v5(**parts):
    return build_loss(dict(type='YOLOv5Loss', num_classes=V5_CLASSES, anchors=V5_ANCHORS,
                           **parts))


def test_yolov5_default_parts_by_formula():
    """The hand assignment is right: defaults give yolov5's numbers."""
    preds = v5_preds()
    losses = build_v5()(preds, V5_TARGETS, max_boxes=1)
    raw, box = v5_positive(preds)
    pxyxy, txyxy = cxcywh_to_xyxy(box), cxcywh_to_xyxy(V5_TARGET_BOX)
    iou = ciou(pxyxy, txyxy)
    onehot = F.one_hot(torch.tensor(2), V5_CLASSES).double()
    close(losses['loss_box'], 0.05 * (1 - iou))
    close(losses['loss_cls'], 0.5 * bce(raw[5:], onehot).mean())
    close(losses['loss_obj'], v5_obj_loss(preds, iou))
    backward_is_finite(losses, preds)


def test_yolov5_focal_cls_and_siou_box_from_config():
    focal_cfg = dict(type='FocalLoss', use_sigmoid=True, gamma=1.5, alpha=0.25,
                     reduction='mean', loss_weight=0.5)
    siou_cfg = dict(type='SIoULoss', reduction='mean', loss_weight=0.05)
    preds = v5_preds()
    loss = build_v5(loss_cls=focal_cfg, loss_bbox=siou_cfg)
    assert type(loss.loss_cls).__name__ == 'FocalLoss'
    assert type(loss.loss_bbox).__name__ == 'SIoULoss'
    losses = loss(preds, V5_TARGETS, max_boxes=1)

    raw, box = v5_positive(preds)
    onehot = F.one_hot(torch.tensor(2), V5_CLASSES).double()
    expected_cls = 0.5 * sigmoid_focal(raw[5:], onehot, gamma=1.5, alpha=0.25).mean()
    close(losses['loss_cls'], expected_cls)
    # The BCE default would be far off: the swap is what was computed.
    assert abs(float(expected_cls) - float(0.5 * bce(raw[5:], onehot).mean())) > 1e-2

    # The SIoU part applied by hand to the positive's boxes.
    siou_part = build_loss(siou_cfg)
    pxyxy, txyxy = cxcywh_to_xyxy(box)[None], cxcywh_to_xyxy(V5_TARGET_BOX)[None]
    siou = siou_part.iou(pxyxy, txyxy)[0]
    close(losses['loss_box'], 0.05 * (1 - siou))
    close(losses['loss_box'], siou_part(pxyxy, txyxy))
    assert abs(float(siou) - float(ciou(pxyxy[0], txyxy[0]))) > 1e-3
    # The objectness target is the swapped part's IoU as well.
    close(losses['loss_obj'], v5_obj_loss(preds, siou))
    # The focal part applied by hand, as the loss calls it.
    focal_part = build_loss(focal_cfg)
    close(losses['loss_cls'], focal_part(raw[None, 5:].float(), onehot[None].float()))
    backward_is_finite(losses, preds)


# A loss a user registers in their own code, then names in a config.
@weighted_loss
def prob_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[..., C]`` logits and targets -> ``|sigmoid(pred) - target|``."""
    return (pred.sigmoid() - target).abs()


@MODELS.register_module(name='TestOnlyProbL1Loss', force=True)
class ProbL1Loss(BaseLoss):
    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        reduction = self.resolve_reduction(reduction_override)
        return self.loss_weight * prob_l1_loss(pred, target, weight,
                                               reduction=reduction, avg_factor=avg_factor)


def test_user_registered_part_from_config():
    preds = v5_preds()
    loss = build_v5(loss_cls=dict(type='TestOnlyProbL1Loss', loss_weight=0.5))
    assert isinstance(loss.loss_cls, ProbL1Loss)
    losses = loss(preds, V5_TARGETS, max_boxes=1)
    raw, _ = v5_positive(preds)
    onehot = F.one_hot(torch.tensor(2), V5_CLASSES).double()
    close(losses['loss_cls'], 0.5 * (torch.sigmoid(raw[5:]) - onehot).abs().mean())
    backward_is_finite(losses, preds)


# ----------------------------------------------------------------------------
# YOLOv8: one box, one point with a non-zero target score
# ----------------------------------------------------------------------------
#
# Ground truth (12, 12, 44, 44) px, class 1: centre (28, 28) is the point of
# level-0 cell (3, 3), whose side distributions are peaked (logit 25) at bins
# (2, 2, 3, 2): predicted box (12, 12, 52, 44) px. Every other point
# predicts (bins peaked at 0) a box of about zero size, whose CIoU with the
# ground truth is negative (its centre is not the box's), clamped to 0: its
# alignment metric is 0, so whether it is a top-k positive or not its
# target score is 0. The one non-zero class target, at our point, is
# t = metric / (metric + 1e-9) * CIoU(gt, pred), with metric = s^0.5 CIoU^6.
# The sum of target scores t < 1 is clamped to 1.

V8_CLASSES = 2
REG_MAX = 16
PEAK = 25.0
V8_TARGETS = torch.tensor([[0.0, 1.0, 28 / 64, 28 / 64, 0.5, 0.5]])
V8_GT = torch.tensor([12.0, 12.0, 44.0, 44.0], dtype=torch.float64)
V8_PRED = torch.tensor([12.0, 12.0, 52.0, 44.0], dtype=torch.float64)
OUR_SIDES = (2, 2, 3, 2)        # left, top, right, bottom bins, level-0 cells


def v8_preds() -> List[torch.Tensor]:
    rng = np.random.default_rng(8)
    arrays = []
    for stride in STRIDES:
        cells = IMG // stride
        pred = np.zeros((2, 4 * REG_MAX + V8_CLASSES, cells, cells))
        for side in range(4):
            pred[:, side * REG_MAX] = PEAK
        pred[:, 4 * REG_MAX:] = rng.normal(0.0, 1.0, (2, V8_CLASSES, cells, cells))
        arrays.append(pred)
    ours = arrays[0][0, :, 3, 3]
    ours[:4 * REG_MAX] = 0.0
    for side, peak_bin in enumerate(OUR_SIDES):
        ours[side * REG_MAX + peak_bin] = PEAK
    return leaf_preds(arrays)


def v8_target_scores(preds):
    """Class logits of all points and their soft targets, by hand."""
    logits = torch.cat([p[:, 4 * REG_MAX:].detach().double().flatten(2) for p in preds],
                       dim=2)                                           # [B, C, N]
    overlap = ciou(V8_GT, V8_PRED).clamp(min=0)
    score = torch.sigmoid(logits[0, 1, 3 * 8 + 3])
    metric = score.sqrt() * overlap ** 6
    t = metric / (metric + 1e-9) * overlap
    targets = torch.zeros_like(logits)
    targets[0, 1, 3 * 8 + 3] = t
    return logits, targets, t


def build_v8(**parts):
    return build_loss(dict(type='YOLOv8Loss', num_classes=V8_CLASSES, **parts))


def test_yolov8_default_parts_by_formula():
    preds = v8_preds()
    losses = build_v8()(preds, V8_TARGETS, max_boxes=1)
    logits, targets, t = v8_target_scores(preds)
    assert float(t) < 1.0                      # score sum clamped to 1
    close(losses['loss_cls'], 0.5 * bce(logits, targets).sum())
    # CIoU in grid units of level 0 (stride 8), weighted by t.
    close(losses['loss_box'], 7.5 * t * (1 - ciou(V8_PRED / 8, V8_GT / 8)))
    # DFL: every side's target distance is exactly 2 bins: CE at bin 2.
    ours = preds[0][0, :4 * REG_MAX, 3, 3].detach().double().view(4, REG_MAX)
    dfl = -F.log_softmax(ours, dim=-1)[:, 2]
    close(losses['loss_dfl'], 1.5 * t * dfl.mean(), rtol=1e-5)
    backward_is_finite(losses, preds)


def test_yolov8_varifocal_cls_and_siou_box_from_config():
    vfl_cfg = dict(type='VarifocalLoss', use_sigmoid=True, alpha=0.75, gamma=2.0,
                   iou_weighted=True, reduction='mean', loss_weight=0.5)
    siou_cfg = dict(type='SIoULoss', reduction='mean', loss_weight=7.5)
    preds = v8_preds()
    loss = build_v8(loss_cls=vfl_cfg, loss_bbox=siou_cfg)
    assert type(loss.loss_cls).__name__ == 'VarifocalLoss'
    assert type(loss.loss_bbox).__name__ == 'SIoULoss'
    losses = loss(preds, V8_TARGETS, max_boxes=1)
    logits, targets, t = v8_target_scores(preds)

    expected_cls = 0.5 * varifocal(logits, targets, alpha=0.75, gamma=2.0).sum()
    close(losses['loss_cls'], expected_cls)
    assert abs(float(expected_cls) - float(0.5 * bce(logits, targets).sum())) > 1e-2
    vfl_part = build_loss(vfl_cfg)
    by_hand = vfl_part(logits.transpose(1, 2).float(), targets.transpose(1, 2).float(),
                       avg_factor=1.0)
    close(losses['loss_cls'], by_hand)

    siou_part = build_loss(siou_cfg)
    pred_grid, gt_grid = (V8_PRED / 8)[None], (V8_GT / 8)[None]
    siou = siou_part.iou(pred_grid, gt_grid)[0]
    close(losses['loss_box'], 7.5 * t * (1 - siou))
    close(losses['loss_box'], siou_part(pred_grid, gt_grid, weight=t[None], avg_factor=1.0))
    assert abs(float(siou) - float(ciou(pred_grid[0], gt_grid[0]))) > 1e-3
    backward_is_finite(losses, preds)


# ----------------------------------------------------------------------------
# YOLOv3 (keras): one box equal to one of the nine anchors
# ----------------------------------------------------------------------------
#
# A 33 x 23 px box is anchor 2 of level 0 (IoU 1, every other anchor less).
# Centre (20, 28) px = (2.5, 3.5) cells of level 0: cell (x=2, y=3). Image 1
# has no box; keras divides the sums by the batch size 2.

V3_CLASSES = 3
V3_TARGETS = torch.tensor([[0.0, 1.0, 20 / 64, 28 / 64, 33 / 64, 23 / 64]])


def v3_preds() -> List[torch.Tensor]:
    rng = np.random.default_rng(3)
    channels = 3 * (5 + V3_CLASSES)
    return leaf_preds([rng.normal(0.0, 0.8, (2, channels, IMG // s, IMG // s))
                       for s in STRIDES])


def v3_class_logits(preds) -> torch.Tensor:
    anchor = 2
    start = anchor * (5 + V3_CLASSES) + 5
    return preds[0][0, start:start + V3_CLASSES, 3, 2].detach().double()


def test_yolov3_keras_default_cls_by_formula():
    preds = v3_preds()
    losses = build_loss(dict(type='YOLOv3Loss', num_classes=V3_CLASSES))(
        preds, V3_TARGETS, max_boxes=1)
    onehot = F.one_hot(torch.tensor(1), V3_CLASSES).double()
    close(losses['loss_cls'], bce(v3_class_logits(preds), onehot).sum() / 2)
    backward_is_finite(losses, preds)


@pytest.mark.parametrize('style_cfg', [dict(), dict(style='keras')])
def test_yolov3_focal_cls_from_config(style_cfg):
    focal_cfg = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                     reduction='mean', loss_weight=1.0)
    preds = v3_preds()
    loss = build_loss(dict(type='YOLOv3Loss', num_classes=V3_CLASSES, loss_cls=focal_cfg,
                           **style_cfg))
    assert type(loss.loss_cls).__name__ == 'FocalLoss'
    losses = loss(preds, V3_TARGETS, max_boxes=1)
    logits = v3_class_logits(preds)
    onehot = F.one_hot(torch.tensor(1), V3_CLASSES).double()
    expected = sigmoid_focal(logits, onehot, gamma=2.0, alpha=0.25).sum() / 2
    close(losses['loss_cls'], expected)
    assert abs(float(expected) - float(bce(logits, onehot).sum() / 2)) > 1e-2
    backward_is_finite(losses, preds)

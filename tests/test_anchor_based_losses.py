"""YOLOv3Loss and YOLOv5Loss: the shared anchor-based base, ``assign()`` and
per-class weights of the class term (ultralytics' ``model.class_weights``).

Expected class terms are the formula written out: per positive slot and
class entry, ``w_c * BCE(logit, target)``, normalised as each loss's class
term is (yolov5: per level over matches x C; keras: the batch size;
darknet: none; pytorch_yolov3: per level over positives x C), times the
part's ``loss_weight``. The positives and their logits come from
``assign()``, whose matching the reference tests of each loss pin down.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from yolo_losses import build_loss
from yolo_losses.losses.anchor_based import AnchorBasedLoss
from yolo_losses.losses.yolov3_loss import YOLOv3Targets
from yolo_losses.losses.yolov5_loss import YOLOv5Targets

from composite_cases import random_preds, random_targets

C = 3
IMG = 64
WEIGHTS = [0.5, 2.0, 0.0]


def inputs(loss_type: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    preds = random_preds(loss_type, rng, 2, IMG, C)
    preds = [p.detach().double() for p in preds]
    targets = random_targets(rng, (3, 4), C, (0.1, 0.6)).double()
    return preds, targets


def bce(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets, reduction='none')


# --- the base ---------------------------------------------------------------------

@pytest.mark.parametrize('loss_type', ['YOLOv3Loss', 'YOLOv5Loss'])
def test_one_anchor_based_base(loss_type):
    loss = build_loss(dict(type=loss_type, num_classes=C))
    assert isinstance(loss, AnchorBasedLoss)
    assert type(loss).forward is AnchorBasedLoss.forward
    assert type(loss).check_level is AnchorBasedLoss.check_level
    with pytest.raises(ValueError, match='num_classes'):
        build_loss(dict(type=loss_type, num_classes=0))


def test_yolov5_assign_gives_the_typed_bundle():
    loss = build_loss(dict(type='YOLOv5Loss', num_classes=C))
    preds, targets = inputs('YOLOv5Loss')
    got = loss.assign(preds, targets)
    assert isinstance(got, YOLOv5Targets)
    num_slots = sum(v.numel() for v in got.valid)
    assert got.pred_boxes.shape == got.target_boxes.shape == (num_slots, 4)
    assert got.cls_logits.shape == got.cls_targets.shape == (num_slots, C)
    for level, pred in enumerate(preds):
        assert got.obj_logits[level].shape == (2, 3, pred.shape[-2] * pred.shape[-1])
    # every target (7 boxes, w, h below 4 anchors) matches somewhere
    assert sum(int(v.sum()) for v in got.valid) >= targets.shape[0]
    # the one-hot class targets of valid slots name the boxes' classes
    valid = torch.cat([v.reshape(-1) for v in got.valid])
    assert torch.equal(got.cls_targets[valid].sum(-1), torch.ones(int(valid.sum()),
                                                                   dtype=torch.float64))
    with pytest.raises(ValueError, match='targets'):
        bad = targets.clone()
        bad[0, 2] = 1.7
        loss.assign(preds, bad)


@pytest.mark.parametrize('style', ['keras', 'darknet', 'pytorch_yolov3'])
def test_yolov3_assign_gives_the_typed_bundle(style):
    loss = build_loss(dict(type='YOLOv3Loss', num_classes=C, style=style))
    preds, targets = inputs('YOLOv3Loss')
    got = loss.assign(preds, targets, max_boxes=4)
    assert isinstance(got, YOLOv3Targets)
    assert got.boxes.shape == (2, 4, 4) and got.box_mask.shape == (2, 4)
    assert len(got.levels) == 3
    held = sum(int(level.assigned.box_held.sum()) for level in got.levels)
    if style == 'pytorch_yolov3':   # each box positive on every level
        assert held <= 3 * targets.shape[0] and held > targets.shape[0]
    else:                           # each box at its one best anchor (or lost a collision)
        assert 0 < held <= targets.shape[0]
    for level, pred in zip(got.levels, preds):
        cells = pred.shape[-2] * pred.shape[-1]
        assert level.obj_logits.shape == (2, 3, cells, 1)
        assert level.box_logits.shape == (2, 4, 5 + C)
        assert level.ignored.shape == (2, 3, cells) and level.ignored.dtype == torch.bool
        assert not bool(level.wh_target[~level.assigned.box_held].any())


# --- class weights ------------------------------------------------------------------

def yolov5_expected_cls(loss, preds, targets, weights):
    """yolov5's class term with per-class weights, written out."""
    got = loss.assign(preds, targets)
    total = 0.0
    start = 0
    for valid in got.valid:
        rows = slice(start, start + valid.numel())
        start += valid.numel()
        keep = valid.reshape(-1)
        logits, target = got.cls_logits[rows][keep], got.cls_targets[rows][keep]
        per_entry = bce(logits, target) * torch.tensor(weights, dtype=torch.float64)
        total = total + per_entry.sum() / (keep.sum() * C)
    return 0.5 * total    # loss_weight of the default loss_cls


def test_yolov5_class_weights_multiply_each_class_bce():
    preds, targets = inputs('YOLOv5Loss')
    weighted = build_loss(dict(type='YOLOv5Loss', num_classes=C, class_weights=WEIGHTS))
    plain = build_loss(dict(type='YOLOv5Loss', num_classes=C))
    out, ref = weighted(preds, targets), plain(preds, targets)
    expected = yolov5_expected_cls(weighted, preds, targets, WEIGHTS)
    torch.testing.assert_close(out['loss_cls'], expected, rtol=1e-6, atol=1e-12)
    assert not torch.isclose(out['loss_cls'], ref['loss_cls'])
    # the other terms do not see the class weights
    for key in ('loss_box', 'loss_obj'):
        assert torch.equal(out[key], ref[key])
    # ones = no weights, exactly
    ones = build_loss(dict(type='YOLOv5Loss', num_classes=C, class_weights=[1.0] * C))
    assert torch.equal(ones(preds, targets)['loss_cls'], ref['loss_cls'])
    torch.testing.assert_close(ref['loss_cls'],
                               yolov5_expected_cls(plain, preds, targets, [1.0] * C),
                               rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize('style', ['keras', 'darknet', 'pytorch_yolov3'])
def test_yolov3_class_weights_multiply_each_class_bce(style):
    preds, targets = inputs('YOLOv3Loss', seed=2)
    weighted = build_loss(dict(type='YOLOv3Loss', num_classes=C, style=style,
                               class_weights=WEIGHTS))
    plain = build_loss(dict(type='YOLOv3Loss', num_classes=C, style=style))
    out, ref = weighted(preds, targets), plain(preds, targets)
    got = weighted.assign(preds, targets)
    w = torch.tensor(WEIGHTS, dtype=torch.float64)
    expected = 0.0
    for level in got.levels:
        held = level.assigned.box_held
        per_entry = bce(level.box_logits[..., 5:], level.assigned.box_classes) * w
        term = (per_entry * held[..., None]).sum()
        if style == 'keras':
            term = term / 2                            # batch size
        elif style == 'pytorch_yolov3':
            term = term / (held.sum() * C) if held.any() else term * 0
        expected = expected + term
    torch.testing.assert_close(out['loss_cls'], expected, rtol=1e-6, atol=1e-12)
    assert not torch.isclose(out['loss_cls'], ref['loss_cls'])
    for key in ('loss_xy', 'loss_wh', 'loss_obj'):
        assert torch.equal(out[key], ref[key])


@pytest.mark.parametrize('loss_type', ['YOLOv3Loss', 'YOLOv5Loss'])
def test_class_weights_buffer_setter_and_checkpoints(loss_type):
    preds, targets = inputs(loss_type, seed=4)
    loss = build_loss(dict(type=loss_type, num_classes=C))
    assert torch.equal(loss.class_weights, torch.ones(C))
    assert 'class_weights' in loss.state_dict()
    plain = loss(preds, targets)['loss_cls']

    # bad weights: a clear error naming the argument, nothing changed
    for bad, error in (([1.0, 2.0], ValueError), ([1.0, -1.0, 1.0], ValueError),
                       ([1.0, float('nan'), 1.0], ValueError),
                       ([1.0, float('inf'), 1.0], ValueError),
                       ('abc', TypeError), (3.0, TypeError)):
        with pytest.raises(error, match='class_weights'):
            loss.set_class_weights(bad)
        with pytest.raises(error, match='class_weights'):
            build_loss(dict(type=loss_type, num_classes=C, class_weights=bad))
        assert torch.equal(loss.class_weights, torch.ones(C))

    loss.set_class_weights(WEIGHTS)
    assert torch.equal(loss.class_weights, torch.tensor(WEIGHTS))
    weighted = loss(preds, targets)['loss_cls']
    built = build_loss(dict(type=loss_type, num_classes=C, class_weights=WEIGHTS))
    assert torch.equal(built(preds, targets)['loss_cls'], weighted)

    # resume: the weights travel in state_dict
    fresh = build_loss(dict(type=loss_type, num_classes=C))
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh(preds, targets)['loss_cls'], weighted)
    # and inside a parent module too
    parent, other = torch.nn.ModuleDict(dict(loss=loss)), torch.nn.ModuleDict(
        dict(loss=build_loss(dict(type=loss_type, num_classes=C))))
    other.load_state_dict(parent.state_dict())
    assert torch.equal(other['loss'](preds, targets)['loss_cls'], weighted)

    # a checkpoint from before the buffer existed loads as unweighted
    old = {k: v for k, v in built.state_dict().items() if k != 'class_weights'}
    built.load_state_dict(old)
    assert torch.equal(built.class_weights, torch.ones(C))
    assert torch.equal(built(preds, targets)['loss_cls'], plain)

    loss.set_class_weights(None)
    assert torch.equal(loss.class_weights, torch.ones(C))
    assert torch.equal(loss(preds, targets)['loss_cls'], plain)

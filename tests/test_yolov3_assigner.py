"""Tests of YOLOv3Assigner: best-anchor matching, collisions, ignore masks."""
import math

import pytest
import torch

from yolo_losses.ops.anchors import DEFAULT_ANCHORS, anchors_to_tensor
from yolo_losses.ops.targets import pad_targets
from yolo_losses.registry import TASK_UTILS

ANCHORS = anchors_to_tensor(DEFAULT_ANCHORS)           # [3, 3, 2] pixels
STRIDES = (8.0, 16.0, 32.0)


def build(**kwargs):
    return TASK_UTILS.build(dict(type='YOLOv3Assigner', **kwargs))


def assign(assigner, targets, batch=1, img=(64, 64), num_classes=2, max_boxes=None):
    max_boxes = max_boxes or max(1, targets.shape[0])
    padded = pad_targets(targets, batch, max_boxes)
    grids = [(img[0] // int(s), img[1] // int(s)) for s in STRIDES]
    return padded, assigner.assign(padded.boxes, padded.labels, padded.mask, ANCHORS,
                                   STRIDES, grids, img, num_classes)


def positives(result):
    """Set of (level, image, anchor, y, x) positive slots."""
    found = set()
    for level, assigned in enumerate(result):
        for b, a, y, x in torch.nonzero(assigned.pos_mask).tolist():
            found.add((level, b, a, y, x))
    return found


def plain_wh_iou(w1, h1, w2, h2):
    inter = min(w1, w2) * min(h1, h2)
    return inter / (w1 * h1 + w2 * h2 - inter)


def test_style_defaults_and_overrides():
    keras, darknet, torch_style = build(), build(style='darknet'), build(style='pytorch_yolov3')
    assert (keras.match, keras.ignore, keras.ignore_thresh) == ('all_levels', 'level_boxes', 0.5)
    assert (darknet.match, darknet.ignore, darknet.ignore_thresh) == (
        'all_levels', 'image_boxes', 0.7)
    assert (torch_style.match, torch_style.ignore, torch_style.ignore_thresh) == (
        'per_level', 'anchor_shape', 0.5)
    mixed = build(style='keras', match='per_level', ignore='image_boxes', ignore_thresh=0.6)
    assert (mixed.match, mixed.ignore, mixed.ignore_thresh) == ('per_level', 'image_boxes', 0.6)


@pytest.mark.parametrize('kwargs,name', [(dict(style='v3'), 'style'),
                                         (dict(match='best'), 'match'),
                                         (dict(ignore='all'), 'ignore'),
                                         (dict(ignore_thresh=1.5), 'ignore_thresh'),
                                         (dict(ignore_thresh='0.5'), 'ignore_thresh')])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        build(**kwargs)


def test_best_of_all_anchors_one_level():
    # 16 x 19.2 px -> (16, 30) on level 0; 51.2 x 44.8 px -> (62, 45) on level 1;
    # 40 x 56 px in a 64x64 input -> IoU with each of the nine:
    box_sizes = [(16, 19.2), (51.2, 44.8), (40, 56)]
    flat_anchors = [tuple(a) for level in DEFAULT_ANCHORS for a in level]
    best = [max(range(9), key=lambda n: plain_wh_iou(w, h, *flat_anchors[n]))
            for w, h in box_sizes]
    assert best == [1, 4, 3]
    targets = torch.tensor([[0, 1, 0.3, 0.45, 16 / 64, 19.2 / 64],
                            [0, 0, 0.7, 0.6, 51.2 / 64, 44.8 / 64],
                            [0, 1, 0.1, 0.9, 40 / 64, 56 / 64]])
    padded, result = assign(build(), targets)
    # cells: floor(cx * W), floor(cy * H)
    assert positives(result) == {(0, 0, 1, 3, 2), (1, 0, 1, 2, 2), (1, 0, 0, 3, 0)}
    level0 = result[0]
    torch.testing.assert_close(level0.target_offsets[0, 1, 3, 2],
                               torch.tensor([0.3 * 8 - 2, 0.45 * 8 - 3]))
    torch.testing.assert_close(level0.target_boxes[0, 1, 3, 2],
                               torch.tensor([0.3, 0.45, 16 / 64, 19.2 / 64]))
    assert level0.target_classes[0, 1, 3, 2].tolist() == [0.0, 1.0]
    assert level0.box_assigned.sum() == 1 and result[1].box_assigned.sum() == 2
    assert result[2].box_assigned.sum() == 0
    assert not result[2].pos_mask.any()


def test_best_per_level_positive_on_every_level():
    w, h = 16 / 64, 19.2 / 64
    targets = torch.tensor([[0, 0, 0.3, 0.45, w, h]])
    _, result = assign(build(style='pytorch_yolov3'), targets)
    expected = set()
    for level, stride in enumerate(STRIDES):
        grid = int(64 // stride)
        ious = [plain_wh_iou(w * grid, h * grid, aw / stride, ah / stride)
                for aw, ah in DEFAULT_ANCHORS[level]]
        expected.add((level, 0, ious.index(max(ious)), int(0.45 * grid), int(0.3 * grid)))
    assert positives(result) == expected


# Two boxes in one slot (level 0, anchor (16, 30), cell (2, 3)) with little
# overlap: A 16 x 19.2 px at (19.2, 28.8) px, C 12 x 30 px at (23, 25) px;
# IoU(A, C) = 195.84 / 471.36 = 0.415. C has class 0 and A class 1, so the
# canonical order is C, A and A (the last) owns the slot.
BOX_A = [0.3, 0.45, 16 / 64, 19.2 / 64]
BOX_C = [23 / 64, 25 / 64, 12 / 64, 30 / 64]


@pytest.mark.parametrize('rows', [[0, 1], [1, 0]])
def test_collision_last_in_canonical_order_owns_and_classes_add(rows):
    table = torch.tensor([[0, 1, *BOX_A], [0, 0, *BOX_C]])[rows]
    padded, result = assign(build(), table)
    assert positives(result) == {(0, 0, 1, 3, 2)}
    level0 = result[0]
    torch.testing.assert_close(level0.target_boxes[0, 1, 3, 2], torch.tensor(BOX_A))
    assert level0.target_classes[0, 1, 3, 2].tolist() == [1.0, 1.0]
    held = {tuple(padded.boxes[0, m].tolist()): bool(level0.box_held[0, m]) for m in range(2)}
    assert held == {tuple(torch.tensor(BOX_A).tolist()): True,
                    tuple(torch.tensor(BOX_C).tolist()): False}


def _pred_grid(result, level, boxes_at):
    """Decoded predictions: tiny boxes far away, except ``boxes_at``
    {(anchor, y, x): (cx, cy, w, h)}."""
    shape = result[level].pos_mask.shape
    pred = torch.tensor([0.0, 0.0, 1e-3, 1e-3]).repeat(*shape, 1)
    for (a, y, x), box in boxes_at.items():
        pred[0, a, y, x] = torch.tensor(box)
    return pred


def test_ignore_level_boxes_uses_held_boxes_only():
    table = torch.tensor([[0, 1, *BOX_A], [0, 0, *BOX_C], [0, 0, 0.7, 0.6, 0.8, 0.7]])
    for style, expected in (('keras', {(0, 3, 2)}),
                            ('darknet', {(0, 3, 2), (2, 4, 5), (1, 5, 5)})):
        assigner = build(style=style)
        padded, result = assign(assigner, table)
        pred = _pred_grid(result, 0, {(0, 3, 2): BOX_A,      # equals the held box A
                                      (2, 4, 5): BOX_C,      # equals C, which lost its slot
                                      (1, 5, 5): (0.7, 0.6, 0.8, 0.7)})  # box of level 1
        mask = assigner.ignore_mask(pred, padded.boxes, padded.mask, result[0])
        assert {tuple(i) for i in torch.nonzero(mask[0]).tolist()} == expected, style


def test_ignore_threshold_comparisons():
    """keras keeps a negative when best IoU < thresh (so IoU == thresh is
    ignored); darknet ignores when best IoU > thresh."""
    box = [0.5, 0.5, 0.5, 0.5]
    half = (0.5, 0.5, 0.25, 0.5)                              # IoU exactly 0.5
    table = torch.tensor([[0, 0, *box]])
    for style, ignored in (('keras', True), ('darknet', False)):
        assigner = build(style=style, ignore_thresh=0.5)
        padded, result = assign(assigner, table)
        level = max(range(3), key=lambda lv: int(result[lv].box_assigned.sum()))
        pred = _pred_grid(result, level, {(0, 0, 0): half})
        mask = assigner.ignore_mask(pred, padded.boxes, padded.mask, result[level])
        assert bool(mask[0, 0, 0, 0]) is ignored, style


def test_ignore_anchor_shape_at_box_cell():
    # 50 x 70 px in 128 x 128: level 1 anchors (30, 61) IoU 0.523 and (62, 45)
    # IoU 0.557 (the best) exceed 0.5; (59, 119) does not.
    ious = [plain_wh_iou(50 / 16, 70 / 16, aw / 16, ah / 16) for aw, ah in DEFAULT_ANCHORS[1]]
    assert [iou > 0.5 for iou in ious] == [True, True, False]
    assigner = build(style='pytorch_yolov3')
    table = torch.tensor([[0, 0, 0.6, 0.3, 50 / 128, 70 / 128]])
    padded, result = assign(assigner, table, img=(128, 128))
    cell = (int(0.3 * 8), int(0.6 * 8))
    mask = assigner.ignore_mask(None, padded.boxes, padded.mask, result[1])
    assert {tuple(i) for i in torch.nonzero(mask[0]).tolist()} == {(0, *cell), (1, *cell)}
    assert bool(result[1].pos_mask[0, 1, cell[0], cell[1]])


def test_cell_border_and_image_border():
    w, h = 16 / 64, 19.2 / 64
    table = torch.tensor([[0, 0, 0.5, 0.25, w, h], [0, 1, 1.0, 1.0, w, h]])
    padded, result = assign(build(), table)
    assert positives(result) == {(0, 0, 1, 2, 4), (0, 0, 1, 7, 7)}
    assert result[0].target_offsets[0, 1, 2, 4].tolist() == [0.0, 0.0]
    assert result[0].target_offsets[0, 1, 7, 7].tolist() == [1.0, 1.0]


def test_padding_and_zero_size_boxes_match_nothing():
    table = torch.tensor([[1, 0, 0.5, 0.5, 0.2, 0.2]])
    padded = pad_targets(table, 2, 3)
    mask = padded.mask & (padded.boxes[..., 2] > 0)
    result = build().assign(padded.boxes, padded.labels, mask, ANCHORS, STRIDES,
                            [(8, 8), (4, 4), (2, 2)], (64, 64), 2)
    assert sum(int(r.pos_mask.sum()) for r in result) == 1
    assert all(not r.pos_mask[0].any() for r in result)


def _raise(*args, **kwargs):
    raise AssertionError('host-device synchronisation')


@pytest.mark.parametrize('style', ['keras', 'darknet', 'pytorch_yolov3'])
def test_no_host_sync(style, monkeypatch):
    assigner = build(style=style)
    table = torch.tensor([[0, 1, *BOX_A], [0, 0, *BOX_C], [1, 0, 0.7, 0.6, 0.8, 0.7]])
    padded = pad_targets(table, 2, 4)
    pred = torch.rand(2, 3, 8, 8, 4)
    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, _raise)
    monkeypatch.setattr(torch, 'nonzero', _raise)
    result = assigner.assign(padded.boxes, padded.labels, padded.mask, ANCHORS, STRIDES,
                             [(8, 8), (4, 4), (2, 2)], (64, 64), 2)
    mask = assigner.ignore_mask(pred, padded.boxes, padded.mask, result[0])
    monkeypatch.undo()
    assert mask.shape == (2, 3, 8, 8)
    assert int(result[0].pos_mask.sum()) >= 1


def test_bad_shapes():
    assigner = build()
    padded = pad_targets(torch.tensor([[0, 0, 0.5, 0.5, 0.2, 0.2]]), 1, 1)
    grids = [(8, 8), (4, 4), (2, 2)]
    with pytest.raises(ValueError, match='boxes'):
        assigner.assign(padded.boxes[0], padded.labels, padded.mask, ANCHORS, STRIDES,
                        grids, (64, 64), 2)
    with pytest.raises(ValueError, match='anchors'):
        assigner.assign(padded.boxes, padded.labels, padded.mask, ANCHORS[0], STRIDES,
                        grids, (64, 64), 2)
    with pytest.raises(ValueError, match='strides and grid_sizes'):
        assigner.assign(padded.boxes, padded.labels, padded.mask, ANCHORS, STRIDES[:2],
                        grids, (64, 64), 2)

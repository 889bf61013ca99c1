"""TaskAlignedAssigner: hand-computed cases, ultralytics 8.4.190 numbers,
the classic rule, vectorisation, memory shape and no host sync."""
import math

import numpy as np
import pytest
import torch

from yolo_losses.assigners.task_aligned_assigner import (
    TaskAlignedAssigner, enlarge_small_sides, pairwise_ciou)
from yolo_losses.registry import TASK_UTILS


def plain_ciou(gt, pred, eps=1e-7):
    """CIoU of two xyxy boxes, ultralytics bbox_iou's formula written out."""
    gw, gh = gt[2] - gt[0], gt[3] - gt[1] + eps
    pw, ph = pred[2] - pred[0], pred[3] - pred[1] + eps
    inter = max(min(gt[2], pred[2]) - max(gt[0], pred[0]), 0) * \
        max(min(gt[3], pred[3]) - max(gt[1], pred[1]), 0)
    union = gw * gh + pw * ph - inter + eps
    iou = inter / union
    cw = max(gt[2], pred[2]) - min(gt[0], pred[0])
    ch = max(gt[3], pred[3]) - min(gt[1], pred[1])
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((pred[0] + pred[2] - gt[0] - gt[2]) ** 2
            + (pred[1] + pred[3] - gt[1] - gt[3]) ** 2) / 4
    v = 4 / math.pi ** 2 * (math.atan(pw / ph) - math.atan(gw / gh)) ** 2
    alpha = v / (1 - iou + v + eps)
    return iou - (rho2 / c2 + v * alpha)


def grid_points(height, width, stride):
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5,
                            indexing='ij')
    return torch.stack((xs.flatten(), ys.flatten()), -1).float() * stride


def run(assigner, scores, pred, points, labels, gt, mask=None):
    if mask is None:
        mask = torch.ones(labels.shape, dtype=torch.bool)
    return assigner(scores, pred, points, labels, gt, mask)


# --------------------------------------------------------------- hand cases
def test_one_box_by_the_formula():
    # 4x4 grid, stride 8: points at 4, 12, 20, 28 px. The box (0, 0, 17, 17)
    # holds the four points (4|12, 4|12); topk=2 keeps the best two metrics.
    points = grid_points(4, 4, 8)
    num_points = points.shape[0]
    gt = [0.0, 0.0, 17.0, 17.0]
    pred = torch.tensor([[p[0] - 6, p[1] - 5, p[0] + 7, p[1] + 9] for p in points.tolist()])
    scores = torch.full((1, num_points, 2), 0.1)
    class1 = torch.linspace(0.2, 0.95, num_points)
    scores[0, :, 1] = class1
    assigner = TaskAlignedAssigner(topk=2, strides=(8,))
    out = run(assigner, scores, pred[None], points, torch.tensor([[1]]),
              torch.tensor([[gt]]))

    inside = [i for i, (x, y) in enumerate(points.tolist())
              if x > 0 and y > 0 and x < 17 and y < 17]
    assert inside == [0, 1, 4, 5]
    u = {i: max(plain_ciou(gt, pred[i].tolist()), 0.0) for i in inside}
    t = {i: class1[i].item() ** 0.5 * u[i] ** 6 for i in inside}
    chosen = sorted(inside, key=lambda i: -t[i])[:2]
    expected_fg = torch.zeros(num_points, dtype=torch.bool)
    expected_fg[chosen] = True
    assert torch.equal(out.fg_mask[0], expected_fg)
    best_u = max(u[i] for i in chosen)
    best_t = max(t[i] for i in chosen)
    expected_scores = torch.zeros(num_points, 2)
    for i in chosen:
        expected_scores[i, 1] = t[i] * best_u / (best_t + 1e-9)
    torch.testing.assert_close(out.scores[0], expected_scores, rtol=1e-5, atol=1e-7)
    assert out.labels[0].tolist() == [1 if i in chosen else 2 for i in range(num_points)]
    assert torch.equal(out.boxes[0][expected_fg], torch.tensor([gt, gt]))
    assert torch.equal(out.boxes[0][~expected_fg], torch.zeros(num_points - 2, 4))
    assert out.gt_index.eq(0).all()


def test_point_claimed_by_two_boxes_goes_to_the_higher_ciou():
    # One point (4, 4) inside two boxes; both keep it in their top-1; the
    # box it overlaps best (CIoU of the prediction) wins.
    points = torch.tensor([[4.0, 4.0], [40.0, 40.0]])
    pred = torch.tensor([[[0.0, 0.0, 9.0, 9.0], [36.0, 36.0, 44.0, 44.0]]])
    gt = torch.tensor([[[0.0, 0.0, 12.0, 12.0], [1.0, 1.0, 9.0, 8.0]]])
    scores = torch.tensor([[[0.9, 0.1], [0.5, 0.5]]])
    out = run(TaskAlignedAssigner(topk=1, strides=(8,)), scores, pred, points,
              torch.tensor([[0, 1]]), gt)
    u0 = plain_ciou(gt[0, 0].tolist(), pred[0, 0].tolist())
    u1 = plain_ciou(gt[0, 1].tolist(), pred[0, 0].tolist())
    assert u1 > u0 > 0
    assert out.fg_mask[0].tolist() == [True, False]
    assert out.gt_index[0, 0] == 1 and out.labels[0, 0] == 1
    # box 1's only positive is its best: the target is its CIoU
    t1 = 0.1 ** 0.5 * u1 ** 6
    torch.testing.assert_close(out.scores[0, 0], torch.tensor([0.0, t1 * u1 / (t1 + 1e-9)]))


def test_small_box_is_widened_to_the_second_stride():
    # Two levels (8, 16). The 4x4 box (12, 12, 16, 16) has the point (12, 12)
    # on its border: no candidate under the classic strict rule. Widened to
    # 16x16 about its centre, (6, 6, 22, 22) holds (12|20, 12|20) of level 0
    # and (8, 8) of level 1.
    points = torch.cat((grid_points(4, 4, 8), grid_points(2, 2, 16)))
    num_points = points.shape[0]
    # every point predicts the same box, which overlaps the real one
    pred = torch.tensor([11.0, 10.0, 18.0, 17.0]).expand(1, num_points, 4)
    scores = torch.full((1, num_points, 1), 0.5)
    gt = torch.tensor([[[12.0, 12.0, 16.0, 16.0]]])
    labels = torch.tensor([[0]])
    classic = run(TaskAlignedAssigner(topk=10, strides=(8, 16), enlarge_small_gt=False),
                  scores, pred, points, labels, gt)
    assert not classic.fg_mask.any()
    assert classic.scores.eq(0).all()
    widened = run(TaskAlignedAssigner(topk=10, strides=(8, 16)), scores, pred, points,
                  labels, gt)
    level0 = [5, 6, 9, 10]           # (12, 12), (20, 12), (12, 20), (20, 20)
    level1 = [16]                    # (8, 8)
    assert widened.fg_mask[0].nonzero().flatten().tolist() == level0 + level1
    # the metric still uses the real box: CIoU of the 4x4 box, not the widened one
    u = [max(plain_ciou([12, 12, 16, 16], pred[0, i].tolist()), 0.0) for i in level0 + level1]
    t = [0.5 ** 0.5 * v ** 6 for v in u]
    expected = [ti * max(u) / (max(t) + 1e-9) for ti in t]
    torch.testing.assert_close(widened.scores[0, level0 + level1, 0],
                               torch.tensor(expected), rtol=1e-5, atol=1e-9)
    # min_side overrides the second stride
    wider = run(TaskAlignedAssigner(topk=10, strides=(8, 16), min_side=4.5), scores, pred,
                points, labels, gt)
    assert wider.fg_mask[0].nonzero().flatten().tolist() == [5]


def test_enlarge_small_sides_by_hand():
    boxes = torch.tensor([[[10.0, 10.0, 14.0, 50.0], [0.0, 0.0, 30.0, 2.0],
                           [1.0, 1.0, 2.0, 2.0]]])
    mask = torch.tensor([[True, True, False]])
    out = enlarge_small_sides(boxes, mask, 16.0)
    expected = torch.tensor([[[4.0, 10.0, 20.0, 50.0], [0.0, -7.0, 30.0, 9.0],
                              [1.0, 1.0, 2.0, 2.0]]])
    assert torch.equal(out, expected)


def test_pairwise_ciou_matches_the_formula():
    rng = np.random.default_rng(5)
    corners = rng.uniform(0, 50, size=(2, 3, 2))
    gt = np.concatenate([corners, corners + rng.uniform(1, 30, size=(2, 3, 2))], -1)
    corners = rng.uniform(0, 50, size=(2, 4, 2))
    pred = np.concatenate([corners, corners + rng.uniform(0.5, 30, size=(2, 4, 2))], -1)
    got = pairwise_ciou(torch.tensor(gt), torch.tensor(pred))
    expected = torch.tensor([[[plain_ciou(gt[b, m], pred[b, n]) for n in range(4)]
                              for m in range(3)] for b in range(2)], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_pairwise_ciou_agrees_with_the_aligned_op():
    from yolo_losses.ops.iou import aligned_iou
    _, pred, _, _, gt, _ = make_case(2, 3, 4, (96, 64), 40)
    expected = aligned_iou(pred[:, None], gt[:, :, None], mode='ciou', style='yolo')
    torch.testing.assert_close(pairwise_ciou(gt, pred), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------- ultralytics 8.4.190
def make_case(seed, batch, num_classes, img_hw, num_boxes, small=False, strides=(8, 16, 32)):
    """Random scores, predicted boxes (pixels) and padded ground truth."""
    rng = np.random.default_rng(seed)
    points, point_strides = [], []
    for s in strides:
        h, w = -(-img_hw[0] // s), -(-img_hw[1] // s)
        ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing='ij')
        points.append(np.stack([xs.ravel(), ys.ravel()], -1) * s)
        point_strides.append(np.full((h * w, 1), s))
    points = np.concatenate(points).astype(np.float32)
    point_strides = np.concatenate(point_strides).astype(np.float32)
    n = len(points)
    scores = rng.uniform(0, 1, size=(batch, n, num_classes)).astype(np.float32)
    ltrb = (rng.uniform(0.2, 4.0, size=(batch, n, 4)) * point_strides).astype(np.float32)
    pred = np.concatenate([points - ltrb[..., :2], points + ltrb[..., 2:]], -1).astype(np.float32)
    labels = rng.integers(0, num_classes, size=(batch, num_boxes))
    centre = rng.uniform(0.1, 0.9, size=(batch, num_boxes, 2)) * np.array([img_hw[1], img_hw[0]])
    size = rng.uniform(2, 20, size=(batch, num_boxes, 2)) if small else \
        rng.uniform(5, 60, size=(batch, num_boxes, 2))
    gt = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    mask = np.ones((batch, num_boxes), bool)
    mask[0, num_boxes - 2:] = False
    gt[~mask] = 0
    labels[~mask] = 0
    return (torch.tensor(scores), torch.tensor(pred), torch.tensor(points),
            torch.tensor(labels), torch.tensor(gt), torch.tensor(mask))


def summary(out):
    fg = out.fg_mask.double()
    index = torch.arange(fg.shape[1], dtype=torch.float64)
    top = out.scores.flatten().topk(3)
    return dict(fg=int(fg.sum()),
                checksum=float((fg * index * (out.gt_index.double() + 1)).sum()),
                label_sum=int((out.labels * out.fg_mask).sum()),
                box_sum=float(out.boxes.double().sum()),
                score_sum=float(out.scores.double().sum()),
                score_sq=float((out.scores.double() ** 2).sum()),
                top=[(int(i), float(v)) for v, i in zip(top.values, top.indices)])


# expected: ultralytics 8.4.190 TaskAlignedAssigner(topk=10, alpha=0.5, beta=6.0,
# stride=[8, 16, 32]) on the same inputs, computed in a scratch venv; "classic"
# with its select_candidates_in_gts replaced by the pre-8.4 rule (no widening).
REFERENCE = {
    ((0, 2, 3, (64, 96), 6, False), False): dict(
        fg=61, checksum=14389.0, label_sum=99, box_sum=8054.746654033661,
        score_sum=4.61226448405364, score_sq=1.745515940546327,
        top=[(73, 0.6376110911369324), (43, 0.5922243595123291), (644, 0.520150363445282)]),
    ((0, 2, 3, (64, 96), 6, False), True): dict(
        fg=51, checksum=12598.0, label_sum=81, box_sum=6864.281608581543,
        score_sum=4.062010233200618, score_sq=1.5609676235403698,
        top=[(73, 0.6376110911369324), (43, 0.5922243595123291), (644, 0.520150363445282)]),
    ((1, 2, 3, (64, 96), 6, True), False): dict(
        fg=33, checksum=5629.0, label_sum=18, box_sum=4881.932592868805,
        score_sum=1.2284980243911368, score_sq=0.19405876974781763,
        top=[(151, 0.2314169555902481), (498, 0.21130196750164032), (90, 0.2036358118057251)]),
    ((1, 2, 3, (64, 96), 6, True), True): dict(
        fg=24, checksum=3507.0, label_sum=16, box_sum=3456.2087001800537,
        score_sum=1.0374529382686681, score_sq=0.18124985077997696,
        top=[(151, 0.2314169555902481), (498, 0.21130196750164032), (90, 0.2036358118057251)]),
    ((2, 3, 4, (96, 64), 40, False), False): dict(
        fg=311, checksum=368763.0, label_sum=467, box_sum=49504.68945492804,
        score_sum=63.4591174919516, score_sq=29.313370760206194,
        top=[(676, 0.8371735215187073), (1116, 0.8091334700584412), (214, 0.806755006313324)]),
    ((2, 3, 4, (96, 64), 40, False), True): dict(
        fg=305, checksum=364781.0, label_sum=453, box_sum=48683.78279019892,
        score_sum=62.430695732938275, score_sq=28.9413627236233,
        top=[(676, 0.8371735215187073), (1116, 0.8091334700584412), (214, 0.806755006313324)]),
    ((3, 2, 2, (64, 64), 30, True), False): dict(
        fg=95, checksum=65942.0, label_sum=39, box_sum=13120.816849261522,
        score_sum=5.3870743090672315, score_sq=1.2051646827958327,
        top=[(93, 0.46766915917396545), (274, 0.372607946395874), (244, 0.31738153100013733)]),
    ((3, 2, 2, (64, 64), 30, True), True): dict(
        fg=70, checksum=53989.0, label_sum=28, box_sum=10210.711827278137,
        score_sum=4.674086537096663, score_sq=1.1124937078806112,
        top=[(93, 0.46766915917396545), (274, 0.372607946395874), (244, 0.31738153100013733)]),
}


@pytest.mark.parametrize('case, classic', list(REFERENCE))
def test_matches_ultralytics(case, classic):
    assigner = TASK_UTILS.build(dict(type='TaskAlignedAssigner', enlarge_small_gt=not classic))
    got = summary(assigner(*make_case(*case)))
    expected = REFERENCE[(case, classic)]
    for key in ('fg', 'checksum', 'label_sum'):
        assert got[key] == expected[key], key
    for key in ('box_sum', 'score_sum', 'score_sq'):
        assert got[key] == pytest.approx(expected[key], rel=1e-6), key
    assert [i for i, _ in got['top']] == [i for i, _ in expected['top']]
    assert [v for _, v in got['top']] == pytest.approx([v for _, v in expected['top']],
                                                       rel=1e-6)


# ------------------------------------------------------------ vectorisation
def test_batch_equals_images_one_at_a_time_and_padding_is_inert():
    scores, pred, points, labels, gt, mask = make_case(2, 3, 4, (96, 64), 40)
    assigner = TaskAlignedAssigner()
    batched = assigner(scores, pred, points, labels, gt, mask)
    for b in range(3):
        single = assigner(scores[b:b + 1], pred[b:b + 1], points, labels[b:b + 1],
                          gt[b:b + 1], mask[b:b + 1])
        for got, expected in zip(single, batched):
            assert torch.equal(got[0], expected[b])
    # extra padding slots (with garbage boxes) change nothing
    pad = 7
    padded = assigner(scores, pred, points,
                      torch.cat((labels, torch.full((3, pad), 2)), 1),
                      torch.cat((gt, torch.full((3, pad, 4), 33.0)), 1),
                      torch.cat((mask, torch.zeros(3, pad, dtype=torch.bool)), 1))
    for got, expected in zip(padded, batched):
        assert torch.equal(got, expected)


def test_no_boxes_gives_background():
    scores, pred, points, *_ = make_case(0, 2, 3, (64, 96), 6)
    out = TaskAlignedAssigner()(scores, pred, points, torch.zeros(2, 0, dtype=torch.long),
                                torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool))
    assert not out.fg_mask.any() and out.scores.eq(0).all() and out.labels.eq(3).all()
    # all slots padding: the same
    labels = torch.zeros(2, 4, dtype=torch.long)
    out = TaskAlignedAssigner()(scores, pred, points, labels, torch.zeros(2, 4, 4),
                                torch.zeros(2, 4, dtype=torch.bool))
    assert not out.fg_mask.any() and out.scores.eq(0).all()


def test_fewer_points_than_topk():
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0]])
    pred = torch.cat((points - 3, points + 3), -1)[None]
    out = TaskAlignedAssigner(topk=10, strides=(8,))(
        torch.full((1, 3, 1), 0.5), pred, points, torch.tensor([[0]]),
        torch.tensor([[[0.0, 0.0, 16.0, 16.0]]]), torch.tensor([[True]]))
    assert out.fg_mask.all()


def test_500_boxes_per_image_at_640():
    # The contract's memory case, reduced to B=2: [B, M, N] = 2 x 500 x 8400.
    scores, pred, points, labels, gt, mask = make_case(7, 2, 4, (640, 640), 500)
    out = TaskAlignedAssigner()(scores, pred, points, labels, gt, mask)
    assert out.fg_mask.shape == (2, 8400)
    fg_boxes = [set(out.gt_index[b][out.fg_mask[b]].tolist()) for b in range(2)]
    assert len(fg_boxes[0]) > 300 and len(fg_boxes[1]) > 300
    assert max(fg_boxes[0]) < 498           # two padded slots in image 0
    assert torch.isfinite(out.scores).all() and out.scores.max() <= 1


def test_float64_and_half_inputs():
    case = make_case(0, 2, 3, (64, 96), 6)
    assigner = TaskAlignedAssigner()
    expected = assigner(*case)
    scores, pred, points, labels, gt, mask = case
    as64 = assigner(scores.double(), pred.double(), points.double(), labels, gt.double(), mask)
    assert as64.scores.dtype == torch.float64
    assert torch.equal(as64.fg_mask, expected.fg_mask)
    torch.testing.assert_close(as64.scores.float(), expected.scores, rtol=1e-5, atol=1e-7)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = assigner(scores.bfloat16(), pred, points, labels, gt, mask)
    assert low.scores.dtype == torch.float32 and torch.isfinite(low.scores).all()


def test_no_host_sync(monkeypatch):
    case = make_case(1, 2, 3, (64, 96), 6, True)
    expected = TaskAlignedAssigner()(*case)

    def forbidden(*args, **kwargs):
        raise AssertionError('host sync')

    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    monkeypatch.setattr(torch, 'nonzero', forbidden)
    # a tensor from Python data is a blocking host-to-device copy on CUDA
    monkeypatch.setattr(torch, 'tensor', forbidden)
    monkeypatch.setattr(torch, 'as_tensor', forbidden)
    got = TaskAlignedAssigner()(*case)
    monkeypatch.undo()
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs, match', [
    (dict(topk=0), 'topk'), (dict(topk=2.5), 'topk'), (dict(alpha=-1), 'alpha'),
    (dict(beta=float('nan')), 'beta'), (dict(strides=()), 'strides'),
    (dict(strides=(8, -16)), 'strides'), (dict(min_side=-1), 'min_side')])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TaskAlignedAssigner(**kwargs)


def test_bad_shapes():
    scores, pred, points, labels, gt, mask = make_case(0, 2, 3, (64, 96), 6)
    assigner = TaskAlignedAssigner()
    with pytest.raises(ValueError, match='pred_bboxes'):
        assigner(scores, pred[..., :3], points, labels, gt, mask)
    with pytest.raises(ValueError, match='points'):
        assigner(scores, pred, points[:-1], labels, gt, mask)
    with pytest.raises(ValueError, match='gt_labels'):
        assigner(scores, pred, points, labels[:, :-1], gt, mask)
    with pytest.raises(ValueError, match='gt_bboxes'):
        assigner(scores, pred, points, labels, gt[..., :2], mask)
    with pytest.raises(TypeError, match='pred_scores'):
        assigner(scores.numpy(), pred, points, labels, gt, mask)

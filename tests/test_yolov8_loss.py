"""YOLOv8Loss: a case by the formula, ultralytics 8.4.190 numbers, invariances,
swapped parts, no host sync, dtypes and bad input."""
import math

import numpy as np
import pytest
import torch

from yolo_losses import build_loss
from yolo_losses.losses.yolov8_loss import YOLOv8Loss


def make_case(seed, batch, nc, img_hw, strides=(8, 16, 32), reg_max=16, nboxes=(3, 8),
              small=False, scale=1.0, decay=0.0):
    """Seeded head outputs (one [B, 4R + C, H, W] per level) and targets."""
    rng = np.random.default_rng(seed)
    preds = []
    for s in strides:
        h, w = -(-img_hw[0] // s), -(-img_hw[1] // s)
        level = rng.normal(0.0, scale, size=(batch, 4 * reg_max + nc, h, w))
        # favour short distances: bin k of every side gets -decay * k
        level[:, :4 * reg_max] -= decay * np.tile(np.arange(reg_max), 4)[None, :, None, None]
        preds.append(level.astype(np.float32))
    rows = []
    for b in range(batch):
        n = int(rng.integers(nboxes[0], nboxes[1] + 1))
        for _ in range(n):
            cls = int(rng.integers(0, nc))
            cx, cy = rng.uniform(0.1, 0.9, size=2)
            if small:
                w, h = rng.uniform(0.03, 0.2, size=2)
            else:
                w, h = rng.uniform(0.05, 0.6, size=2)
            rows.append([b, cls, cx, cy, w, h])
    targets = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    perm = rng.permutation(len(targets))
    return preds, targets[perm]


# Box 0 has its edges exactly on points of level 0 (12 and 36 px of a 64 px
# input); box 1 has its x edges on level-1 points (24, 40 px) and is 8 px high.
BORDER_TARGETS = np.array([[0, 1, 0.375, 0.375, 0.375, 0.375],
                           [0, 0, 0.5, 0.25, 0.25, 0.125]], dtype=np.float32)


def make_named_case(seed, batch, nc, img_hw, variant=None, **kw):
    preds, targets = make_case(seed, batch, nc, img_hw, **kw)
    if variant == 'border':
        targets = BORDER_TARGETS
    elif variant == 'first_image_empty':
        targets = targets[targets[:, 0] != 0]
    return preds, targets


CASES = {
    'square': dict(seed=0, batch=2, nc=3, img_hw=(64, 64), decay=0.3),
    'nonsquare': dict(seed=1, batch=2, nc=4, img_hw=(96, 128), decay=0.3),
    'small': dict(seed=2, batch=2, nc=2, img_hw=(64, 96), small=True, decay=0.8),
    'one_class': dict(seed=3, batch=2, nc=1, img_hw=(64, 64), decay=0.3),
    'sharp': dict(seed=4, batch=3, nc=3, img_hw=(64, 64), scale=3.0),
    'border': dict(seed=6, batch=1, nc=2, img_hw=(64, 64), decay=0.3, variant='border'),
    'first_image_empty': dict(seed=8, batch=2, nc=3, img_hw=(64, 64), decay=0.3,
                              variant='first_image_empty'),
    'many': dict(seed=7, batch=1, nc=3, img_hw=(640, 640), decay=0.3, nboxes=(500, 500)),
    'two_levels': dict(seed=9, batch=2, nc=3, img_hw=(64, 96), decay=0.5, strides=(8, 16),
                       reg_max=8),
}

# expected: ultralytics 8.4.190 v8DetectionLoss (hyp box 7.5, cls 0.5, dfl 1.5,
# tal_topk 10), computed in a scratch venv on the same numpy inputs (rows sorted
# by (image, class, cx, cy, w, h), its loss divided by the batch size). Per case:
# (box, cls, dfl), then per level the gradient of box + cls + dfl with respect
# to that level's prediction: (sum, sum of squares, flat index of the largest
# |entry|, that entry). "_classic": its select_candidates_in_gts replaced by
# the rule without the small-box widening.
REFERENCE = {
    'square': (
        (4.065593719482422, 53.621612548828125, 3.1377432346343994),
        [(25.228715795330224, 2.443822936420487, 4333, 0.3369792699813843),
         (5.575081689283186, 0.3870913466640829, 2111, 0.12434215843677521),
         (1.73904500156641, 0.13816600142582852, 263, 0.10814804583787918)]),
    'nonsquare': (
        (3.6521670818328857, 48.1614875793457, 3.8022513389587402),
        [(22.641874698604212, 0.44823371647422616, 69, 0.04935087636113167),
         (5.362168901757437, 0.09932458591371512, 4069, 0.06189792603254318),
         (1.412961768452078, 0.025299071613251657, 1595, 0.028015734627842903)]),
    'nonsquare_classic': (
        (3.6521663665771484, 48.1614875793457, 3.8022513389587402),
        [(22.641874698604212, 0.44823371647422616, 69, 0.04935087636113167),
         (5.362168942735637, 0.09932458744621628, 4069, 0.06189792603254318),
         (1.412961768452078, 0.025299071613251657, 1595, 0.028015734627842903)]),
    'small': (
        (4.790135860443115, 71.01922607421875, 1.6747981309890747),
        [(33.43067011017014, 3.9905507094081787, 57, 0.29929545521736145),
         (8.470773760118032, 0.8690290437281882, 3130, 0.17400483787059784),
         (2.3019009847193956, 0.24600952103828394, 387, 0.16285569965839386)]),
    'small_classic': (
        (4.6646504402160645, 96.13691711425781, 1.7986838817596436),
        [(45.501484078771654, 7.211307766614567, 57, 0.40576839447021484),
         (11.48407749323225, 1.597296871429593, 3130, 0.23590625822544098),
         (3.120791643857956, 0.452176708177253, 387, 0.22079086303710938)]),
    'one_class': (
        (4.034806251525879, 11.783812522888184, 3.2719125747680664),
        [(5.061089911462723, 0.45907840004546596, 6242, 0.12200640141963959),
         (1.508315659136584, 0.08300752272999509, 2067, 0.07729169726371765),
         (0.3634981345385313, 0.018722599578311145, 517, 0.06627720594406128)]),
    'sharp': (
        (6.550158977508545, 416.1983337402344, 7.607855319976807),
        [(121.5951521651451, 37.72754008077447, 12809, 0.4007066786289215),
         (26.713410425523666, 8.05170864467836, 3210, 0.4006496071815491),
         (6.411484651893261, 1.835261736902204, 792, 0.400529146194458)]),
    'border': (
        (3.190150737762451, 71.1397933959961, 1.5705325603485107),
        [(32.92019524664374, 10.03299609642542, 4159, 0.46716877818107605),
         (7.7270306423296296, 2.20570257804218, 1050, 0.4443199038505554),
         (2.4639056473970404, 0.7885145028556408, 262, 0.4300260841846466)]),
    'border_classic': (
        (2.319363832473755, 71.2686996459961, 1.2729012966156006),
        [(32.982078223238204, 10.080355667846737, 4108, 0.47728362679481506),
         (7.7270306423296296, 2.20570257804218, 1050, 0.4443199038505554),
         (2.4639056473970404, 0.7885145028556408, 262, 0.4300260841846466)]),
    'first_image_empty': (
        (4.853424549102783, 51.28916931152344, 3.0143375396728516),
        [(24.50649761302528, 1.9555805323627047, 7402, 0.1464972198009491),
         (6.30662824963469, 0.4832016812688915, 2141, 0.12011175602674484),
         (1.2224935162812471, 0.076489669155078, 265, 0.11176886409521103)]),
    'many': (
        (3.395256996154785, 28.026304244995117, 4.119318962097168),
        [(13.178038891120455, 0.010933046083972152, 1615, 0.002599335042759776),
         (3.0982818189523114, 0.003453015974125408, 26110, 0.003174868877977133),
         (0.604546840989336, 0.0025839427003967784, 6463, 0.003620773321017623)]),
    'two_levels': (
        (3.865809679031372, 42.07391357421875, 2.842198133468628),
        [(20.242159558734343, 1.0876543981854414, 786, 0.1726781129837036),
         (5.043065786550315, 0.25618365222624984, 1426, 0.09249572455883026)]),
}

KEYS = ('loss_box', 'loss_cls', 'loss_dfl')


def build_for(case, classic=False, **kwargs):
    kw = CASES[case]
    extra = {k: kw[k] for k in ('strides', 'reg_max') if k in kw}
    return build_loss(dict(type='YOLOv8Loss', num_classes=kw['nc'], **extra,
                           assigner=dict(type='TaskAlignedAssigner',
                                         enlarge_small_gt=not classic), **kwargs))


def tensors(case, dtype=torch.float32):
    preds, targets = make_named_case(**CASES[case])
    return ([torch.tensor(p, dtype=dtype, requires_grad=True) for p in preds],
            torch.tensor(targets, dtype=dtype))


# ------------------------------------------------------ ultralytics 8.4.190
@pytest.mark.parametrize('key', list(REFERENCE))
def test_matches_ultralytics(key):
    case = key.replace('_classic', '')
    loss = build_for(case, classic=key.endswith('_classic'))
    preds, targets = tensors(case)
    out = loss(preds, targets)
    assert list(out) == list(KEYS)
    expected_losses, expected_grads = REFERENCE[key]
    for name, expected in zip(KEYS, expected_losses):
        assert out[name].dtype == torch.float32 and out[name].shape == ()
        assert out[name].item() == pytest.approx(expected, rel=1e-6), name
    sum(out.values()).backward()
    for pred, (g_sum, g_sq, index, value) in zip(preds, expected_grads):
        grad = pred.grad.double()
        assert grad.sum().item() == pytest.approx(g_sum, rel=2e-6)
        assert (grad ** 2).sum().item() == pytest.approx(g_sq, rel=2e-6)
        assert grad.flatten()[index].item() == pytest.approx(value, rel=1e-5)


# --------------------------------------------------------- by the formula
def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _ciou(a, b, eps=1e-7):
    """ultralytics bbox_iou(CIoU) of two xyxy boxes, written out."""
    w1, h1 = a[2] - a[0], a[3] - a[1] + eps
    w2, h2 = b[2] - b[0], b[3] - b[1] + eps
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2 + eps
    rho2 = ((b[0] + b[2] - a[0] - a[2]) ** 2 + (b[1] + b[3] - a[1] - a[3]) ** 2) / 4
    v = 4 / math.pi ** 2 * (math.atan(w2 / h2) - math.atan(w1 / h1)) ** 2
    alpha = v / (1 - iou + v + eps)
    return iou - (rho2 / c2 + v * alpha)


def _bce(x, t):
    return max(x, 0) - x * t + math.log1p(math.exp(-abs(x)))


def test_one_level_case_by_the_formula():
    # One 2x2 level (stride 8, 16x16 input), reg_max 2, two classes, one box
    # of class 1 from (1, 2) to (15, 14) px: all four points are inside and
    # topk=10 > 4 points takes them all. reg_max 2 clamps the DFL targets
    # at 0.99.
    rng = np.random.default_rng(21)
    pred = rng.normal(0, 1, size=(1, 10, 2, 2)).astype(np.float32)
    targets = np.array([[0, 1, 0.5, 0.5, 0.875, 0.75]], dtype=np.float32)
    loss = YOLOv8Loss(num_classes=2, strides=(8,), reg_max=2)
    out = loss([torch.tensor(pred)], torch.tensor(targets))

    p = pred.astype(np.float64)[0]
    gt_px = [1.0, 2.0, 15.0, 14.0]
    gt_grid = [v / 8 for v in gt_px]
    rows = []
    for y in range(2):
        for x in range(2):
            point = (x + 0.5, y + 0.5)
            dist = [_softmax(p[2 * k:2 * k + 2, y, x]) @ np.arange(2) for k in range(4)]
            box = [point[0] - dist[0], point[1] - dist[1], point[0] + dist[2], point[1] + dist[3]]
            score = 1 / (1 + math.exp(-p[9, y, x]))
            overlap = max(_ciou(gt_px, [v * 8 for v in box]), 0.0)
            rows.append(dict(point=point, box=box, logits=p[8:, y, x], bins=p[:8, y, x],
                             metric=score ** 0.5 * overlap ** 6, overlap=overlap))
    best_metric = max(r['metric'] for r in rows)
    best_overlap = max(r['overlap'] for r in rows)
    for r in rows:
        r['target'] = r['metric'] * best_overlap / (best_metric + 1e-9)
    score_sum = max(sum(r['target'] for r in rows), 1.0)

    cls = sum(_bce(r['logits'][c], r['target'] if c == 1 else 0.0)
              for r in rows for c in range(2))
    box = sum((1 - _ciou(r['box'], gt_grid)) * r['target'] for r in rows)
    dfl = 0.0
    for r in rows:
        px, py = r['point']
        distances = [px - gt_grid[0], py - gt_grid[1], gt_grid[2] - px, gt_grid[3] - py]
        sides = 0.0
        for k, d in enumerate(distances):
            d = min(max(d, 0.0), 0.99)
            left = int(d)
            log_p = np.log(_softmax(r['bins'][2 * k:2 * k + 2]))
            sides += -(log_p[left] * (left + 1 - d) + log_p[left + 1] * (d - left))
        dfl += sides / 4 * r['target']
    assert out['loss_cls'].item() == pytest.approx(0.5 * cls / score_sum, rel=1e-5)
    assert out['loss_box'].item() == pytest.approx(7.5 * box / score_sum, rel=1e-5)
    assert out['loss_dfl'].item() == pytest.approx(1.5 * dfl / score_sum, rel=1e-5)


def test_empty_targets_by_the_formula():
    preds, _ = tensors('square')
    loss = build_for('square')
    out = loss(preds, torch.zeros(0, 6))
    assert out['loss_box'].item() == 0 and out['loss_dfl'].item() == 0
    # no positives: every target is 0 and the score sum is clamped to 1
    logits = torch.cat([p.detach()[:, 64:].flatten(2) for p in preds], 2).double()
    expected = 0.5 * torch.nn.functional.softplus(logits).sum()
    assert out['loss_cls'].item() == pytest.approx(expected.item(), rel=1e-6)
    sum(out.values()).backward()
    for pred in preds:
        assert torch.isfinite(pred.grad).all()
        assert pred.grad[:, :64].eq(0).all()
    # max_boxes given with no rows, and with validation off
    out = build_for('square', validate=False)(preds, torch.zeros(0, 6), max_boxes=3)
    assert out['loss_cls'].item() == pytest.approx(expected.item(), rel=1e-6)


# ------------------------------------------------------------ invariances
def test_row_order_does_not_matter():
    preds, targets = tensors('sharp')
    loss = build_for('sharp')
    expected = loss(preds, targets)
    for seed in range(3):
        perm = torch.as_tensor(np.random.default_rng(seed).permutation(len(targets)))
        got = loss(preds, targets[perm])
        for key in KEYS:
            assert torch.equal(got[key], expected[key])


def test_no_batch_size_factor_and_max_boxes_padding():
    preds, targets = tensors('square')
    loss = build_for('square')
    single = loss(preds, targets)
    # the batch twice over: every sum and the score sum double, the ratios stay
    doubled_preds = [torch.cat((p, p)) for p in preds]
    shifted = targets.clone()
    shifted[:, 0] += 2
    doubled = loss(doubled_preds, torch.cat((targets, shifted)))
    for key in KEYS:
        assert doubled[key].item() == pytest.approx(single[key].item(), rel=1e-5)
    # a larger max_boxes only adds padding (background slots of weight 0;
    # the longer sums may group their terms differently: round-off only)
    padded = loss(preds, targets, max_boxes=40)
    for key in KEYS:
        assert padded[key].item() == pytest.approx(single[key].item(), rel=1e-6, abs=0)


def test_border_points_are_not_candidates():
    preds, targets = tensors('border')
    classic = build_for('border', classic=True)
    result = classic.assign(preds, targets)
    points_px = result.points * result.point_strides
    assigned = result.assignment
    fg = assigned.fg_mask[0]
    boxes = result.gt_boxes[0][assigned.gt_index[0]]
    x, y = points_px[:, 0], points_px[:, 1]
    inside = (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])
    assert fg.any() and inside[fg].all()
    on_edge = ((x == 12) | (x == 36)) & (y >= 12) & (y <= 36) & (result.point_strides[:, 0] == 8)
    assert on_edge.sum() > 0 and not (fg & on_edge & (assigned.gt_index[0] == 1)).any()


def test_zero_size_boxes_stay_finite():
    preds, targets = tensors('square')
    targets[:3, 4:6] = 0
    for classic in (False, True):
        out = build_for('square', classic=classic)(preds, targets)
        assert all(torch.isfinite(v) for v in out.values())
        sum(out.values()).backward()
        assert all(torch.isfinite(p.grad).all() for p in preds)
        for p in preds:
            p.grad = None


def test_one_class_keeps_the_class_loss():
    preds, targets = tensors('one_class')
    out = build_for('one_class')(preds, targets)
    assert out['loss_cls'].item() > 0
    sum(out.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in preds)


# ----------------------------------------------------------- swapped parts
def test_focal_and_varifocal_class_losses_from_config():
    preds, targets = tensors('square')
    base = build_for('square')
    prepared = base.assign(preds, targets)
    logits = prepared.cls_logits.detach().double()
    target = prepared.assignment.scores.double()
    score_sum = target.sum().clamp(min=1)
    prob = logits.sigmoid()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction='none')
    eps = torch.finfo(torch.float32).eps

    focal = build_for('square', loss_cls=dict(type='FocalLoss', gamma=2.0, alpha=0.25,
                                              loss_weight=1.0))
    got = focal(preds, targets)
    # mmdet py_sigmoid_focal_loss on soft targets
    pt = (1 - prob) * target + prob * (1 - target)
    weight = (0.25 * target + 0.75 * (1 - target)) * pt ** 2
    expected = (bce * weight).sum() / (score_sum + eps)
    assert got['loss_cls'].item() == pytest.approx(expected.item(), rel=1e-5)

    varifocal = build_for('square', loss_cls=dict(type='VarifocalLoss', alpha=0.75, gamma=2.0,
                                                  iou_weighted=True, loss_weight=1.0))
    got_vfl = varifocal(preds, targets)
    # mmdet varifocal_loss: positives weighted by their target, negatives by
    # alpha * |p - t| ** gamma
    weight = target * (target > 0) + 0.75 * (prob - target).abs() ** 2 * (target <= 0)
    expected = (bce * weight).sum() / (score_sum + eps)
    assert got_vfl['loss_cls'].item() == pytest.approx(expected.item(), rel=1e-5)
    # the box terms do not depend on the class loss
    reference = base(preds, targets)
    for key in ('loss_box', 'loss_dfl'):
        assert torch.equal(got[key], reference[key]) and torch.equal(got_vfl[key], reference[key])


def test_siou_box_loss_from_config():
    preds, targets = tensors('nonsquare')
    loss = build_for('nonsquare', loss_bbox=dict(type='SIoULoss', loss_weight=7.5))
    got = loss(preds, targets)
    prepared = loss.assign(preds, targets)
    fg = prepared.assignment.fg_mask
    weight = prepared.assignment.scores.sum(-1)[fg]
    pred_boxes = prepared.pred_boxes[fg]
    target_boxes = (prepared.assignment.boxes / prepared.point_strides)[fg]
    siou = build_loss(dict(type='SIoULoss')).iou(pred_boxes, target_boxes)
    expected = 7.5 * ((1 - siou) * weight).sum() / prepared.assignment.scores.sum().clamp(min=1)
    assert got['loss_box'].item() == pytest.approx(expected.item(), rel=1e-5)
    got['loss_box'].backward()
    assert all(torch.isfinite(p.grad).all() for p in preds)


# -------------------------------------------------------- sync, dtypes, size
def test_no_host_sync(monkeypatch):
    preds, targets = tensors('square')
    loss = build_for('square', validate=False)
    max_boxes = 8
    expected = loss(preds, targets, max_boxes=max_boxes)

    def forbidden(*args, **kwargs):
        raise AssertionError('host sync')

    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    monkeypatch.setattr(torch, 'nonzero', forbidden)
    # a tensor from Python data is a blocking host-to-device copy on CUDA
    monkeypatch.setattr(torch, 'tensor', forbidden)
    monkeypatch.setattr(torch, 'as_tensor', forbidden)
    got = loss(preds, targets, max_boxes=max_boxes)
    sum(got.values()).backward()
    monkeypatch.undo()
    for key in KEYS:
        assert torch.equal(got[key], expected[key])


def test_float64_close_to_float32():
    preds32, targets = tensors('nonsquare')
    preds64, targets64 = tensors('nonsquare', torch.float64)
    loss = build_for('nonsquare')
    out32 = loss(preds32, targets)
    out64 = loss(preds64, targets64)
    for key in KEYS:
        assert out64[key].dtype == torch.float64
        assert out64[key].item() == pytest.approx(out32[key].item(), rel=1e-5)
    sum(out64.values()).backward()
    sum(out32.values()).backward()
    for p32, p64 in zip(preds32, preds64):
        torch.testing.assert_close(p64.grad.float(), p32.grad, rtol=1e-4, atol=1e-7)


def test_autocast_bfloat16():
    preds, targets = tensors('nonsquare')
    low = [p.detach().bfloat16().requires_grad_(True) for p in preds]
    rounded = [p.detach().float() for p in low]
    loss = build_for('nonsquare')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = loss(low, targets)
    expected = loss(rounded, targets)
    for key in KEYS:
        assert got[key].dtype == torch.float32 and torch.isfinite(got[key])
        assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-5)
    sum(got.values()).backward()
    assert all(torch.isfinite(p.grad.float()).all() for p in low)


def test_default_img_size_and_explicit_one():
    preds, targets = tensors('nonsquare')
    loss = build_for('nonsquare')
    default = loss(preds, targets)
    explicit = loss(preds, targets, img_size=(96, 128))
    for key in KEYS:
        assert torch.equal(default[key], explicit[key])
    # a 92x124 input also gives these grids; targets scale by it
    other = loss(preds, targets, img_size=(92, 124))
    assert other['loss_box'].item() != default['loss_box'].item()
    with pytest.raises(ValueError, match='img_size'):
        loss(preds, targets, img_size=(200, 128))


# ---------------------------------------------------------------- bad input
def test_bad_inputs():
    preds, targets = tensors('square')
    loss = build_for('square')
    with pytest.raises(ValueError, match='levels'):
        loss(preds[:2], targets)
    with pytest.raises(ValueError, match=r'preds\[1\]'):
        loss([preds[0], preds[1][:, :-1], preds[2]], targets)
    with pytest.raises(TypeError, match='preds'):
        loss(preds[0], targets)
    with pytest.raises(ValueError, match=r'targets must be \[N, 6\]'):
        loss(preds, targets[:, :5])
    bad = targets.clone()
    bad[0, 1] = 3
    with pytest.raises(ValueError, match='class id'):
        loss(preds, bad)
    bad = targets.clone()
    bad[0, 0] = 2
    with pytest.raises(ValueError, match='batch index'):
        loss(preds, bad)
    bad = targets.clone()
    bad[0, 4] = -0.1
    with pytest.raises(ValueError, match='must not be negative'):
        loss(preds, bad)
    bad = targets.clone()
    bad[0, 2] = float('nan')
    with pytest.raises(ValueError, match='targets contains NaN'):
        loss(preds, bad)
    nan_pred = preds[1].detach().clone()
    nan_pred[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match=r'preds\[1\] contains NaN'):
        loss([preds[0], nan_pred, preds[2]], targets)
    with pytest.raises(ValueError, match='max_boxes'):
        loss(preds, targets, max_boxes=1)
    with pytest.raises(TypeError, match='max_boxes'):
        loss(preds, targets, max_boxes=2.0)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(num_classes=0), ValueError, 'num_classes'),
    (dict(num_classes=2, reg_max=0), ValueError, 'reg_max'),
    (dict(num_classes=2, reg_max=1, loss_l1=dict(type='L1Loss', reduction='sum')),
     ValueError, 'loss_l1'),
    (dict(num_classes=2, class_weights=[1.0]), ValueError, 'class_weights'),
    (dict(num_classes=2, class_weights=[1.0, -1.0]), ValueError, 'class_weights'),
    (dict(num_classes=2, class_weights=[1.0, float('nan')]), ValueError, 'class_weights'),
    (dict(num_classes=2, class_weights='ab'), TypeError, 'class_weights'),
    (dict(num_classes=2, strides=(16, 8)), ValueError, 'strides'),
    (dict(num_classes=2, loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                                       reduction='sum')), ValueError, 'loss_cls'),
    (dict(num_classes=2, loss_bbox='CIoULoss'), TypeError, 'loss_bbox'),
    (dict(num_classes=2, assigner=dict(type='TaskAlignedAssigner', topk=0)), ValueError, 'topk'),
    (dict(num_classes=2, loss_dfl=dict(type='DistributionFocalLos')), KeyError,
     'DistributionFocalLoss'),
])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        YOLOv8Loss(**kwargs)

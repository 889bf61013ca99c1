"""Tests of ``yolo_losses.ops.iou.aligned_iou`` (the aligned IoU family).

Expected values come from hand computation, from the formulas written out
with Python's ``math`` on scalars, and from ultralytics 8.4.190 /
yolov5 7.0.14 (pasted, computed once in a scratch venv).
"""
import math

import numpy as np
import pytest
import torch

from yolo_losses.ops.boxes import pairwise_box_iou
from yolo_losses.ops.iou import IOU_MODES, YOLO_IOU_MODES, aligned_iou, default_iou_eps

STYLED_MODES = [('mmdet', m) for m in IOU_MODES] + [('yolo', m) for m in YOLO_IOU_MODES]


def make_boxes(seed, n):
    """Seeded xyxy pairs: even rows a jittered copy (high IoU), odd rows a
    shifted box of another size (low or no overlap)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.0, 50.0, (n, 2))
    wh = rng.uniform(1.0, 30.0, (n, 2))
    pred = np.concatenate([xy, xy + wh], 1)
    near_xy = xy + rng.normal(0.0, 2.0, (n, 2))
    near_wh = wh * rng.uniform(0.7, 1.4, (n, 2))
    far_xy = xy + rng.uniform(-20.0, 20.0, (n, 2))
    far_wh = rng.uniform(1.0, 30.0, (n, 2))
    near = np.concatenate([near_xy, near_xy + near_wh], 1)
    far = np.concatenate([far_xy, far_xy + far_wh], 1)
    target = np.where((np.arange(n) % 2 == 0)[:, None], near, far)
    return pred, target


def tensors(seed, n, dtype=torch.float64, requires_grad=False):
    p, t = make_boxes(seed, n)
    pred = torch.tensor(p, dtype=dtype, requires_grad=requires_grad)
    return pred, torch.tensor(t, dtype=dtype)


# --- hand-computed cases ------------------------------------------------------

# Two unit squares offset by 0.5 along x: overlap 0.5, union 1.5, IoU 1/3;
# the enclosing box (1.5 x 1) equals the union, so GIoU = IoU; centres 0.5
# apart, enclosing diagonal^2 = 1.5^2 + 1^2 = 3.25; same aspect, so CIoU = DIoU.
UNIT_A = [[0.0, 0.0, 1.0, 1.0]]
UNIT_B = [[0.5, 0.0, 1.5, 1.0]]
# SIoU: the offset is along x, so sin(alpha) ~ 0, the angle cost is
# cos(-pi/2) = 0 and gamma = 2; rho_x = (0.5 / 1.5)^2 = 1/9, rho_y ~ 0;
# no shape cost: SIoU = 1/3 - 0.5 * (2 - e^(2/9) - 1).
UNIT_EXPECTED = {
    'iou': 1 / 3, 'giou': 1 / 3, 'diou': 1 / 3 - 0.25 / 3.25, 'ciou': 1 / 3 - 0.25 / 3.25,
    'eiou': 1 / 3, 'siou': 1 / 3 - 0.5 * (1 - math.exp(2 / 9)),
}


@pytest.mark.parametrize('style,mode', STYLED_MODES)
def test_unit_squares_offset_by_half(style, mode):
    got = aligned_iou(torch.tensor(UNIT_A, dtype=torch.float64),
                      torch.tensor(UNIT_B, dtype=torch.float64), mode, style)
    # the eps guards move the value by O(1e-6) at most
    assert got.shape == (1,)
    assert got.item() == pytest.approx(UNIT_EXPECTED[mode], abs=2e-6)


def test_overlapping_boxes_of_different_shape():
    # pred 2x2 at the origin, target 3x2 at (1, 1): overlap 1, union 4 + 6 - 1 = 9,
    # enclosing box 4 x 3 = 12, centres (1, 1) and (2.5, 2): rho^2 = 3.25,
    # enclosing diagonal^2 = 25.
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 1.0, 4.0, 3.0]], dtype=torch.float64)
    iou = 1 / 9
    diou = iou - 3.25 / 25
    v = 4 / math.pi ** 2 * (math.atan(3 / 2) - math.atan(1.0)) ** 2
    expected_mmdet = {'iou': iou, 'giou': iou - (12 - 9) / 12, 'diou': diou,
                      'ciou': diou}  # mmdet: no aspect term when IoU <= 0.5
    expected_yolo = {'iou': iou, 'giou': iou - (12 - 9) / 12, 'diou': diou,
                     'ciou': diou - v * v / (1 - iou + v)}
    for mode, value in expected_mmdet.items():
        assert aligned_iou(pred, target, mode).item() == pytest.approx(value, abs=1e-6)
    for mode, value in expected_yolo.items():
        assert aligned_iou(pred, target, mode, 'yolo').item() == pytest.approx(value, abs=1e-6)


def test_mmdet_ciou_aspect_term_only_above_half_iou():
    # 2x2 vs 2x1.8 sharing a corner: IoU 0.9 > 0.5, so the aspect term counts.
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 2.0, 1.8]], dtype=torch.float64)
    iou = 3.6 / 4.0
    rho2 = 0.1 ** 2
    c2 = 2.0 ** 2 + 2.0 ** 2
    v = 4 / math.pi ** 2 * (math.atan(2 / 1.8) - math.atan(1.0)) ** 2
    alpha = v / (1 - iou + v)
    expected = iou - (rho2 / c2 + alpha * v)
    assert aligned_iou(pred, target, 'ciou').item() == pytest.approx(expected, abs=1e-6)
    assert aligned_iou(pred, target, 'ciou', 'yolo').item() == pytest.approx(expected, abs=1e-6)


def test_extended_iou_is_negative_for_disjoint_boxes():
    # Unit squares one unit apart: the "intersection" is (1 - 2) * 1 = -1 and
    # the union 1 + 1 - (-1) = 3, so the extended IoU is -1/3.
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[2.0, 0.0, 3.0, 1.0]], dtype=torch.float64)
    assert aligned_iou(pred, target, 'eiou').item() == pytest.approx(-1 / 3, abs=1e-6)
    assert aligned_iou(pred, target, 'iou').item() == 0.0


def test_identical_boxes_give_one():
    boxes = torch.tensor([[2.0, 3.0, 7.0, 11.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    for style, mode in STYLED_MODES:
        got = aligned_iou(boxes, boxes.clone(), mode, style)
        torch.testing.assert_close(got, torch.ones(2, dtype=torch.float64),
                                   rtol=0, atol=2e-6)


def test_default_eps_follows_the_references():
    assert default_iou_eps('iou') == 1e-6          # mmdet bbox_overlaps
    for mode in ('giou', 'diou', 'ciou', 'eiou', 'siou'):
        assert default_iou_eps(mode) == 1e-7       # mmdet *_loss functions
    for mode in YOLO_IOU_MODES:
        assert default_iou_eps(mode, 'yolo') == 1e-7  # ultralytics bbox_iou
    # mmdet floors the union at eps: two empty boxes give 0 / 1e-6 = 0
    empty_box = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert aligned_iou(empty_box, empty_box, 'iou').item() == 0.0


# --- the formulas written out plainly, one box at a time ----------------------

def plain_mmdet(mode, p, t, eps):
    px1, py1, px2, py2 = p
    tx1, ty1, tx2, ty2 = t
    iw = max(min(px2, tx2) - max(px1, tx1), 0.0)
    ih = max(min(py2, ty2) - max(py1, ty1), 0.0)
    overlap = iw * ih
    pred_area = (px2 - px1) * (py2 - py1)
    target_area = (tx2 - tx1) * (ty2 - ty1)
    cw = max(max(px2, tx2) - min(px1, tx1), 0.0)
    ch = max(max(py2, ty2) - min(py1, ty1), 0.0)
    dx = ((tx1 + tx2) - (px1 + px2)) / 2
    dy = ((ty1 + ty2) - (py1 + py2)) / 2
    if mode in ('iou', 'giou'):
        union = max(pred_area + target_area - overlap, eps)
        iou = overlap / union
        if mode == 'iou':
            return iou
        enclose = max(cw * ch, eps)
        return iou - (enclose - union) / enclose
    if mode == 'eiou':
        # mmdet's extended intersection, case by case; a, b (c, d) are the
        # overlap interval's ends measured from the enclosing box's left (top).
        a, b = max(px1, tx1) - min(px1, tx1), min(px2, tx2) - min(px1, tx1)
        c, d = max(py1, ty1) - min(py1, ty1), min(py2, ty2) - min(py1, ty1)
        if a <= b and c <= d:      # overlapping: the intersection area
            signed = (b - a) * (d - c)
        elif c <= d:               # apart along x only
            signed = (b - a) * (c + d)
        elif a <= b:               # apart along y only
            signed = (a + b) * (d - c)
        else:                      # apart along both
            signed = 2 * (b * d - a * c)
        return signed / (pred_area + target_area - signed + eps)
    union = pred_area + target_area - overlap + eps
    iou = overlap / union
    if mode in ('diou', 'ciou'):
        distance = (dx * dx + dy * dy) / (cw * cw + ch * ch + eps)
        if mode == 'diou':
            return iou - distance
        v = 4 / math.pi ** 2 * (math.atan((tx2 - tx1) / (ty2 - ty1 + eps))
                                - math.atan((px2 - px1) / (py2 - py1 + eps))) ** 2
        alpha = v / (1 - iou + v) if iou > 0.5 else 0.0
        return iou - (distance + alpha * v)
    # siou (mmdet's default gamma = 2 - angle cost)
    sx, sy = dx + eps, dy + eps
    sigma = math.hypot(sx, sy)
    sin_alpha = min(abs(sx), abs(sy)) / sigma  # the smaller angle to an axis
    angle = math.cos(2 * math.asin(sin_alpha) - math.pi / 2)
    gamma = 2 - angle
    cw, ch = max(cw, eps), max(ch, eps)
    distance = 2 - math.exp(gamma * (sx / cw) ** 2) - math.exp(gamma * (sy / ch) ** 2)
    w1, h1, w2, h2 = px2 - px1, py2 - py1 + eps, tx2 - tx1, ty2 - ty1 + eps
    shape = ((1 - math.exp(-abs(w1 - w2) / max(w1, w2))) ** 4
             + (1 - math.exp(-abs(h1 - h2) / max(h1, h2))) ** 4)
    return iou - 0.5 * (distance + shape)


def plain_yolo(mode, p, t, eps):
    px1, py1, px2, py2 = p
    tx1, ty1, tx2, ty2 = t
    w1, h1, w2, h2 = px2 - px1, py2 - py1 + eps, tx2 - tx1, ty2 - ty1 + eps
    inter = (max(min(px2, tx2) - max(px1, tx1), 0.0)
             * max(min(py2, ty2) - max(py1, ty1), 0.0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = max(px2, tx2) - min(px1, tx1)
    ch = max(py2, ty2) - min(py1, ty1)
    if mode == 'iou':
        return iou
    if mode == 'giou':
        c_area = cw * ch + eps
        return iou - (c_area - union) / c_area
    rho2 = ((tx1 + tx2 - px1 - px2) ** 2 + (ty1 + ty2 - py1 - py2) ** 2) / 4
    diou = iou - rho2 / (cw * cw + ch * ch + eps)
    if mode == 'diou':
        return diou
    v = 4 / math.pi ** 2 * (math.atan(w2 / h2) - math.atan(w1 / h1)) ** 2
    return diou - v * v / (1 - iou + v + eps)


@pytest.mark.parametrize('style,mode', STYLED_MODES)
@pytest.mark.parametrize('eps', [None, 1e-2])
def test_matches_plain_formula_on_seeded_boxes(style, mode, eps):
    pred, target = tensors(11, 64)
    # also touching and containing boxes
    extra_p = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 2.0, 3.0]],
                           dtype=torch.float64)
    extra_t = torch.tensor([[4.0, 0.0, 6.0, 4.0], [1.0, 1.0, 2.0, 3.0], [5.0, 6.0, 7.0, 9.0]],
                           dtype=torch.float64)
    pred, target = torch.cat([pred, extra_p]), torch.cat([target, extra_t])
    used_eps = default_iou_eps(mode, style) if eps is None else eps
    plain = plain_mmdet if style == 'mmdet' else plain_yolo
    expected = [plain(mode, p, t, used_eps) for p, t in zip(pred.tolist(), target.tolist())]
    got = aligned_iou(pred, target, mode, style, eps)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)


# --- ultralytics 8.4.190 bbox_iou(box1, box2, xywh=False, ...) -----------------
# expected: ultralytics 8.4.190 bbox_iou(pred, target, xywh=False, {GIoU,DIoU,CIoU}=True)
# on float64 make_boxes(0, 8), computed in a scratch venv (torch 2.14.1);
# 'grad' is d/d pred of sum(1 - iou).
UL_SMALL = {'iou': {'iou': [0.5475375837576143, 0.0, 0.26046157870888187, 0.0422933157249882,
                 0.4095704020874959, 0.7541576056660599, 0.758127631253099,
                 0.03458702300857719],
         'grad': [[0.027104498479548364, -0.025707079532972753, 0.016493783876325073,
                   -0.02853734264261715],
                  [0.0, 0.0, 0.0, 0.0],
                  [0.21133120900722813, 0.06800646545941297, 0.09134804952232989,
                   0.036134172749576414],
                  [-0.0008625349331234532, -0.0008921876275370601, -0.0020217014674163165,
                   -0.015542146681445986],
                  [0.02129062893424745, -0.020911743908495192, 0.013455752853936796,
                   -0.04253818571393024],
                  [0.02440797584056524, 0.027332468471822205, 0.023023285170409906,
                   0.0233945943560493],
                  [-0.03497996680697144, 0.0463432072215356, -0.030512261134708098,
                   0.036771639356585305],
                  [-0.0003977982551043969, 0.002235042394506845, -0.011501372976042425,
                   -0.002235042394506845]]},
 'giou': {'iou': [0.48237718112383227, -0.4253454158201088, 0.12316337354364537,
                  -0.1556460006107958, 0.35490655058319254, 0.7478938631313116,
                  0.7557811039682623, -0.18245894117887868],
          'grad': [[0.02892826208868933, -0.023349051986594455, 0.0238100062573001,
                    -0.039660307103250456],
                   [0.014724383272297126, -0.0030927104513598317, 0.011743944658321393,
                    -0.01076363340084932],
                   [0.3067308093355368, 0.11641289095176081, 0.06450273941429091,
                    0.09383544974407987],
                   [-0.014446850351506432, -0.0017503032963400028, -0.016159558739343393,
                    -0.019815336783993612],
                   [0.02904522013487005, -0.024369923115475912, 0.026646713544615314,
                    -0.04825187955917489],
                   [0.027875262132003725, 0.02942193744589412, 0.025895524673148054,
                    0.02320577190805882],
                   [-0.03632352057590678, 0.047568917363786135, -0.0393802251394294,
                    0.03706922967970843],
                   [-0.007906448282755083, 0.015405008623834052, -0.011501373049381059,
                    -0.015405008623834052]]},
 'diou': {'iou': [0.5277068882696605, -0.2748098140297617, 0.20733850113155822,
                  -0.133236584032444, 0.37579898629347513, 0.7484412110319493,
                  0.7522371974932438, -0.14006911987929296],
          'grad': [[0.02998363607102702, -0.027831274498690398, 0.018502714371420936,
                    -0.03140485638649096],
                   [0.0039657255374734935, -7.094209678593436e-05, -0.0014797594857473926,
                    -0.010472883970717039],
                   [0.24189454559757495, 0.09358646562700734, 0.11197107102782958,
                    0.04626346467747352],
                   [0.00046406919064872977, -0.0028458340736158424, -0.004110991061495855,
                    -0.02324889958559114],
                   [0.024294658783547612, -0.025155235167684593, 0.014634241997889434,
                    -0.048343347181066004],
                   [0.024929720714354023, 0.028964377438320817, 0.02336935991147779,
                    0.024836087050446928],
                   [-0.035101912834455566, 0.0489229815567652, -0.030921562100976942,
                    0.0390718009759667],
                   [-0.0022322122607225238, 7.505994795669441e-05, -0.018721679326322443,
                    -0.004395024841056996]]},
 'ciou': {'iou': [0.52624408540833, -0.27480993117594116, 0.20668260601759558,
                  -0.13331217754096794, 0.37577010139194983, 0.7484407636640696,
                  0.7522115689857146, -0.14065394658754551],
          'grad': [[0.02978376081690496, -0.027519750527422396, 0.018702589625542995,
                    -0.031716380357758964],
                   [0.003965329247835276, -7.065240612063121e-05, -0.001479363196109175,
                    -0.010473173661382342],
                   [0.242943536090935, 0.09317152076613794, 0.11092208053446952,
                    0.04667840953834294],
                   [0.00043862611657246014, -0.0028195163037196664, -0.0040855479874195855,
                    -0.023275217355487317],
                   [0.02428086457416448, -0.02513379742449983, 0.01464803620727257,
                    -0.04836478492425077],
                   [0.02492919824107016, 0.028964908337818753, 0.02336988238476165,
                    0.02483555615094899],
                   [-0.035086312949948274, 0.04890658264677561, -0.030937161985484234,
                    0.03908819988595629],
                   [-0.0023320772052919684, 0.00024557151998338804, -0.018621814381752998,
                    -0.004565536413083689]]}}


# expected: same function on float64 make_boxes(1, 2000): sum and sum of
# squares of the values, of the gradient of sum(1 - iou), and its first two rows.
UL_BIG = {'iou': {'sum': 563.6136569176355,
         'sumsq': 306.13389147176525,
         'gsum': 0.12548494083715056,
         'gsumsq': 20.04616226891764,
         'g0': [0.02547985018833339, -0.02021825873050146, 0.01582075136784645,
                0.02021825873050146],
         'g1': [0.019618393209898607, 0.013787499421825524, 0.010069885590918301,
                0.008395335175053403]},
 'giou': {'sum': 124.3830447650721,
          'sumsq': 463.2881650040307,
          'gsum': 0.17261482632810754,
          'gsumsq': 30.562448938111757,
          'g0': [0.03780157381510485, -0.02590971799722557, 0.014180341691593462,
                 0.02590971799722557],
          'g1': [0.027028156262912224, 0.021705511901688117, 0.010598508186965689,
                 0.014909023888952513]},
 'diou': {'sum': 349.92778770529907,
          'sumsq': 333.61432270286787,
          'gsum': -0.15356824988606377,
          'gsumsq': 21.499800380706255,
          'g0': [0.0325106916723992, -0.018249572285692704, 0.020453285293172294,
                 0.01893329066780408],
          'g1': [0.024030914285135166, 0.016539990249741832, 0.01274532782575147,
                 0.00949373295194348]},
 'ciou': {'sum': 322.9220254534029,
          'sumsq': 347.47281997669245,
          'gsum': -0.15356824988606377,
          'gsumsq': 21.672873082053666,
          'g0': [0.03251081303968162, -0.01824972738800487, 0.020453163925889875,
                 0.01893344577011625],
          'g1': [0.024045890957308205, 0.016527504091725008, 0.012730351153578432,
                 0.009506219109960303]}}

# expected: same function with eps=1e-3 on make_boxes(0, 8).
UL_SMALL_EPS_1E3 = {'iou': [0.5474913908762842, 0.0, 0.2603581921987075, 0.042291436720447655,
         0.40952715924518235, 0.754111624413974, 0.7580529600328398, 0.03458535739530916],
 'giou': [0.4824082862826071, -0.425316024241333, 0.1233458551245597, -0.155612907757677,
          0.354960706693537, 0.7479074501846575, 0.7558023935937307, -0.1824234743005499],
 'diou': [0.5276607118987338, -0.274809688634082, 0.20723670286900447, -0.13323839928421227,
          0.37575578617093014, 0.7483952327149128, 0.7521625330950573,
          -0.14007072869991133],
 'ciou': [0.5262011849871291, -0.2748098054008705, 0.20658245356592905,
          -0.13331389788703468, 0.3757269581770341, 0.7483947872268204, 0.7521370222432728,
          -0.14065479222577332]}

# expected: yolov5 7.0.14 utils.metrics.bbox_iou(CIoU=True) on the same boxes
# converted to cxcywh, float32 (the call of its ComputeLoss).
V5_CIOU_F32 = [0.5262441635131836, -0.27480992674827576, 0.20668360590934753, -0.13331206142902374,
 0.37577006220817566, 0.7484410405158997, 0.7522113919258118, -0.14065401256084442]


@pytest.mark.parametrize('mode', YOLO_IOU_MODES)
def test_yolo_style_matches_ultralytics_small(mode):
    pred, target = tensors(0, 8, requires_grad=True)
    got = aligned_iou(pred, target, mode, 'yolo')
    grad, = torch.autograd.grad((1 - got).sum(), pred)
    expected = UL_SMALL[mode]
    torch.testing.assert_close(got.detach(), torch.tensor(expected['iou'], dtype=torch.float64),
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, torch.tensor(expected['grad'], dtype=torch.float64),
                               rtol=1e-10, atol=1e-14)
    # float32 to round-off
    pred32, target32 = tensors(0, 8, torch.float32, requires_grad=True)
    got32 = aligned_iou(pred32, target32, mode, 'yolo')
    grad32, = torch.autograd.grad((1 - got32).sum(), pred32)
    torch.testing.assert_close(got32.detach().double(),
                               torch.tensor(expected['iou'], dtype=torch.float64),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad32.double(), torch.tensor(expected['grad'], dtype=torch.float64),
                               rtol=1e-4, atol=1e-6)
    explicit = aligned_iou(pred.detach(), target, mode, 'yolo', eps=1e-3)
    torch.testing.assert_close(explicit, torch.tensor(UL_SMALL_EPS_1E3[mode], dtype=torch.float64),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('mode', YOLO_IOU_MODES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_yolo_style_matches_ultralytics_big(mode, dtype):
    pred, target = tensors(1, 2000, dtype, requires_grad=True)
    got = aligned_iou(pred, target, mode, 'yolo')
    grad, = torch.autograd.grad((1 - got).sum(), pred)
    got, grad = got.detach().double(), grad.double()
    ref = UL_BIG[mode]
    rtol = 1e-11 if dtype == torch.float64 else 2e-5
    assert got.sum().item() == pytest.approx(ref['sum'], rel=rtol)
    assert (got ** 2).sum().item() == pytest.approx(ref['sumsq'], rel=rtol)
    assert (grad ** 2).sum().item() == pytest.approx(ref['gsumsq'], rel=rtol)
    # the gradient sum cancels: compare against the gradient's scale
    assert grad.sum().item() == pytest.approx(ref['gsum'], abs=rtol * 100)
    torch.testing.assert_close(grad[0], torch.tensor(ref['g0'], dtype=torch.float64),
                               rtol=rtol * 10, atol=1e-7 if dtype == torch.float32 else 1e-15)
    torch.testing.assert_close(grad[1], torch.tensor(ref['g1'], dtype=torch.float64),
                               rtol=rtol * 10, atol=1e-7 if dtype == torch.float32 else 1e-15)


def test_yolo_ciou_close_to_yolov5_cxcywh_variant():
    # yolov5 computes the same CIoU from cxcywh boxes with no eps on the
    # heights; in float32 the two agree to round-off and O(eps) terms.
    pred, target = tensors(0, 8, torch.float32)
    got = aligned_iou(pred, target, 'ciou', 'yolo')
    torch.testing.assert_close(got, torch.tensor(V5_CIOU_F32), rtol=0, atol=1e-5)


# --- shapes, dtypes, numerics ------------------------------------------------

@pytest.mark.parametrize('style,mode', STYLED_MODES)
def test_leading_dimensions_and_broadcasting(style, mode):
    pred, target = tensors(3, 24)
    flat = aligned_iou(pred, target, mode, style)
    shaped = aligned_iou(pred.view(2, 3, 4, 4), target.view(2, 3, 4, 4), mode, style)
    assert shaped.shape == (2, 3, 4)
    torch.testing.assert_close(shaped.reshape(-1), flat, rtol=0, atol=0)
    # [N, 1, 4] against [M, 4] gives the [N, M] matrix, row by row
    matrix = aligned_iou(pred[:5, None], target[:7], mode, style)
    assert matrix.shape == (5, 7)
    row = aligned_iou(pred[2].expand(7, 4), target[:7], mode, style)
    torch.testing.assert_close(matrix[2], row, rtol=0, atol=0)
    single = aligned_iou(pred[0], target[0], mode, style)
    assert single.shape == () and single.item() == pytest.approx(flat[0].item(), abs=1e-15)


def test_broadcast_iou_equals_pairwise_box_iou():
    pred, target = tensors(4, 9)
    # same eps convention (union + eps, areas of non-negative boxes): ultralytics'
    # plain IoU adds eps to the heights too, an O(eps * w) difference
    torch.testing.assert_close(aligned_iou(pred[:, None], target, 'iou', 'yolo'),
                               pairwise_box_iou(pred, target), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize('style,mode', STYLED_MODES)
def test_empty_input(style, mode):
    pred = torch.zeros(0, 4, requires_grad=True)
    got = aligned_iou(pred, torch.zeros(0, 4), mode, style)
    assert got.shape == (0,)
    got.sum().backward()
    assert pred.grad.shape == (0, 4)
    assert aligned_iou(torch.zeros(2, 0, 4), torch.zeros(2, 0, 4), mode, style).shape == (2, 0)


@pytest.mark.parametrize('style,mode', STYLED_MODES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(style, mode, dtype):
    pred, target = tensors(5, 32, torch.float32)
    pred, target = pred.to(dtype), target.to(dtype)
    got = aligned_iou(pred, target, mode, style)
    assert got.dtype == torch.float32
    expected = aligned_iou(pred.float(), target.float(), mode, style)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # large boxes whose areas overflow float16 (max 65504) stay finite
    big = torch.tensor([[0.0, 0.0, 600.0, 500.0]], dtype=dtype)
    big_target = torch.tensor([[10.0, 20.0, 610.0, 480.0]], dtype=dtype)
    assert torch.isfinite(aligned_iou(big, big_target, mode, style)).all()


@pytest.mark.parametrize('style,mode', STYLED_MODES)
def test_autocast_gives_float32(style, mode):
    pred, target = tensors(6, 16, torch.float32)
    expected = aligned_iou(pred, target, mode, style)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = aligned_iou(pred, target, mode, style)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


DEGENERATE = {
    # identical boxes, large enough that IoU rounds to 1 in float32 (mmdet's
    # CIoU gives NaN here: 0 / 0 in its alpha)
    'identical_large': ([100.0, 100.0, 300.0, 250.0], [100.0, 100.0, 300.0, 250.0]),
    'identical_unit': ([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]),
    'zero_size_same_point': ([5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]),
    'zero_size_apart': ([5.0, 5.0, 5.0, 5.0], [7.0, 9.0, 7.0, 9.0]),
    # two zero-width boxes (mmdet's SIoU gives NaN here: 0 / 0 in its shape cost)
    'zero_width_both': ([5.0, 0.0, 5.0, 3.0], [5.0, 1.0, 5.0, 2.0]),
    'zero_height_pred': ([0.0, 2.0, 4.0, 2.0], [1.0, 1.0, 3.0, 3.0]),
    'far_apart': ([0.0, 0.0, 1.0, 1.0], [1e4, 1e4, 1e4 + 2.0, 1e4 + 3.0]),
    'nested': ([0.0, 0.0, 10.0, 10.0], [4.0, 4.0, 5.0, 5.0]),
    'touching': ([0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 2.0, 1.0]),
}


@pytest.mark.parametrize('style,mode', STYLED_MODES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_degenerate_boxes_give_finite_values_and_gradients(style, mode, dtype):
    pred = torch.tensor([p for p, _ in DEGENERATE.values()], dtype=dtype, requires_grad=True)
    target = torch.tensor([t for _, t in DEGENERATE.values()], dtype=dtype, requires_grad=True)
    got = aligned_iou(pred, target, mode, style)
    assert torch.isfinite(got).all(), dict(zip(DEGENERATE, got.tolist()))
    pred_grad, target_grad = torch.autograd.grad(got.sum(), (pred, target))
    assert torch.isfinite(pred_grad).all() and torch.isfinite(target_grad).all()
    names = list(DEGENERATE)
    assert got[names.index('identical_large')].item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize('style,mode', [s for s in STYLED_MODES if s[1] != 'ciou'])
def test_gradcheck(style, mode):
    # CIoU is left out: both references detach alpha, so its gradient is by
    # design not the derivative of the value (the pasted gradients cover it).
    pred, target = tensors(7, 6, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda p, t: aligned_iou(p, t, mode, style), (pred, target.requires_grad_()))


def test_ciou_gradient_treats_alpha_as_a_constant():
    pred, target = tensors(8, 6, requires_grad=True)
    for style in ('mmdet', 'yolo'):
        ciou = aligned_iou(pred, target, 'ciou', style)
        grad_ciou, = torch.autograd.grad(ciou.sum(), pred)
        # rebuild CIoU from DIoU + the aspect term v with a detached alpha
        diou = aligned_iou(pred, target, 'diou', style)
        eps = 1e-7
        w = lambda b: b[:, 2] - b[:, 0]
        h = lambda b: b[:, 3] - b[:, 1] + eps
        v = 4 / math.pi ** 2 * (torch.atan(w(target) / h(target))
                                - torch.atan(w(pred) / h(pred))) ** 2
        iou = aligned_iou(pred, target, 'iou', style, eps).detach()
        if style == 'mmdet':
            alpha = torch.where(iou > 0.5, v / (1 - iou + v), torch.zeros_like(v)).detach()
        else:
            alpha = (v / (1 - iou + v + eps)).detach()
        rebuilt = diou - alpha * v
        grad_rebuilt, = torch.autograd.grad(rebuilt.sum(), pred)
        torch.testing.assert_close(ciou, rebuilt, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_ciou, grad_rebuilt, rtol=1e-10, atol=1e-12)


def test_siou_neg_gamma_changes_only_the_distance_cost():
    pred, target = tensors(9, 16)
    default = aligned_iou(pred, target, 'siou')
    paper = aligned_iou(pred, target, 'siou', neg_gamma=True)
    expected = [plain_mmdet('siou', p, t, 1e-7) for p, t in zip(pred.tolist(), target.tolist())]
    torch.testing.assert_close(default, torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)
    assert not torch.allclose(default, paper)
    # equal where the centres coincide up to eps (rho ~ 0: both distance costs ~ 0)
    same_centre = aligned_iou(torch.tensor([[0.0, 0.0, 2.0, 4.0]]),
                              torch.tensor([[0.5, 1.0, 1.5, 3.0]]), 'siou', neg_gamma=True)
    assert same_centre.item() == pytest.approx(
        aligned_iou(torch.tensor([[0.0, 0.0, 2.0, 4.0]]),
                    torch.tensor([[0.5, 1.0, 1.5, 3.0]]), 'siou').item(), abs=1e-6)


# --- bad input ---------------------------------------------------------------

def test_bad_arguments_are_named():
    boxes = torch.rand(3, 4)
    with pytest.raises(ValueError, match='mode'):
        aligned_iou(boxes, boxes, 'fiou')
    with pytest.raises(ValueError, match='style'):
        aligned_iou(boxes, boxes, 'iou', 'keras')
    with pytest.raises(ValueError, match="'siou'.*yolo"):
        aligned_iou(boxes, boxes, 'siou', 'yolo')
    with pytest.raises(ValueError, match='pred must have last dimension 4'):
        aligned_iou(torch.rand(3, 5), boxes)
    with pytest.raises(ValueError, match='target must have last dimension 4'):
        aligned_iou(boxes, torch.rand(3))
    with pytest.raises(ValueError, match='target .* does not broadcast'):
        aligned_iou(boxes, torch.rand(2, 4))
    with pytest.raises(TypeError, match='pred must be a torch.Tensor'):
        aligned_iou([[0, 0, 1, 1]], boxes)
    with pytest.raises(TypeError, match='target must be a floating-point tensor'):
        aligned_iou(boxes, torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='eps'):
        aligned_iou(boxes, boxes, eps=-1.0)
    with pytest.raises(TypeError, match='eps'):
        aligned_iou(boxes, boxes, eps='small')
    with pytest.raises(TypeError, match='neg_gamma'):
        aligned_iou(boxes, boxes, 'siou', neg_gamma=1)

"""Tests of YOLOv3Loss (keras-yolo3 / darknet / PyTorch-YOLOv3 styles)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from yolo_losses import build_loss

STYLES = ('keras', 'darknet', 'pytorch_yolov3')
KEYS = ('loss_xy', 'loss_wh', 'loss_obj', 'loss_cls')
ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119),
           (116, 90), (156, 198), (373, 326))
STRIDES = (8, 16, 32)


def make_loss(style='keras', num_classes=2, **kwargs):
    return build_loss(dict(type='YOLOv3Loss', num_classes=num_classes, style=style,
                           **kwargs))


def bce(z, t):
    """BCE with logits, written out: max(z, 0) - z*t + log(1 + exp(-|z|))."""
    return max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def logit(p):
    return math.log(p / (1.0 - p))


def plain_wh_iou(w1, h1, w2, h2):
    inter = min(w1, w2) * min(h1, h2)
    return inter / (w1 * h1 + w2 * h2 - inter)


def level_preds(batch, num_classes, img=(64, 64), seed=0, requires_grad=False):
    """Random raw outputs whose boxes are tiny (wh logits -4): no accidental
    ignore; the tests craft the predictions that should be ignored."""
    gen = torch.Generator().manual_seed(seed)
    preds = []
    for stride in STRIDES:
        h, w = img[0] // stride, img[1] // stride
        p = torch.randn(batch, 3, 5 + num_classes, h, w, generator=gen)
        p[:, :, 2:4] = -4.0
        preds.append(p)
    return preds


def flat(preds, requires_grad=True):
    return [p.reshape(p.shape[0], -1, *p.shape[-2:]).clone().requires_grad_(requires_grad)
            for p in preds]


def values(out):
    return {k: float(v.detach()) for k, v in out.items()}


# --------------------------------------------------------------------------
# Hand-built cases: every term written out from the reference's formula.
# --------------------------------------------------------------------------
# Image 0 of 2 (image 1 has no boxes), 64x64 input (grids 8, 4, 2), C = 2:
#   A: class 1, (0.3, 0.45, 0.25, 0.3) -> 16 x 19.2 px -> anchor (16, 30)
#      (level 0, anchor 1), cell x = floor(2.4) = 2, y = floor(3.6) = 3;
#   C: class 0, (0.31, 0.44, 0.26, 0.29) -> the same slot; canonical order
#      (class first) puts it before A, so A owns the box target and the
#      slot's classes are {0, 1};
#   B: class 0, (0.7, 0.6, 0.8, 0.7) -> 51.2 x 44.8 px -> anchor (62, 45)
#      (level 1, anchor 1), cell (2, 2) of the 4x4 grid.
# Crafted predictions: level 0, anchor 2, cell (2, 3) decodes to exactly A;
# level 0, anchor 0, cell (5, 4) decodes to exactly B.
BOX_A = (0.3, 0.45, 0.25, 0.3)
BOX_B = (0.7, 0.6, 0.8, 0.7)
BOX_C = (0.31, 0.44, 0.26, 0.29)
HAND_TARGETS = torch.tensor([[0, 1, *BOX_A], [0, 0, *BOX_B], [0, 0, *BOX_C]])
POS_A = (0, 0, 1, 3, 2)       # level, image, anchor, y, x
POS_B = (1, 0, 1, 2, 2)
MATCHES_A = (0, 0, 2, 3, 2)   # prediction equal to box A
MATCHES_B = (0, 0, 0, 4, 5)   # prediction equal to box B (on the wrong level)


def hand_preds():
    preds = level_preds(2, 2, seed=1)
    p = preds[0]
    p[0, 2, 0, 3, 2], p[0, 2, 1, 3, 2] = logit(0.4), logit(0.6)     # (2.4, 3.6) / 8
    p[0, 2, 2, 3, 2], p[0, 2, 3, 3, 2] = math.log(16 / 33), math.log(19.2 / 23)
    p[0, 0, 0, 4, 5], p[0, 0, 1, 4, 5] = logit(0.6), logit(0.8)     # (5.6, 4.8) / 8
    p[0, 0, 2, 4, 5], p[0, 0, 3, 4, 5] = math.log(51.2 / 10), math.log(44.8 / 13)
    return preds


def test_hand_case_anchor_choice():
    """The best anchor of all nine (centred width/height IoU, pixels)."""
    def best(w, h):
        ious = [plain_wh_iou(w, h, aw, ah) for aw, ah in ANCHORS]
        return ious.index(max(ious))
    assert best(16, 19.2) == 1 and best(16.64, 18.56) == 1 and best(51.2, 44.8) == 4


def expected_keras_darknet(preds, style, xy_mse=False):
    """keras-yolo3 ``yolo_loss`` / darknet terms for the hand case."""
    ignored = {MATCHES_A} if style == 'keras' else {MATCHES_A, MATCHES_B}
    norm = 2.0 if style == 'keras' else 1.0           # keras divides by the batch
    pa = preds[0][0, 1, :, 3, 2].tolist()
    pb = preds[1][0, 1, :, 2, 2].tolist()
    sa, sb = 2 - 0.25 * 0.3, 2 - 0.8 * 0.7
    xy_term = (lambda z, t: (sig(z) - t) ** 2) if xy_mse else bce
    xy = (sa * (xy_term(pa[0], 0.3 * 8 - 2) + xy_term(pa[1], 0.45 * 8 - 3))
          + sb * (xy_term(pb[0], 0.7 * 4 - 2) + xy_term(pb[1], 0.6 * 4 - 2)))
    wh = (0.5 * sa * ((pa[2] - math.log(16 / 16)) ** 2 + (pa[3] - math.log(19.2 / 30)) ** 2)
          + 0.5 * sb * ((pb[2] - math.log(51.2 / 62)) ** 2
                        + (pb[3] - math.log(44.8 / 45)) ** 2))
    obj = 0.0
    for level, p in enumerate(preds):
        for b in range(2):
            for a in range(3):
                for y in range(p.shape[3]):
                    for x in range(p.shape[4]):
                        key = (level, b, a, y, x)
                        z = float(p[b, a, 4, y, x])
                        if key in (POS_A, POS_B):
                            obj += bce(z, 1.0)
                        elif key not in ignored:
                            obj += bce(z, 0.0)
    cls = bce(pa[5], 1.0) + bce(pa[6], 1.0) + bce(pb[5], 1.0) + bce(pb[6], 0.0)
    return {'loss_xy': xy / norm, 'loss_wh': wh / norm, 'loss_obj': obj / norm,
            'loss_cls': cls / norm}


@pytest.mark.parametrize('style', ['keras', 'darknet'])
def test_hand_case_keras_darknet(style):
    preds = hand_preds()
    out = make_loss(style)(flat(preds, False), HAND_TARGETS)
    expected = expected_keras_darknet(preds, style)
    for key in KEYS:
        assert float(out[key].detach()) == pytest.approx(expected[key], rel=1e-5), key


def test_hand_case_keras_with_mse_xy_part():
    """A regression part for xy gets sigmoid(x), as its docstring says."""
    preds = hand_preds()
    loss = make_loss('keras', loss_xy=dict(type='MSELoss', reduction='mean'))
    out = loss(flat(preds, False), HAND_TARGETS)
    expected = expected_keras_darknet(preds, 'keras', xy_mse=True)
    assert float(out['loss_xy'].detach()) == pytest.approx(expected['loss_xy'], rel=1e-5)


def test_keras_and_darknet_differ_only_by_ignore_and_batch_division():
    preds = hand_preds()
    keras = values(make_loss('keras')(flat(preds, False), HAND_TARGETS))
    darknet = values(make_loss('darknet')(flat(preds, False), HAND_TARGETS))
    for key in ('loss_xy', 'loss_wh', 'loss_cls'):
        assert darknet[key] == pytest.approx(2 * keras[key], rel=1e-6)
    # darknet also ignores the prediction matching B on level 0
    z = float(preds[0][MATCHES_B[1], MATCHES_B[2], 4, MATCHES_B[3], MATCHES_B[4]])
    assert darknet['loss_obj'] == pytest.approx(2 * keras['loss_obj'] - bce(z, 0.0), rel=1e-6)


def test_darknet_gradient_is_negated_yolo_layer_delta():
    """Autograd of the darknet style equals -l.delta of forward_yolo_layer
    (yolo_layer.c, MSE box loss), built here slot by slot."""
    preds = hand_preds()
    leaves = flat(preds)
    out = make_loss('darknet')(leaves, HAND_TARGETS)
    sum(out.values()).backward()
    ignored = {MATCHES_A, MATCHES_B}
    sa, sb = 2 - 0.25 * 0.3, 2 - 0.8 * 0.7
    # slot -> (scale, tx, ty, tw, th, classes)
    positives = {POS_A: (sa, 0.3 * 8 - 2, 0.45 * 8 - 3, math.log(16 / 16),
                         math.log(19.2 / 30), {0, 1}),
                 POS_B: (sb, 0.7 * 4 - 2, 0.6 * 4 - 2, math.log(51.2 / 62),
                         math.log(44.8 / 45), {0})}
    for level, p in enumerate(preds):
        delta = torch.zeros_like(p, dtype=torch.float64)
        for b in range(2):
            for a in range(3):
                for y in range(p.shape[3]):
                    for x in range(p.shape[4]):
                        key = (level, b, a, y, x)
                        raw = p[b, a, :, y, x].tolist()
                        if key not in ignored:
                            delta[b, a, 4, y, x] = 0 - sig(raw[4])
                        if key in positives:
                            scale, tx, ty, tw, th, classes = positives[key]
                            delta[b, a, 0, y, x] = scale * (tx - sig(raw[0]))
                            delta[b, a, 1, y, x] = scale * (ty - sig(raw[1]))
                            delta[b, a, 2, y, x] = scale * (tw - raw[2])
                            delta[b, a, 3, y, x] = scale * (th - raw[3])
                            delta[b, a, 4, y, x] = 1 - sig(raw[4])
                            for c in range(2):
                                delta[b, a, 5 + c, y, x] = float(c in classes) - sig(raw[5 + c])
        grad = leaves[level].grad.view_as(p).double()
        torch.testing.assert_close(grad, -delta, rtol=1e-5, atol=1e-6)


# 50 x 70 px in a 128 x 128 input: on level 1 both (62, 45) (best, IoU 0.557)
# and (30, 61) (IoU 0.523) exceed 0.5, so the second is no negative.
BOX_D = (0.6, 0.3, 50 / 128, 70 / 128)


@pytest.mark.parametrize('box,size,box_scale', [(BOX_A, 64, False), (BOX_A, 64, True),
                                                (BOX_D, 128, False)])
def test_hand_case_pytorch_yolov3(box, size, box_scale):
    """PyTorch-YOLOv3 build_targets + YOLOLayer for one box in one image:
    positive at the best anchor of every level (grid units), MSE means over
    the one positive, noobj 100 x mean over the negatives (anchors of the
    box's cell with shape IoU > 0.5 excluded), class BCE mean over 2
    classes."""
    preds = level_preds(1, 2, img=(size, size), seed=2)
    cx, cy, w, h = box
    targets = torch.tensor([[0, 1, cx, cy, w, h]])
    out = make_loss('pytorch_yolov3', box_scale=box_scale)(flat(preds, False), targets)
    expected = dict.fromkeys(KEYS, 0.0)
    scale = (2 - w * h) if box_scale else 1.0
    shape_ignored = 0
    for level, (p, stride) in enumerate(zip(preds, STRIDES)):
        grid = size // stride
        gw, gh = w * grid, h * grid
        anchors = [(aw / stride, ah / stride) for aw, ah in ANCHORS[3 * level:3 * level + 3]]
        ious = [plain_wh_iou(gw, gh, aw, ah) for aw, ah in anchors]
        best = ious.index(max(ious))
        i, j = int(cx * grid), int(cy * grid)
        raw = p[0, best, :, j, i].tolist()
        tx, ty = cx * grid - i, cy * grid - j
        tw, th = math.log(gw / anchors[best][0]), math.log(gh / anchors[best][1])
        expected['loss_xy'] += scale * ((sig(raw[0]) - tx) ** 2 + (sig(raw[1]) - ty) ** 2)
        expected['loss_wh'] += scale * ((raw[2] - tw) ** 2 + (raw[3] - th) ** 2)
        negatives = []
        for a in range(3):
            for y in range(grid):
                for x in range(grid):
                    at_cell = (y, x) == (j, i)
                    if at_cell and (a == best or ious[a] > 0.5):
                        shape_ignored += a != best
                        continue
                    negatives.append(bce(float(p[0, a, 4, y, x]), 0.0))
        expected['loss_obj'] += bce(raw[4], 1.0) + 100 * sum(negatives) / len(negatives)
        expected['loss_cls'] += (bce(raw[5], 0.0) + bce(raw[6], 1.0)) / 2
    assert shape_ignored == (1 if box is BOX_D else 0)
    for key in KEYS:
        assert float(out[key].detach()) == pytest.approx(expected[key], rel=1e-5), key


# --------------------------------------------------------------------------
# Seeded realistic batches against transliterations of the originals.
# --------------------------------------------------------------------------
def make_batch(seed, batch=2, num_classes=4, img=(64, 64), max_per_image=8, collide=True):
    """Seeded batch: preds (float32 [B, A*(5+C), H, W] per level), targets
    float32 [N, 6] in shuffled row order. One colliding box per image (same
    cell and anchor, other class), and half of the boxes get near-correct
    predictions at their cell, so the ignore masks have work to do."""
    rng = np.random.default_rng(seed)
    ih, iw = img
    preds = []
    for s in STRIDES:
        h, w = math.ceil(ih / s), math.ceil(iw / s)
        p = rng.normal(0.0, 1.0, size=(batch, 3, 5 + num_classes, h, w))
        p[:, :, 2:4] *= 0.6
        p[:, :, 4] -= 1.0
        preds.append(p.reshape(batch, 3 * (5 + num_classes), h, w).astype(np.float32))
    rows = []
    for b in range(batch):
        n = int(rng.integers(0, max_per_image + 1)) if b else max_per_image
        for _ in range(n):
            w = math.exp(rng.uniform(math.log(4), math.log(0.9 * iw))) / iw
            h = min(0.98, w * iw * math.exp(rng.normal(0, 0.5)) / ih)
            cx = rng.uniform(w / 2, 1 - w / 2)
            cy = rng.uniform(h / 2, 1 - h / 2)
            rows.append([b, rng.integers(num_classes), cx, cy, w, h])
        if collide and n:
            r = list(rows[-1])
            r[1] = (r[1] + 1) % num_classes
            r[4] *= 1.05
            r[5] *= 0.97
            rows.append(r)
    anchors = np.array(ANCHORS, dtype=np.float64)
    for r in rows[::2]:
        b = int(r[0])
        for level, s in enumerate(STRIDES):
            p = preds[level].reshape(batch, 3, 5 + num_classes, *preds[level].shape[-2:])
            h, w = p.shape[-2:]
            i, j = min(int(r[2] * w), w - 1), min(int(r[3] * h), h - 1)
            for a in range(3):
                off = np.clip(np.array([r[2] * w - i, r[3] * h - j]) + rng.normal(0, 0.05, 2),
                              0.02, 0.98)
                p[b, a, 0:2, j, i] = np.log(off / (1 - off))
                p[b, a, 2:4, j, i] = np.log(np.array([r[4] * iw, r[5] * ih])
                                            / anchors[3 * level + a]) + rng.normal(0, 0.15, 2)
            preds[level] = p.reshape(preds[level].shape).astype(np.float32)
    t = np.array(rows, dtype=np.float32).reshape(-1, 6)
    t = t[rng.permutation(len(t))]
    return preds, t


SEEDED_CASES = {1: dict(seed=1, batch=2, num_classes=4, img=(64, 64)),
                2: dict(seed=2, batch=3, num_classes=3, img=(96, 128)),
                3: dict(seed=3, batch=2, num_classes=5, img=(64, 96), max_per_image=12)}

# expected: scratch transliterations of the originals, run in float64 on the
# batches above (boxes fed in the canonical order, cells clamped to the grid):
#   keras: qqwweee/keras-yolo3 master yolo3/model.py preprocess_true_boxes +
#          yolo_loss (TF ops rewritten in torch, TF's sigmoid-CE formula);
#   darknet: pjreddie darknet src/yolo_layer.c forward_yolo_layer in plain
#          loops (gradients = -l.delta; values = the BCE / 0.5*scale*sq terms
#          whose gradients those deltas are);
#   pytorch_yolov3: eriklindernoren PyTorch-YOLOv3 utils.build_targets +
#          models.YOLOLayer (nn.MSELoss / nn.BCELoss on sigmoid outputs).
# Per level the gradient summary of sum(losses) w.r.t. preds[level] is
# (sum, sum of squares, dot with rng(123) normals, argmax |g| index, g there).
EXPECTED = {
    'keras': [
        (1, {'loss_xy': 7.865728365346723, 'loss_wh': 1.4803653181276797,
             'loss_obj': 107.38880853058312, 'loss_cls': 16.537669292232955},
         [(62.1330251088532, 18.954718222013753, -1.9841263495825785, 211, 1.075861498627423),
          (13.432626109243325, 3.3763815887667783, 0.074641389757782, 798, 0.4249376293962665),
          (3.3881239579985243, 0.7090969331254617, -0.4423351168964761, 198, 0.44744985358558803)]),
        (2, {'loss_xy': 15.07609961520023, 'loss_wh': 4.058980332787604,
             'loss_obj': 312.1324512813682, 'loss_cls': 18.66384940334019},
         [(171.11522739930564, 31.619987215395884, -5.789660080557583, 429, 1.393342798738747),
          (43.16293682005899, 7.686998199911413, 2.7014430888071326, 2821, 0.49127264439988794),
          (10.56667950538995, 1.3622463920205456, -0.43692196936092, 533, 0.2448122848144237)]),
        (3, {'loss_xy': 22.54039502567496, 'loss_wh': 9.67955063619999,
             'loss_obj': 152.5294943569689, 'loss_cls': 33.96299551524734},
         [(91.22802373992126, 37.504361373025645, 6.157598088998916, 3181, 1.7431556463510156),
          (22.71134053458628, 11.684950782517316, -2.313025934486308, 326, -1.477374197274517),
          (5.031054304687152, 0.883831180569809, 1.3887875358515616, 27, 0.34404995389533366)]),
    ],
    'darknet': [
        (1, {'loss_xy': 15.731456730693447, 'loss_wh': 2.9607306362553594,
             'loss_obj': 209.88748534907887, 'loss_cls': 33.07533858446591},
         [(125.43972191940762, 76.38453759558243, -4.076060003917746, 211, 2.151722997254846),
          (24.878799819170432, 12.561426290440746, 1.5076631721903913, 798, 0.849875258792533),
          (4.912934955392087, 1.6194674422883564, -1.233394691231382, 89, 0.6160372381301465)]),
        (2, {'loss_xy': 45.22829884560068, 'loss_wh': 12.176940998362813,
             'loss_obj': 926.0656343000475, 'loss_cls': 55.99154821002057},
         [(514.4353680795405, 284.83250652514863, -15.323672420763472, 429, 4.180028396216241),
          (125.92660754391999, 68.24262110606416, 5.965187856310555, 2821, 1.473817933199664),
          (26.09837479307405, 9.90771067845132, -1.7663517742653094, 533, 0.734436854443271)]),
        (3, {'loss_xy': 45.08079005134991, 'loss_wh': 19.35910127239998,
             'loss_obj': 296.0434186119015, 'loss_cls': 67.9259910304947},
         [(182.21624332772421, 149.78736665707203, 13.432495540472356, 3181, 3.486311292702031),
          (41.93952092087841, 44.98661798852058, -7.390673842300602, 326, -2.954748394549034),
          (7.42294710069129, 2.4560103790069787, 1.9044639055798323, 29, 0.5758064222229685)]),
    ],
    'pytorch_yolov3': [
        (1, {'loss_xy': 0.034897924511663264, 'loss_wh': 0.7974698903731502,
             'loss_obj': 132.8557598927535, 'loss_cls': 2.2334133380488277},
         [(31.168730135737412, 3.6529957006081686, 1.1532868941319026, 1408, 0.24037247813127308),
          (30.57185158034939, 15.42790864665392, 0.12294140528445663, 798, 0.9657673395369692),
          (29.322817952310423, 67.49894703662571, -6.0649103710718775, 198, 4.47449853585588)]),
        (2, {'loss_xy': 0.25246518858947736, 'loss_wh': 4.809529157886908,
             'loss_obj': 125.57105853524739, 'loss_cls': 2.5322384457734155},
         [(29.948782058690327, 0.9053488109523173, -1.113399033635936, 429, 0.2097921957783261),
          (32.30078084848488, 3.6056169429859057, 2.624408954932128, 155, 0.44689902275013477),
          (30.852971736858994, 12.934361054219295, -2.880061276161814, 533, 0.7983009287426857)]),
        (3, {'loss_xy': 0.34672634292203575, 'loss_wh': 7.248306700925262,
             'loss_obj': 115.71821776192394, 'loss_cls': 2.2310248257666183},
         [(29.825065582609206, 2.316363722142424, 2.110480600855397, 3181, 0.20591017647270923),
          (31.686264361026588, 11.04963405454434, 0.16094420425645373, 1079, 0.6051570399488052),
          (28.576163944358445, 31.9988448973396, 5.062661234280128, 147, 1.9503988717463179)]),
    ],
}


@pytest.mark.parametrize('style,index', [(s, i) for s in STYLES for i in range(3)])
def test_seeded_batches_match_reference(style, index):
    seed, expected_values, expected_grads = EXPECTED[style][index]
    case = SEEDED_CASES[seed]
    preds, targets = make_batch(**case)
    leaves = [torch.from_numpy(p).requires_grad_() for p in preds]
    out = make_loss(style, case['num_classes'])(leaves, torch.from_numpy(targets),
                                                img_size=case['img'])
    for key in KEYS:
        assert float(out[key].detach()) == pytest.approx(expected_values[key], rel=2e-6), key
    sum(out.values()).backward()
    for leaf, (g_sum, g_sq, g_proj, k, g_k) in zip(leaves, expected_grads):
        grad = leaf.grad.double().reshape(-1)
        proj = torch.from_numpy(np.random.default_rng(123).normal(size=grad.shape))
        assert float(grad.sum()) == pytest.approx(g_sum, rel=1e-5, abs=1e-4)
        assert float((grad ** 2).sum()) == pytest.approx(g_sq, rel=1e-5)
        assert float((grad * proj).sum()) == pytest.approx(g_proj, rel=1e-5, abs=1e-4)
        assert float(grad[k]) == pytest.approx(g_k, rel=1e-5, abs=1e-6)


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------
@pytest.mark.parametrize('style', STYLES)
def test_row_order_independence(style):
    preds, targets = make_batch(**SEEDED_CASES[1])
    loss = make_loss(style, 4)
    results = []
    for order in (np.arange(len(targets)), np.random.default_rng(5).permutation(len(targets)),
                  np.arange(len(targets))[::-1].copy()):
        leaves = [torch.from_numpy(p).requires_grad_() for p in preds]
        out = loss(leaves, torch.from_numpy(targets[order]))
        sum(out.values()).backward()
        results.append((out, [leaf.grad for leaf in leaves]))
    for out, grads in results[1:]:
        for key in KEYS:
            assert torch.equal(out[key], results[0][0][key]), key
        for grad, first in zip(grads, results[0][1]):
            assert torch.equal(grad, first)


@pytest.mark.parametrize('style', STYLES)
@pytest.mark.parametrize('max_boxes', [None, 0, 3])
def test_empty_targets(style, max_boxes):
    preds = level_preds(2, 3, seed=4)
    leaves = flat(preds)
    out = make_loss(style, 3)(leaves, torch.zeros(0, 6), max_boxes=max_boxes)
    for key in ('loss_xy', 'loss_wh', 'loss_cls'):
        assert float(out[key].detach()) == 0.0
    # every slot is a negative: softplus(o) = BCE(o, 0)
    per_level = [F.softplus(p[:, :, 4].double()) for p in preds]
    if style == 'keras':
        expected = sum(float(s.sum()) for s in per_level) / 2
    elif style == 'darknet':
        expected = sum(float(s.sum()) for s in per_level)
    else:
        expected = sum(100 * float(s.mean()) for s in per_level)
    assert float(out['loss_obj']) == pytest.approx(expected, rel=1e-5)
    sum(out.values()).backward()
    assert all(torch.isfinite(leaf.grad).all() for leaf in leaves)


@pytest.mark.parametrize('style', STYLES)
def test_image_without_boxes_gets_only_negatives(style):
    preds = hand_preds()
    leaves = flat(preds)
    out = make_loss(style)(leaves, HAND_TARGETS)
    sum(out.values()).backward()
    for leaf in leaves:
        grad = leaf.grad.view(2, 3, 7, *leaf.shape[-2:])[1]        # image 1: no boxes
        assert torch.count_nonzero(grad[:, [0, 1, 2, 3, 5, 6]]) == 0
        assert torch.all(grad[:, 4] > 0)                            # pushed towards 0


def test_box_exactly_on_cell_border():
    """cx = 0.5, cy = 0.25 are cell borders of every level: the box belongs to
    the cell on its lower-right, offsets 0."""
    preds = level_preds(1, 2, seed=6)
    w, h = 16 / 64, 19.2 / 64                                       # anchor (16, 30)
    targets = torch.tensor([[0, 0, 0.5, 0.25, w, h]])
    out = make_loss('keras')(flat(preds, False), targets)
    raw = preds[0][0, 1, :, 2, 4].tolist()                          # cell x = 4, y = 2
    scale = 2 - w * h
    assert float(out['loss_xy'].detach()) == pytest.approx(scale * (bce(raw[0], 0.0)
                                                           + bce(raw[1], 0.0)), rel=1e-5)
    # on the right/bottom image border the centre stays in the last cell
    edge = torch.tensor([[0, 0, 1.0, 1.0, w, h]])
    out = make_loss('keras')(flat(preds, False), edge)
    raw = preds[0][0, 1, :, 7, 7].tolist()
    assert float(out['loss_xy'].detach()) == pytest.approx(scale * (bce(raw[0], 1.0)
                                                           + bce(raw[1], 1.0)), rel=1e-5)


@pytest.mark.parametrize('style', STYLES)
def test_500_boxes_in_one_image(style):
    rng = np.random.default_rng(7)
    size = rng.uniform(0.02, 0.6, size=(500, 2))
    centre = rng.uniform(0, 1, size=(500, 2))
    rows = np.concatenate([np.zeros((500, 1)), rng.integers(0, 3, (500, 1)), centre, size], 1)
    targets = torch.tensor(rows, dtype=torch.float32)
    leaves = flat(level_preds(2, 3, seed=8))
    out = make_loss(style, 3)(leaves, targets, max_boxes=500)
    assert all(torch.isfinite(v) for v in out.values())
    assert all(float(v) > 0 for v in out.values())
    sum(out.values()).backward()
    assert all(torch.isfinite(leaf.grad).all() for leaf in leaves)


@pytest.mark.parametrize('style', STYLES)
def test_one_class(style):
    preds, targets = make_batch(seed=9, num_classes=1)
    targets[:, 1] = 0
    leaves = [torch.from_numpy(p).requires_grad_() for p in preds]
    out = make_loss(style, 1)(leaves, torch.from_numpy(targets))
    assert all(torch.isfinite(v) for v in out.values())
    assert float(out['loss_cls']) > 0                               # kept with one class
    sum(out.values()).backward()
    assert all(torch.isfinite(leaf.grad).all() for leaf in leaves)


def _raise(*args, **kwargs):
    raise AssertionError('host-device synchronisation')


@pytest.mark.parametrize('style', STYLES)
def test_no_host_sync(style, monkeypatch):
    preds, targets = make_batch(**SEEDED_CASES[1])
    loss = make_loss(style, 4, validate=False)
    leaves = [torch.from_numpy(p).requires_grad_() for p in preds]
    targets = torch.from_numpy(targets)
    with torch.no_grad():
        reference = loss(leaves, targets)
    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, _raise)
    monkeypatch.setattr(torch, 'nonzero', _raise)
    out = loss(leaves, targets, max_boxes=9)
    total = out['loss_xy'] + out['loss_wh'] + out['loss_obj'] + out['loss_cls']
    total.backward()
    monkeypatch.undo()
    for key in KEYS:
        assert torch.equal(out[key].detach(), reference[key])


@pytest.mark.parametrize('style', STYLES)
def test_float64_and_bfloat16_autocast(style):
    preds, targets = make_batch(**SEEDED_CASES[2])
    targets = torch.from_numpy(targets)
    loss = make_loss(style, 3)
    ref = loss([torch.from_numpy(p) for p in preds], targets)
    out64 = loss([torch.from_numpy(p).double() for p in preds], targets.double())
    for key in KEYS:
        assert out64[key].dtype == torch.float64
        assert float(out64[key]) == pytest.approx(float(ref[key]), rel=1e-5)
    # an autocast head outputs bfloat16; the loss works in float32 on those values
    low = [torch.from_numpy(p).bfloat16().requires_grad_() for p in preds]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out16 = loss(low, targets)
    rounded = loss([p.detach().float() for p in low], targets)
    for key in KEYS:
        assert out16[key].dtype == torch.float32
        assert torch.isfinite(out16[key])
        assert float(out16[key]) == pytest.approx(float(rounded[key]), rel=1e-5)
    sum(out16.values()).backward()
    assert all(torch.isfinite(p.grad.float()).all() for p in low)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------
def good_inputs():
    return flat(level_preds(2, 2, seed=10), False), HAND_TARGETS.clone()


@pytest.mark.parametrize('style', STYLES)
def test_bad_inputs(style):
    loss = make_loss(style)
    preds, targets = good_inputs()
    with pytest.raises(ValueError, match='preds has 2 levels'):
        loss(preds[:2], targets)
    with pytest.raises(TypeError, match='preds must be a list'):
        loss(preds[0], targets)
    with pytest.raises(ValueError, match=r'preds\[1\] must be'):
        loss([preds[0], preds[1][:, :-1], preds[2]], targets)
    with pytest.raises(ValueError, match=r'targets must be \[N, 6\]'):
        loss(preds, targets[:, :5])
    for column, value, message in ((1, 2, 'class id'), (1, -1, 'class id'),
                                   (0, 2, 'batch index'), (4, -0.1, r'w, h')):
        bad = targets.clone()
        bad[0, column] = value
        with pytest.raises(ValueError, match=message):
            loss(preds, bad)
    bad = targets.clone()
    bad[1, 2] = float('nan')
    with pytest.raises(ValueError, match='targets contains NaN'):
        loss(preds, bad)
    bad_preds = [p.clone() for p in preds]
    bad_preds[2][0, 0, 0, 0] = float('inf')
    with pytest.raises(ValueError, match=r'preds\[2\] contains infinite'):
        loss(bad_preds, targets)
    with pytest.raises(ValueError, match='max_boxes=2 is smaller'):
        loss(preds, targets, max_boxes=2)
    with pytest.raises(TypeError, match='max_boxes'):
        loss(preds, targets, max_boxes=-1)
    with pytest.raises(ValueError, match='img_size'):
        loss(preds, targets, img_size=(96, 64))


def test_bad_config():
    with pytest.raises(ValueError, match='style'):
        make_loss('yolov3')
    with pytest.raises(ValueError, match='num_classes'):
        make_loss('keras', 0)
    with pytest.raises(ValueError, match='strides'):
        make_loss('keras', strides=(8, 16))
    with pytest.raises(ValueError, match='loss_obj'):
        make_loss('keras', loss_obj=dict(type='CrossEntropyLoss', use_sigmoid=True,
                                         reduction='none'))
    with pytest.raises(ValueError, match='assigner style'):
        make_loss('keras', assigner=dict(type='YOLOv3Assigner', style='darknet'))
    with pytest.raises(ValueError, match='noobj_scale'):
        make_loss('keras', noobj_scale=-1)


def test_validation_off_skips_value_checks():
    loss = make_loss('keras', validate=False)
    preds, targets = good_inputs()
    bad = targets.clone()
    bad[0, 1] = 7                         # out of range: not checked, no error
    out = loss(preds, bad, max_boxes=3)
    assert all(torch.isfinite(v) for v in out.values())


def test_parts_are_swappable_configs():
    """A FocalLoss for classes (and objectness) builds from config and runs."""
    loss = make_loss('keras', loss_cls=dict(type='FocalLoss', use_sigmoid=True,
                                            reduction='mean'))
    preds, targets = good_inputs()
    out = loss(preds, targets)
    assert type(loss.loss_cls).__name__ == 'FocalLoss'
    assert all(torch.isfinite(v) for v in out.values())

"""End-to-end losses (YOLO26 / YOLOv10) and their pieces against ultralytics
8.4.190: ``YOLOv8Loss(reg_max=1)`` (``loss_l1``), ``TaskAlignedAssigner(topk2)``,
class weights and ``class_weights_from_counts``, ``E2ELoss`` (progressive at
several epochs, constant = ``E2EDetectLoss``), gradients included.

Expected numbers: ultralytics 8.4.190 (PyPI) run in a scratch venv outside
the repository on the inputs that ``make_case`` / ``assigner_inputs`` build
here (same numpy draws), target rows sorted by (image, class, cx, cy, w, h)
for ultralytics (our ``pad_targets`` order; ultralytics needs them grouped
by image). Loss values are ultralytics' loss items (gain-scaled, not times
the batch size); gradients are of ``total / B`` for ``v8DetectionLoss`` and
of the ultralytics ``E2ELoss`` / ``E2EDetectLoss`` total (which is times B)
for the end-to-end cases: per level (sum, sum of squares, flat index of the
largest |entry|, that entry).
"""
import math

import numpy as np
import pytest
import torch

import yolo_losses
from yolo_losses import build_loss, class_weights_from_counts
from yolo_losses.assigners.task_aligned_assigner import TaskAlignedAssigner
from yolo_losses.losses.e2e_loss import E2ELoss, yolo26_loss, yolov10_loss
from yolo_losses.losses.yolov8_loss import YOLOv8Loss

STRIDES = (8, 16, 32)


def make_levels(rng, batch, nc, img_hw, reg_max, strides=STRIDES, scale=1.0):
    """One ``[B, 4*reg_max + C, H, W]`` float32 array per level; with reg_max
    1 the distances are N(1.5, 1) grid units (some negative), else bin logits
    favouring short distances; class logits N(-1, 1)."""
    levels = []
    for s in strides:
        h, w = -(-img_hw[0] // s), -(-img_hw[1] // s)
        if reg_max == 1:
            dist = rng.normal(1.5, 1.0, size=(batch, 4, h, w))
        else:
            dist = rng.normal(0.0, scale, size=(batch, 4 * reg_max, h, w))
            dist -= 0.3 * np.tile(np.arange(reg_max), 4)[None, :, None, None]
        cls = rng.normal(-1.0, scale, size=(batch, nc, h, w))
        levels.append(np.concatenate((dist, cls), axis=1).astype(np.float32))
    return levels


def make_targets(rng, batch, nc, nboxes=(2, 5), small=False):
    rows = []
    for b in range(batch):
        for _ in range(int(rng.integers(nboxes[0], nboxes[1] + 1))):
            cls = int(rng.integers(0, nc))
            cx, cy = rng.uniform(0.15, 0.85, size=2)
            w, h = rng.uniform(0.03, 0.2, size=2) if small else rng.uniform(0.08, 0.6, size=2)
            rows.append([b, cls, cx, cy, w, h])
    t = np.asarray(rows, dtype=np.float32).reshape(-1, 6)
    return t[rng.permutation(len(t))]


def make_case(seed, batch, nc, img_hw, reg_max, branches=1, small=False):
    """``branches`` lists of levels, then ``[N, 6]`` targets (rows shuffled)."""
    rng = np.random.default_rng(seed)
    preds = [make_levels(rng, batch, nc, img_hw, reg_max) for _ in range(branches)]
    targets = make_targets(rng, batch, nc, small=small)
    return preds, targets


def leaves(levels, dtype=torch.float32):
    return [torch.tensor(p, dtype=dtype, requires_grad=True) for p in levels]


def check_grads(levels, expected, rel=2e-5):
    for level, (pred, (g_sum, g_sq, index, value)) in enumerate(zip(levels, expected)):
        grad = pred.grad.double()
        assert grad.sum().item() == pytest.approx(g_sum, rel=rel, abs=1e-6), level
        assert (grad ** 2).sum().item() == pytest.approx(g_sq, rel=rel), level
        assert grad.flatten()[index].item() == pytest.approx(value, rel=1e-4, abs=1e-7), level


# expected: ultralytics 8.4.190 (see the module docstring)
V8_REFERENCE = {
    'r1_square': (
        (4.706357002258301, 21.7845458984375, 0.13048319518566132),
        [(11.292655910642505, 1.3335467035597268, 181, -0.364775687456131),
         (3.6684998155783473, 0.24440548840924214, 33, 0.1931939721107483),
         (0.6755963811355665, 0.02807756785679264, 51, 0.07481256127357483)]),
    'r1_small_nonsquare': (
        (4.862795352935791, 105.61932373046875, 0.09336566925048828),
        [(59.295675918629016, 13.784675334294914, 824, -0.7053592801094055),
         (15.258902639760544, 3.4403362533608863, 277, 0.3974665105342865),
         (3.346407836303115, 0.5853106937239801, 66, 0.3410026431083679)]),
    'r1_topk2': (
        (4.909209728240967, 58.083709716796875, 0.13064411282539368),
        [(30.26853386964649, 5.0410904009500594, 529, -0.7791574001312256),
         (8.658908933866769, 1.0621254321200844, 197, 0.2554183304309845),
         (1.7961244732141495, 0.18782658851452, 21, 0.1914312094449997)]),
    'r1_topk2_small': (
        (4.897342205047607, 99.2001953125, 0.12014764547348022),
        [(58.49949405810313, 11.80246263375126, 338, 0.4369750916957855),
         (13.177267925813794, 2.3954675519696793, 83, 0.3826461732387543),
         (3.7602720111608505, 0.863760615730907, 47, 0.4039337933063507)]),
    'r1_class_weights': (
        (4.9187211990356445, 39.12596893310547, 0.14404717087745667),
        [(22.13846333894914, 2.5965765322240917, 550, 0.33408981561660767),
         (5.496246608541323, 0.5773111536637883, 89, 0.22235392034053802),
         (1.8887535968832396, 0.2507648119252526, 22, 0.23448531329631805)]),
    'r16_class_weights': (
        (4.174947261810303, 15.708818435668945, 3.6326513290405273),
        [(8.951120760061631, 0.8710502176697452, 4334, 0.2357475608587265),
         (2.107328668353167, 0.1452296038526864, 1036, 0.13800105452537537),
         (0.5334818130359055, 0.04298708216861373, 258, 0.13929696381092072)]),
    'r16_topk2': (
        (4.5007781982421875, 42.61405944824219, 3.401688575744629),
        [(23.578826202421013, 2.456745127363938, 3085, 0.30663013458251953),
         (5.975821704603732, 0.5038818406291826, 2112, 0.177715465426445),
         (1.653045604005456, 0.16038514800290193, 526, 0.19606512784957886)]),
}

E2E_REFERENCE = {
    'e2e_k0': dict(
        o2m=0.8, o2o=0.19999999999999996,
        total=64.49276733398438, items=(3.786942481994629, 30.871990203857422, 0.11378183960914612),
        grads_o2m=[(20.896472996250075, 3.182743960449602, 689, -0.37531477212905884),
                   (6.3758262880242, 0.6851672130271749, 165, 0.2343439906835556),
                   (1.3543685339391232, 0.12113463424440624, 18, 0.17069768905639648)],
        grads_o2o=[(6.260073635727167, 0.31923651842386014, 617, -0.15674464404582977),
                   (1.7625695853494108, 0.040894925640573496, 110, 0.049462731927633286),
                   (0.4494338210206479, 0.011676890416316199, 19, 0.050182782113552094)],
    ),
    'e2e_k1': dict(
        o2m=0.7222222222222222, o2o=0.2777777777777778,
        total=64.98399353027344, items=(3.786942481994629, 30.871990203857422, 0.11378183960914612),
        grads_o2m=[(18.86487083556537, 2.593961078032333, 689, -0.33882588148117065),
                   (5.755954178093049, 0.5584165406093264, 165, 0.21156054735183716),
                   (1.2226938307285309, 0.0987256660759682, 18, 0.15410208702087402)],
        grads_o2o=[(8.694547438630252, 0.6158112555912114, 617, -0.21770088374614716),
                   (2.448013518936932, 0.07888682975317252, 110, 0.06869824230670929),
                   (0.6242136866785586, 0.022524869031436662, 19, 0.06969831138849258)],
    ),
    'e2e_k4': dict(
        o2m=0.48888888888888893, o2o=0.5111111111111111,
        total=66.45770263671875, items=(3.786942481994629, 30.871990203857422, 0.11378183960914612),
        grads_o2m=[(12.770067109501976, 1.1886175027013057, 689, -0.22935903072357178),
                   (3.896338406001874, 0.2558803697337049, 165, 0.14321021735668182),
                   (0.8276697034016252, 0.045238556964919185, 18, 0.10431525856256485)],
        grads_o2o=[(15.997966711758636, 2.0848905734929777, 617, -0.4005695879459381),
                   (4.504344716668129, 0.26707923100069386, 110, 0.1264047622680664),
                   (1.1485531539656222, 0.07626019313040129, 19, 0.12824489176273346)],
    ),
    'e2e_k9': dict(
        o2m=0.1, o2o=0.9,
        total=68.9138412475586, items=(3.786942481994629, 30.871990203857422, 0.11378183960914612),
        grads_o2m=[(2.6120591245312594, 0.04973037438202503, 689, -0.046914346516132355),
                   (0.796978286003025, 0.010705737703549607, 165, 0.02929299883544445),
                   (0.1692960667423904, 0.0018927286600688474, 18, 0.02133721113204956)],
        grads_o2o=[(28.170330190798268, 6.4645395758773585, 617, -0.7053508758544922),
                   (7.931562889367342, 0.828122193084549, 110, 0.22258228063583374),
                   (2.0224521411582828, 0.23645701929593604, 19, 0.22582250833511353)],
    ),
    'e2e_k12': dict(
        o2m=0.1, o2o=0.9,
        total=68.9138412475586, items=(3.786942481994629, 30.871990203857422, 0.11378183960914612),
        grads_o2m=[(2.6120591245312594, 0.04973037438202503, 689, -0.046914346516132355),
                   (0.796978286003025, 0.010705737703549607, 165, 0.02929299883544445),
                   (0.1692960667423904, 0.0018927286600688474, 18, 0.02133721113204956)],
        grads_o2o=[(28.170330190798268, 6.4645395758773585, 617, -0.7053508758544922),
                   (7.931562889367342, 0.828122193084549, 110, 0.22258228063583374),
                   (2.0224521411582828, 0.23645701929593604, 19, 0.22582250833511353)],
    ),
    'e2e_detect': dict(
        total=163.92916870117188, items=(9.179676055908203, 66.132080078125, 6.652832984924316),
        grads_o2m=[(26.23523809563327, 3.8220355452535886, 7389, 0.46821433305740356),
                   (7.281946793185412, 0.7487078318322228, 1027, 0.19836975634098053),
                   (1.7772306855767965, 0.16359885615176412, 532, 0.15185275673866272)],
        grads_o2o=[(47.750022341745535, 9.580569023968122, 4374, 0.47783342003822327),
                   (11.737117286771536, 1.9047946993476483, 2105, 0.3436633348464966),
                   (2.8008533976972103, 0.4329626918162664, 531, 0.2668279707431793)],
    ),
}

ASSIGNER_REFERENCE = {
    'topk7_topk21': [(0, 5, 2, 0.5521392226219177),
        (0, 10, 0, 0.49288880825042725),
        (0, 27, 3, 0.47396478056907654),
        (0, 37, 1, 0.22354872524738312),
        (1, 18, 1, 0.437131404876709),
        (1, 21, 0, 0.6743915677070618),
        (1, 38, 2, 0.6610837578773499)],
    'topk7_topk23': [(0, 1, 0, 0.10922171920537949),
        (0, 5, 2, 0.5521392226219177),
        (0, 6, 2, 0.00942943710833788),
        (0, 8, 0, 0.017770791426301003),
        (0, 10, 0, 0.49288880825042725),
        (0, 13, 2, 0.026738697662949562),
        (0, 19, 3, 0.020066998898983),
        (0, 26, 3, 0.021774007007479668),
        (0, 27, 3, 0.47396478056907654),
        (0, 28, 1, 0.09589549899101257),
        (0, 29, 1, 0.13422363996505737),
        (0, 37, 1, 0.22354872524738312),
        (1, 17, 1, 0.030348267406225204),
        (1, 18, 1, 0.437131404876709),
        (1, 20, 0, 0.000690674118231982),
        (1, 21, 0, 0.6743915677070618),
        (1, 25, 1, 0.03305387496948242),
        (1, 29, 0, 0.004752832930535078),
        (1, 30, 2, 0.04342804476618767),
        (1, 37, 2, 0.09204056859016418),
        (1, 38, 2, 0.6610837578773499)],
    'topk5_topk2None': [(0, 1, 0, 0.10922171920537949),
        (0, 4, 2, 0.0005556835676543415),
        (0, 5, 2, 0.5521392226219177),
        (0, 6, 2, 0.00942943710833788),
        (0, 8, 0, 0.017770791426301003),
        (0, 9, 0, 0.003944437950849533),
        (0, 10, 0, 0.49288880825042725),
        (0, 13, 2, 0.026738697662949562),
        (0, 14, 2, 0.0010081140790134668),
        (0, 17, 0, 0.0004984111874364316),
        (0, 18, 3, 0.01939891278743744),
        (0, 19, 3, 0.020066998898983),
        (0, 26, 3, 0.021774007007479668),
        (0, 27, 3, 0.47396478056907654),
        (0, 28, 1, 0.09589549899101257),
        (0, 29, 1, 0.13422363996505737),
        (0, 30, 1, 0.005642363801598549),
        (0, 37, 1, 0.22354872524738312),
        (0, 38, 1, 0.00606111902743578),
        (1, 17, 1, 0.030348267406225204),
        (1, 18, 1, 0.437131404876709),
        (1, 19, 1, 0.0019829575903713703),
        (1, 20, 0, 0.000690674118231982),
        (1, 21, 0, 0.6743915677070618),
        (1, 25, 1, 0.03305387496948242),
        (1, 26, 1, 0.007421075366437435),
        (1, 28, 0, 0.00012073136167600751),
        (1, 29, 0, 0.004752832930535078),
        (1, 30, 2, 0.04342804476618767),
        (1, 31, 2, 0.0024404930882155895),
        (1, 37, 2, 0.09204056859016418),
        (1, 38, 2, 0.6610837578773499),
        (1, 39, 2, 0.006142318714410067)],
}

CLASS_WEIGHTS_REFERENCE = [
    ([10, 0, 5, 1], 0.5, [0.5379726886749268, 1.0, 0.7608082890510559, 1.7012189626693726]),
    ([3, 3, 3], 1.0, [1.0, 1.0, 1.0]),
    ([100, 7, 0, 0, 2], 1.0, [0.045951854437589645, 0.6564551591873169, 1.0, 1.0, 2.297592878341675]),
    ([4, 1], 0.25, [0.8284270763397217, 1.1715728044509888]),
    ([0, 2, 0], 0.7, [1.0, 1.0, 1.0]),
]


# ------------------------------------------- YOLOv8Loss reg_max 1, topk2, class weights
V8_CASES = {
    # name: (make_case kwargs, assigner (topk, topk2), class weights)
    'r1_square': (dict(seed=10, batch=2, nc=3, img_hw=(64, 64), reg_max=1), (10, None), None),
    'r1_small_nonsquare': (dict(seed=11, batch=2, nc=2, img_hw=(64, 96), reg_max=1,
                                small=True), (10, None), None),
    'r1_topk2': (dict(seed=12, batch=2, nc=3, img_hw=(64, 64), reg_max=1), (7, 1), None),
    'r1_topk2_small': (dict(seed=13, batch=2, nc=3, img_hw=(64, 64), reg_max=1, small=True),
                       (7, 2), None),
    'r1_class_weights': (dict(seed=14, batch=2, nc=3, img_hw=(64, 64), reg_max=1), (10, None),
                         [0.5, 2.0, 1.25]),
    'r16_class_weights': (dict(seed=15, batch=2, nc=3, img_hw=(64, 64), reg_max=16),
                          (10, None), [1.5, 0.25, 0.0]),
    'r16_topk2': (dict(seed=16, batch=2, nc=3, img_hw=(64, 64), reg_max=16), (10, 3), None),
}


def build_v8(name, **kwargs):
    kw, (topk, topk2), weights = V8_CASES[name]
    return YOLOv8Loss(num_classes=kw['nc'], reg_max=kw['reg_max'], class_weights=weights,
                      assigner=dict(type='TaskAlignedAssigner', topk=topk, topk2=topk2,
                                    alpha=0.5, beta=6.0), **kwargs)


@pytest.mark.parametrize('name', list(V8_CASES))
def test_yolov8_loss_matches_ultralytics(name):
    # expected: ultralytics 8.4.190 v8DetectionLoss(tal_topk, tal_topk2) with
    # model.class_weights, loss items (box, cls, dfl-or-l1) and the gradient
    # of its total / B
    kw = V8_CASES[name][0]
    (levels,), targets = make_case(**kw)
    preds = leaves(levels)
    loss = build_v8(name)
    out = loss(preds, torch.from_numpy(targets))
    keys = ('loss_box', 'loss_cls', 'loss_l1' if kw['reg_max'] == 1 else 'loss_dfl')
    assert list(out) == list(keys)
    items, grads = V8_REFERENCE[name]
    for key, expected in zip(keys, items):
        assert out[key].item() == pytest.approx(expected, rel=2e-6), key
    sum(out.values()).backward()
    check_grads(preds, grads)


def test_reg_max_1_by_the_formula():
    # One 2x2 level (stride 8, 16x16 input), two classes, one box whose small
    # side is widened to 8 px by the assigner, so the positive point at (4, 12)
    # lies left of the real box: its target left distance is negative and
    # kept (ultralytics clamps nothing with reg_max 1).
    pred = torch.full((1, 6, 2, 2), 0.8, dtype=torch.float64)   # l, t, r, b, grid units
    pred[0, 0, 1, 0] = 0.4                    # point (4, 12): left 0.4 ...
    pred[0, 1, 1, 0] = 0.6
    pred[0, 2, 1, 0] = 1.2
    pred[0, 3, 1, 0] = 0.4
    pred[0, 4:6] = -2.0
    pred.requires_grad_()
    # box x in [5, 7], y in [10, 14] px: 2 px wide, widened to 8 for candidates
    targets = torch.tensor([[0, 1, 6 / 16, 12 / 16, 2 / 16, 4 / 16]], dtype=torch.float64)
    loss = YOLOv8Loss(num_classes=2, strides=(8,), reg_max=1,
                      assigner=dict(type='TaskAlignedAssigner', topk=1, alpha=0.5,
                                    beta=6.0, strides=(8,)))
    prepared = loss.assign([pred], targets)
    fg = prepared.assignment.fg_mask[0]
    assert fg.tolist() == [False, False, True, False]   # point (4, 12) only
    score = prepared.assignment.scores[0, 2, 1].item()
    # written out: the point (0.5, 1.5) grid units, stride 8
    d_pred = np.array([0.4, 0.6, 1.2, 0.4]) * 8
    d_target = np.array([4 - 5, 12 - 10, 7 - 4, 14 - 12], dtype=float)
    assert d_target[0] < 0
    size = np.array([16, 16, 16, 16])
    # weighted by the point's target score, divided by max(score sum, 1)
    l1 = np.abs(d_pred / size - d_target / size).mean() * score / max(score, 1.0) * 1.5
    out = loss([pred], targets)
    # (rel 1e-6: the part divides by 4 S + eps, mmdet's avg_factor eps)
    assert out['loss_l1'].item() == pytest.approx(l1, rel=1e-6)
    # gradient of loss_l1 alone: 1.5 * sign(d) / 4 * stride / size per side
    pred.grad = None
    out['loss_l1'].backward()
    expected = 1.5 * score / max(score, 1.0) * np.sign(d_pred - d_target) / 4 * 8 / 16
    assert pred.grad[0, 0:4, 1, 0].numpy() == pytest.approx(expected, rel=1e-6)
    assert pred.grad[0, 0:4].abs().sum().item() == pytest.approx(np.abs(expected).sum())


def assigner_inputs():
    """The ultralytics scratch script's inputs of the topk2 cases."""
    rng = np.random.default_rng(30)
    B, N, C, M = 2, 40, 3, 4
    xs, ys = np.meshgrid(np.arange(8) * 8 + 4.0, np.arange(5) * 8 + 4.0)
    points = np.stack((xs.ravel(), ys.ravel()), 1).astype(np.float32)
    scores = rng.uniform(0.05, 0.95, size=(B, N, C)).astype(np.float32)
    centres = points[None] + rng.normal(0, 2.0, size=(B, N, 2))
    sizes = rng.uniform(6, 30, size=(B, N, 2))
    pred = np.concatenate((centres - sizes / 2, centres + sizes / 2), -1).astype(np.float32)
    gt_c = rng.uniform(8, 56, size=(B, M, 2))
    gt_c[..., 1] = rng.uniform(6, 34, size=(B, M))
    gt_s = rng.uniform(8, 30, size=(B, M, 2))
    gt = np.concatenate((gt_c - gt_s / 2, gt_c + gt_s / 2), -1).astype(np.float32)
    labels = rng.integers(0, C, size=(B, M))
    mask = np.ones((B, M), dtype=bool)
    mask[1, 3] = False
    gt[1, 3] = 0
    return [torch.from_numpy(x) for x in (scores, pred, points, labels, gt, mask)]


@pytest.mark.parametrize('key', list(ASSIGNER_REFERENCE))
def test_topk2_assigner_matches_ultralytics(key):
    # expected: ultralytics 8.4.190 TaskAlignedAssigner(topk, topk2, alpha 0.5,
    # beta 6, stride [8, 16, 32]): (image, point, box slot, target score sum)
    # of every positive point
    topk, topk2 = key.split('_')
    topk = int(topk[4:])
    topk2 = None if topk2 == 'topk2None' else int(topk2[5:])
    assigner = TaskAlignedAssigner(topk=topk, topk2=topk2, alpha=0.5, beta=6.0)
    result = assigner(*assigner_inputs())
    positives = result.fg_mask.nonzero().tolist()
    expected = ASSIGNER_REFERENCE[key]
    assert positives == [[b, n] for b, n, _, _ in expected]
    for (b, n, slot, score) in expected:
        assert result.gt_index[b, n].item() == slot
        assert result.scores[b, n].sum().item() == pytest.approx(score, rel=1e-5, abs=1e-9)
    if topk2 is not None:
        # each box keeps at most topk2 positives
        for b in range(2):
            counts = torch.bincount(result.gt_index[b][result.fg_mask[b]], minlength=4)
            assert counts.max().item() <= topk2


def test_topk2_equal_to_topk_changes_nothing():
    inputs = assigner_inputs()
    plain = TaskAlignedAssigner(topk=5)(*inputs)
    same = TaskAlignedAssigner(topk=5, topk2=5)(*inputs)
    for a, b in zip(plain, same):
        assert torch.equal(a, b)


@pytest.mark.parametrize('topk2', [0, -1, 1.0, True])
def test_topk2_bad_values(topk2):
    with pytest.raises(ValueError, match='topk2'):
        TaskAlignedAssigner(topk=7, topk2=topk2)


# ------------------------------------------------------------------ class weights
@pytest.mark.parametrize('counts, power, expected', CLASS_WEIGHTS_REFERENCE)
def test_class_weights_from_counts_matches_ultralytics(counts, power, expected):
    # expected: ultralytics 8.4.190 DetectionTrainer.compute_class_weights +
    # set_class_weights (float32 numpy) on a stand-in trainer; [0, 2, 0] with
    # 0.7: its model.class_weights after the call
    weights = class_weights_from_counts(counts, power)
    assert weights.dtype == torch.float32 and weights.shape == (len(counts),)
    assert weights.tolist() == pytest.approx(expected, rel=1e-6)


def test_class_weights_from_counts_by_hand():
    # counts (4, 1, 0), power 1: w = (1/4, 1, mean 0.625) -> / mean(0.625)
    assert class_weights_from_counts([4, 1, 0], 1.0).tolist() == pytest.approx(
        [0.4, 1.6, 1.0])
    # power 0 and no labels at all: ones (ultralytics keeps no weights)
    assert class_weights_from_counts([4, 1, 0], 0).tolist() == [1.0, 1.0, 1.0]
    assert class_weights_from_counts(np.zeros(3), 0.5).tolist() == [1.0, 1.0, 1.0]
    assert class_weights_from_counts(torch.tensor([2.0, 8.0]), 0.5).tolist() == \
        pytest.approx([4 / 3, 2 / 3])


@pytest.mark.parametrize('counts, power, error, match', [
    ([1, -1], 1.0, ValueError, 'counts'),
    ([1, float('nan')], 1.0, ValueError, 'counts'),
    ([], 1.0, ValueError, 'counts'),
    ([[1, 2]], 1.0, ValueError, 'counts'),
    ('ab', 1.0, TypeError, 'counts'),
    ([1, 2], -0.5, ValueError, 'power'),
    ([1, 2], float('inf'), ValueError, 'power'),
    ([1, 2], None, ValueError, 'power'),
])
def test_class_weights_from_counts_bad_input(counts, power, error, match):
    with pytest.raises(error, match=match):
        class_weights_from_counts(counts, power)


def test_class_weights_buffer_and_setter():
    loss = YOLOv8Loss(num_classes=3, reg_max=1)
    assert 'class_weights' in loss.state_dict()
    assert loss.class_weights.tolist() == [1.0, 1.0, 1.0]
    loss.set_class_weights([0.5, 2.0, 1.25])
    assert loss.class_weights.tolist() == [0.5, 2.0, 1.25]
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    for bad, error in (([1.0, 2.0], ValueError), ([1.0, -2.0, 1.0], ValueError),
                       ([1.0, float('inf'), 1.0], ValueError), ('abc', TypeError)):
        with pytest.raises(error, match='class_weights'):
            loss.set_class_weights(bad)
        for k, v in loss.state_dict().items():
            assert torch.equal(v, before[k])
    loss.set_class_weights(None)
    assert loss.class_weights.tolist() == [1.0, 1.0, 1.0]
    # ultralytics keeps its class weights as a numpy array
    loss.set_class_weights(np.array([0.25, 1.5, 1.25]))
    assert loss.class_weights.tolist() == [0.25, 1.5, 1.25]
    with pytest.raises(ValueError, match='class_weights'):
        loss.set_class_weights(np.ones((3, 1)))


def test_class_weights_survive_a_state_dict_round_trip():
    # the loss with weights loaded from a checkpoint computes the weighted
    # class loss (the ones-shortcut is refreshed on load)
    name = 'r1_class_weights'
    (levels,), targets = make_case(**V8_CASES[name][0])
    fresh = YOLOv8Loss(num_classes=3, reg_max=1,
                       assigner=dict(type='TaskAlignedAssigner', topk=10))
    fresh.load_state_dict(build_v8(name).state_dict())
    out = fresh(leaves(levels), torch.from_numpy(targets))
    assert out['loss_cls'].item() == pytest.approx(V8_REFERENCE[name][0][1], rel=2e-6)
    # and back to ones
    fresh.load_state_dict(YOLOv8Loss(num_classes=3, reg_max=1).state_dict())
    plain = YOLOv8Loss(num_classes=3, reg_max=1)(leaves(levels), torch.from_numpy(targets))
    assert fresh(leaves(levels), torch.from_numpy(targets))['loss_cls'].item() == \
        plain['loss_cls'].item()


def test_class_weights_by_the_formula_on_the_class_loss():
    # class weights multiply each class's BCE, positives and negatives alike:
    # the class loss with weights (a, b, c) is the sum of per-class losses
    # computed with weight 1 on that class only
    name = 'r16_class_weights'
    (levels,), targets = make_case(**V8_CASES[name][0])
    targets = torch.from_numpy(targets)
    parts = []
    for c in range(3):
        one_hot = [0.0, 0.0, 0.0]
        one_hot[c] = 1.0
        parts.append(YOLOv8Loss(num_classes=3, class_weights=one_hot)(
            leaves(levels), targets)['loss_cls'].item())
    weights = [1.5, 0.25, 0.0]
    weighted = YOLOv8Loss(num_classes=3, class_weights=weights)(leaves(levels), targets)
    assert weighted['loss_cls'].item() == pytest.approx(
        sum(w * p for w, p in zip(weights, parts)), rel=1e-6)


# ----------------------------------------------------------------------- E2ELoss
E2E_EPOCHS = 10
E2E_CASE = dict(seed=20, batch=2, nc=3, img_hw=(64, 64), reg_max=1, branches=2)
E2E_DETECT_CASE = dict(seed=21, batch=2, nc=3, img_hw=(64, 64), reg_max=16, branches=2)
O2M_KEYS = ('loss_box_o2m', 'loss_cls_o2m', 'loss_l1_o2m')
O2O_KEYS = ('loss_box_o2o', 'loss_cls_o2o', 'loss_l1_o2o')


def e2e_inputs(case):
    (o2m, o2o), targets = make_case(**case)
    return leaves(o2m), leaves(o2o), torch.from_numpy(targets)


@pytest.mark.parametrize('epoch', [0, 1, 4, 9, 12])
def test_yolo26_e2e_loss_matches_ultralytics(epoch):
    # expected: ultralytics 8.4.190 E2ELoss (hyp.epochs 10) after `epoch`
    # update() calls: its total (times B), its loss items (the one-to-one
    # branch, unweighted) and the gradients of its total
    ref = E2E_REFERENCE[f'e2e_k{epoch}']
    loss = build_loss(yolo26_loss(3, num_epochs=E2E_EPOCHS))
    loss.set_epoch(epoch)
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    out = loss(dict(one2many=o2m, one2one=o2o), targets)
    assert list(out) == list(O2M_KEYS + O2O_KEYS)
    w_o2m, w_o2o = loss.branch_weights()
    assert w_o2m.item() == pytest.approx(ref['o2m'], rel=1e-12)
    assert w_o2o.item() == pytest.approx(ref['o2o'], rel=1e-12)
    batch = E2E_CASE['batch']
    total = sum(out.values()) * batch
    assert total.item() == pytest.approx(ref['total'], rel=2e-6)
    if ref['o2o'] > 0:
        for key, item in zip(O2O_KEYS, ref['items']):
            assert out[key].item() / ref['o2o'] == pytest.approx(item, rel=2e-6), key
    else:
        for key in O2O_KEYS:
            assert out[key].item() == 0.0
    total.backward()
    check_grads(o2m, ref['grads_o2m'])
    check_grads(o2o, ref['grads_o2o'])


def test_yolov10_constant_matches_ultralytics_e2e_detect_loss():
    # expected: ultralytics 8.4.190 E2EDetectLoss (v8DetectionLoss with
    # tal_topk 10 and 1, reg_max 16): total (times B), its items (the sum of
    # both branches' items) and the gradients of its total
    ref = E2E_REFERENCE['e2e_detect']
    loss = build_loss(yolov10_loss(3))
    loss.set_epoch(7)          # constant: no effect
    o2m, o2o, targets = e2e_inputs(E2E_DETECT_CASE)
    out = loss(dict(one2many=o2m, one2one=o2o), targets)
    assert set(out) == {'loss_box_o2m', 'loss_cls_o2m', 'loss_dfl_o2m',
                        'loss_box_o2o', 'loss_cls_o2o', 'loss_dfl_o2o'}
    assert [w.item() for w in loss.branch_weights()] == [1.0, 1.0]
    total = sum(out.values()) * E2E_DETECT_CASE['batch']
    assert total.item() == pytest.approx(ref['total'], rel=2e-6)
    for part, item in zip(('box', 'cls', 'dfl'), ref['items']):
        both = out[f'loss_{part}_o2m'] + out[f'loss_{part}_o2o']
        assert both.item() == pytest.approx(item, rel=2e-6), part
    total.backward()
    check_grads(o2m, ref['grads_o2m'])
    check_grads(o2o, ref['grads_o2o'])


def test_branches_equal_their_own_losses():
    # each suffixed term is the branch loss called alone, times its weight
    loss = build_loss(yolo26_loss(3, num_epochs=E2E_EPOCHS))
    loss.set_epoch(3)
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    out = loss(dict(one2many=o2m, one2one=o2o), targets)
    w_o2m = max(1 - 3 / 9, 0) * 0.7 + 0.1
    alone_o2m = loss.one2many(o2m, targets)
    alone_o2o = loss.one2one(o2o, targets)
    for key, value in alone_o2m.items():
        assert out[key + '_o2m'].item() == pytest.approx(value.item() * w_o2m, rel=1e-6)
    for key, value in alone_o2o.items():
        assert out[key + '_o2o'].item() == pytest.approx(value.item() * (1 - w_o2m),
                                                          rel=1e-6)


def progressive(k, epochs, start=0.8, end=0.1):
    """DESIGN.md's formula, written out."""
    w_o2m = max(1 - k / max(epochs - 1, 1), 0) * (start - end) + end
    return w_o2m, max(1 - w_o2m, 0)


@pytest.mark.parametrize('epochs, k, expected_o2m', [
    (10, 0, 0.8), (10, 1, 0.8 - 0.7 / 9), (10, 9, 0.1), (10, 20, 0.1),
    (300, 150, 0.7 * (1 - 150 / 299) + 0.1), (1, 0, 0.8), (1, 1, 0.1), (2, 1, 0.1),
])
def test_progressive_formula(epochs, k, expected_o2m):
    loss = E2ELoss(dict(type='YOLOv8Loss', num_classes=2, reg_max=1),
                   dict(type='YOLOv8Loss', num_classes=2, reg_max=1))
    loss.set_epoch(k, epochs)
    w_o2m, w_o2o = loss.branch_weights()
    assert w_o2m.item() == pytest.approx(expected_o2m, abs=1e-12)
    assert w_o2o.item() == pytest.approx(1 - expected_o2m, abs=1e-12)
    assert (w_o2m.item(), w_o2o.item()) == pytest.approx(progressive(k, epochs), abs=1e-15)


def test_progressive_custom_weights():
    loss = E2ELoss(dict(type='YOLOv8Loss', num_classes=2, reg_max=1),
                   dict(type='YOLOv8Loss', num_classes=2, reg_max=1),
                   o2m_weights=(1.5, 0.5), num_epochs=5)
    for k, o2m in ((0, 1.5), (2, 1.0), (4, 0.5)):
        loss.set_epoch(k)
        w_o2m, w_o2o = loss.branch_weights()
        assert (w_o2m.item(), w_o2o.item()) == pytest.approx((o2m, max(1 - o2m, 0)))


def small_e2e(**kwargs):
    return build_loss(dict(yolo26_loss(3), **kwargs))


def test_resume_gives_the_uninterrupted_weights_and_losses():
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    uninterrupted = small_e2e(num_epochs=E2E_EPOCHS)
    interrupted = small_e2e()                       # horizon from set_epoch
    for epoch in range(4):
        uninterrupted.set_epoch(epoch)
        interrupted.set_epoch(epoch, E2E_EPOCHS)
    checkpoint = interrupted.state_dict()
    assert checkpoint['epoch'].item() == 3 and checkpoint['num_epochs'].item() == E2E_EPOCHS
    resumed = small_e2e()                            # fresh process, no num_epochs
    resumed.load_state_dict(checkpoint)
    for epoch in range(4, 8):
        uninterrupted.set_epoch(epoch)
        resumed.set_epoch(epoch)                     # E comes from the checkpoint
        a = uninterrupted(dict(one2many=o2m, one2one=o2o), targets)
        b = resumed(dict(one2many=o2m, one2one=o2o), targets)
        assert {k: v.item() for k, v in a.items()} == {k: v.item() for k, v in b.items()}
    # a re-run epoch (ultralytics' NaN recovery calls update() again) does
    # not move the schedule: set_epoch is a position, not an increment
    resumed.set_epoch(7)
    resumed.set_epoch(7)
    assert [w.item() for w in resumed.branch_weights()] == \
        pytest.approx(progressive(7, E2E_EPOCHS))


def state(loss):
    return {k: v.clone() for k, v in loss.state_dict().items()}


def assert_state(loss, before):
    after = loss.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k


@pytest.mark.parametrize('args, error, match', [
    ((-1,), ValueError, 'epoch'),
    ((1.0,), TypeError, 'epoch'),
    ((True,), TypeError, 'epoch'),
    ((torch.tensor(2),), TypeError, 'epoch'),
    ((2, 0), ValueError, 'num_epochs'),
    ((2, 2.5), TypeError, 'num_epochs'),
])
def test_failed_set_epoch_changes_nothing(args, error, match):
    loss = small_e2e(num_epochs=E2E_EPOCHS)
    loss.set_epoch(3)
    loss.set_class_weights([1.0, 2.0, 3.0])
    before = state(loss)
    with pytest.raises(error, match=match):
        loss.set_epoch(*args)
    assert_state(loss, before)


def test_progressive_needs_a_horizon_after_epoch_0():
    loss = small_e2e()
    loss.set_epoch(0)                              # the start weight needs no E
    assert [w.item() for w in loss.branch_weights()] == pytest.approx([0.8, 0.2])
    before = state(loss)
    with pytest.raises(ValueError, match='num_epochs'):
        loss.set_epoch(1)
    assert_state(loss, before)
    constant = build_loss(yolov10_loss(3))
    constant.set_epoch(5)                          # constant: no horizon needed
    assert constant.epoch.item() == 5


def test_failed_calls_change_nothing():
    loss = small_e2e(num_epochs=E2E_EPOCHS)
    loss.set_epoch(2)
    loss.set_class_weights([0.5, 1.0, 2.0])
    before = state(loss)
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    bad_calls = [
        (lambda: loss(dict(one2many=o2m), targets), KeyError, 'one2one'),
        (lambda: loss([o2m, o2o], targets), TypeError, 'preds'),
        (lambda: loss(dict(one2many=o2m, one2one=o2o, aux=o2o), targets), KeyError, 'aux'),
        (lambda: loss(dict(one2many=o2m, one2one=o2o[:2]), targets), ValueError, 'one2one'),
        (lambda: loss(dict(one2many=o2m[:2], one2one=o2m[:2]), targets), ValueError,
         r"preds\['one2many'\]: preds has 2 levels"),
        (lambda: loss(dict(one2many=[torch.full_like(o2m[0], float('inf'))] + o2m[1:],
                           one2one=o2o), targets), ValueError, r"preds\['one2many'\]"),
        (lambda: loss(dict(one2many=o2m, one2one=[o2o[0][:1]] + o2o[1:]), targets),
         ValueError, 'one2one'),
        (lambda: loss(dict(one2many=o2m, one2one=[p[..., :2, :2] for p in o2o]), targets),
         ValueError, 'one2one'),
        (lambda: loss(dict(one2many=o2m, one2one=[torch.full_like(o2o[0], float('nan'))]
                           + o2o[1:]), targets), ValueError, 'one2one'),
        (lambda: loss(dict(one2many=o2m, one2one=o2o), targets[:, :5]), ValueError, 'targets'),
        (lambda: loss(dict(one2many=o2m, one2one=o2o), targets, max_boxes=1), ValueError,
         'max_boxes'),
        (lambda: loss.set_class_weights([1.0, 2.0]), ValueError, 'class_weights'),
        (lambda: loss.set_class_weights([1.0, 2.0, -1.0]), ValueError, 'class_weights'),
    ]
    for call, error, match in bad_calls:
        with pytest.raises(error, match=match):
            call()
        assert_state(loss, before)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(schedule='linear'), ValueError, 'schedule'),
    (dict(o2m_weights=(0.8,)), ValueError, 'o2m_weights'),
    (dict(o2m_weights=(0.8, float('nan'))), ValueError, 'o2m_weights'),
    (dict(num_epochs=0), ValueError, 'num_epochs'),
    (dict(one2one=dict(type='YOLOv8Loss', num_classes=4, reg_max=1)), ValueError,
     'num_classes'),
    (dict(one2one=dict(type='YOLOv8Loss', num_classes=3, reg_max=1, strides=(8, 16))),
     ValueError, 'strides'),
    (dict(one2one='YOLOv8Loss'), TypeError, 'one2one'),
    (dict(one2many=dict(type='YOLOv8Los', num_classes=3)), KeyError, 'YOLOv8Loss'),
])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_loss(dict(yolo26_loss(3), **kwargs))


def test_class_weights_reach_both_branches():
    loss = small_e2e(num_epochs=E2E_EPOCHS)
    loss.set_class_weights([0.5, 2.0, 1.25])
    sd = loss.state_dict()
    assert sd['one2many.class_weights'].tolist() == [0.5, 2.0, 1.25]
    assert sd['one2one.class_weights'].tolist() == [0.5, 2.0, 1.25]
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    out = loss(dict(one2many=o2m, one2one=o2o), targets)
    alone = build_loss(dict(type='YOLOv8Loss', num_classes=3, reg_max=1,
                            class_weights=[0.5, 2.0, 1.25]))(o2m, targets)
    assert out['loss_cls_o2m'].item() == pytest.approx(alone['loss_cls'].item() * 0.8,
                                                        rel=1e-6)
    loss.set_class_weights(None)
    assert loss.one2one.class_weights.tolist() == [1.0, 1.0, 1.0]


def test_row_order_and_padding_do_not_matter():
    loss = small_e2e(num_epochs=E2E_EPOCHS, validate=False)
    loss.set_epoch(5)
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    preds = dict(one2many=o2m, one2one=o2o)
    base = {k: v.item() for k, v in loss(preds, targets).items()}
    flipped = loss(preds, targets.flip(0), max_boxes=9)
    for key, value in flipped.items():
        assert value.item() == pytest.approx(base[key], rel=1e-6, abs=1e-9), key


def test_empty_targets_give_finite_losses_and_zero_box_terms():
    loss = small_e2e(num_epochs=E2E_EPOCHS)
    o2m, o2o, _ = e2e_inputs(E2E_CASE)
    out = loss(dict(one2many=o2m, one2one=o2o), torch.zeros(0, 6))
    for key, value in out.items():
        assert torch.isfinite(value), key
        if 'cls' not in key:
            assert value.item() == 0.0, key
    sum(out.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in o2m + o2o)


def test_buffers_and_registry():
    loss = small_e2e(num_epochs=E2E_EPOCHS)
    assert isinstance(loss, E2ELoss)
    assert loss.state_dict()['epoch'].dtype == torch.long
    assert {'epoch', 'num_epochs'} <= set(dict(loss.named_buffers()))
    assert yolo_losses.MODELS.get('E2ELoss') is E2ELoss


@pytest.mark.parametrize('weights', [None, [0.5, 2.0, 0.0]])
@pytest.mark.parametrize('reg_max', [1, 16])
def test_one_hot_bce_equals_the_dense_class_part(reg_max, weights):
    # The default class part runs on the assigner's sparse targets; a part
    # config with the neutral positive-class weight 1 takes the part's dense
    # path: the same loss and gradient (float64, round-off only).
    name = 'r1_class_weights' if reg_max == 1 else 'r16_class_weights'
    (levels,), targets = make_case(**V8_CASES[name][0])
    targets = torch.from_numpy(targets).double()
    sparse = YOLOv8Loss(num_classes=3, reg_max=reg_max, class_weights=weights)
    dense = YOLOv8Loss(num_classes=3, reg_max=reg_max, class_weights=weights,
                       loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                                     class_weight=[1.0, 1.0, 1.0], loss_weight=0.5))
    assert sparse._one_hot_bce and not dense._one_hot_bce
    results = []
    for loss in (sparse, dense):
        preds = leaves(levels, torch.float64)
        out = loss(preds, targets)
        out['loss_cls'].backward()
        results.append((out, [p.grad for p in preds]))
    (a, grads_a), (b, grads_b) = results
    for key in a:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-12), key
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-14)
    # assign() still gives the dense targets, equal to the sparse ones
    assignment = sparse.assign(leaves(levels, torch.float64), targets).assignment
    assert assignment.scores.shape == (*assignment.point_scores.shape, 3)
    torch.testing.assert_close(assignment.scores.sum(-1), assignment.point_scores)


def test_checkpoint_without_class_weights_loads_as_ones():
    # a YOLOv8Loss state dict saved before the buffer existed
    old = YOLOv8Loss(num_classes=3).state_dict()
    del old['class_weights']
    loss = YOLOv8Loss(num_classes=3, class_weights=[2.0, 1.0, 1.0])
    loss.load_state_dict(old)
    assert loss.class_weights.tolist() == [1.0, 1.0, 1.0] and not loss.class_weighted


def test_assign_shares_targets_and_points_between_branches():
    loss = small_e2e(num_epochs=E2E_EPOCHS)
    o2m, o2o, targets = e2e_inputs(E2E_CASE)
    out = loss.assign(dict(one2many=o2m, one2one=o2o), targets)
    first, second = out['one2many'], out['one2one']
    # computed once, the same tensors in both bundles
    assert first.gt_boxes is second.gt_boxes and first.points is second.points
    # one-to-one: topk 7 then topk2 1 -> at most one positive per box
    for image in range(2):
        fg = second.assignment.fg_mask[image]
        slots = second.assignment.gt_index[image][fg]
        assert torch.bincount(slots).max().item() <= 1
    assert first.assignment.fg_mask.sum() > second.assignment.fg_mask.sum()

"""YOLOv5Loss against yolov5 7.0.14 ``ComputeLoss`` and hand-computed cases."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.yolov5_loss import YOLOv5Loss


def softplus(x: float) -> float:
    """BCE-with-logits against target 0: log(1 + exp(x))."""
    return math.log1p(math.exp(x))


def bce(x: float, t: float) -> float:
    return softplus(x) - x * t


def make_inputs(seed, batch, num_classes, grids, num_anchors, num_boxes,
                empty_images=(), scale=1.5):
    """Seeded raw head outputs ``[B, A*(5+C), H, W]`` and ``[N, 6]`` targets
    (the same generator produced the yolov5 reference numbers below)."""
    rng = np.random.default_rng(seed)
    preds = [(rng.standard_normal((batch, num_anchors * (5 + num_classes), h, w))
              * scale).astype(np.float32) for h, w in grids]
    image = rng.integers(0, batch, num_boxes)
    for e in empty_images:
        image = np.where(image == e, (e + 1) % batch, image)
    cls = rng.integers(0, num_classes, num_boxes)
    centre = rng.uniform(0.02, 0.98, (num_boxes, 2))
    size = rng.uniform(0.02, 0.6, (num_boxes, 2))
    targets = np.concatenate(
        [image[:, None], cls[:, None], centre, size], 1).astype(np.float32)
    return preds, targets


def build_case_loss(case, **overrides):
    """The YOLOv5Loss config equal to the yolov5 hyps of a reference case."""
    hyp = case.get('hyp', {})
    cfg = dict(type='YOLOv5Loss', num_classes=case['nc'],
               label_smoothing=hyp.get('label_smoothing', 0.0),
               cls_pw=hyp.get('cls_pw', 1.0), obj_pw=hyp.get('obj_pw', 1.0),
               autobalance=case.get('autobalance', False))
    for key in ('anchors', 'strides', 'gr'):
        if key in case:
            cfg[key] = case[key]
    if hyp.get('fl_gamma', 0) > 0:   # yolov5 wraps both BCEs in FocalLoss(gamma, 0.25)
        cfg['loss_cls'] = dict(type='FocalLoss', use_sigmoid=True, gamma=hyp['fl_gamma'],
                               alpha=0.25, loss_weight=0.5)
        cfg['loss_obj'] = dict(type='FocalLoss', use_sigmoid=True, gamma=hyp['fl_gamma'],
                               alpha=0.25, loss_weight=1.0)
    cfg.update(overrides)
    return build_loss(cfg)


def case_tensors(case, dtype=torch.float32):
    preds, targets = make_inputs(**case['inputs'])
    return ([torch.tensor(p, dtype=dtype, requires_grad=True) for p in preds],
            torch.tensor(targets, dtype=dtype))


# expected: yolov5 7.0.14 utils/loss.py ComputeLoss (torch 2.14.1, CPU) with a
# fake model (hyp = hyp.scratch-low plus the case's 'hyp'; Detect with the
# case's anchors / strides), computed once in a scratch venv, with
# ComputeLoss.sort_obj_iou = True (see test_objectness_collisions_*).
# loss_* are its (lbox, lobj, lcls); grads are of lbox + lobj + lcls (its
# returned loss divided by the batch size) with respect to each level's raw
# [B, A*(5+C), H, W] output: (sum, sum of squares, sum of |g|, three
# (flat index, value) entries of largest |g|, g[0, 4, 0, 0]); 'balance' is
# ComputeLoss.balance after the call. The cases: 'nonsquare' 96x128 input;
# 'four_levels' strides 8..64 with label smoothing 0.1, cls_pw 2, obj_pw 1.5,
# gr 0.5; 'autobalance' two successive calls, image 2 without boxes;
# 'one_class_crowded' nc = 1, 60 boxes on a 64x64 input (cells hit twice);
# 'crowd500' 500 boxes in one 96x96 image; 'two_anchors_two_levels' custom
# anchors; 'focal' fl_gamma 1.5.
REFERENCE = {
    'nonsquare': dict(
        case={'nc': 3, 'inputs': {'seed': 1, 'batch': 2, 'num_classes': 3, 'grids': [[12, 16], [6, 8], [3, 4]], 'num_anchors': 3, 'num_boxes': 12}},
        calls=[
            dict(loss_box=0.14878462255001068, loss_obj=4.84882926940918, loss_cls=1.272038459777832,
                 balance=[4.0, 1.0, 0.4],
                 grads=[
                     (2.041496741168918, 0.004680335015033262, 2.217988456464274, ((860, 0.003459774889051914), (8550, 0.0034380711149424314), (5560, 0.0034311560448259115)), 0.0006272481405176222),
                     (0.5654799510789719, 0.0017248859954862813, 0.7110435301204046, ((1404, 0.008490053936839104), (1452, -0.00688083516433835), (1884, 0.006034399848431349)), 0.000471424194984138),
                     (0.29351767424532227, 0.005349904483393995, 0.4709050047126766, ((65, 0.02422432042658329), (361, -0.023106791079044342), (354, 0.022358305752277374)), 0.0024000101257115602),
                 ]),
        ]),
    'four_levels': dict(
        case={'nc': 5, 'strides': [8, 16, 32, 64], 'anchors': [[[8, 10], [14, 20], [24, 18]], [[28, 50], [50, 36], [44, 90]], [[80, 70], [110, 140], [200, 160]], [[220, 300], [360, 240], [480, 420]]], 'hyp': {'label_smoothing': 0.1, 'cls_pw': 2.0, 'obj_pw': 1.5}, 'gr': 0.5, 'inputs': {'seed': 2, 'batch': 2, 'num_classes': 5, 'grids': [[16, 16], [8, 8], [4, 4], [2, 2]], 'num_anchors': 3, 'num_boxes': 20}},
        calls=[
            dict(loss_box=0.14463412761688232, loss_obj=5.032313346862793, loss_cls=1.6748168468475342,
                 balance=[4.0, 1.0, 0.25, 0.06, 0.02],
                 grads=[
                     (1.857975145281494, 0.003444177356473818, 2.2211106805720364, ((3714, -0.00259450008161366), (13979, 0.0025730144698172808), (8731, 0.0025610625743865967)), 0.0015877842670306563),
                     (0.36270643509507394, 0.0008882248467619885, 0.7171461960669454, ((2182, 0.0025499293114989996), (910, 0.0025454594288021326), (2188, 0.0025027086958289146)), 0.000551973411347717),
                     (0.1294051008550099, 0.0006025219152342078, 0.34548588440920014, ((574, 0.004294673912227154), (748, -0.0037130897399038076), (786, -0.0036103513557463884)), 0.0015125981299206614),
                     (0.03433435971965082, 6.028903247738208e-05, 0.03433435971965082, ((97, 0.0024444712325930595), (218, 0.002424749778583646), (57, 0.0022950060665607452)), 0.0019970808643847704),
                 ]),
        ]),
    'autobalance': dict(
        case={'nc': 2, 'autobalance': True, 'calls': 2, 'inputs': {'seed': 3, 'batch': 4, 'num_classes': 2, 'grids': [[8, 8], [4, 4], [2, 2]], 'num_anchors': 3, 'num_boxes': 16, 'empty_images': [2]}},
        calls=[
            dict(loss_box=0.14314624667167664, loss_obj=4.978314399719238, loss_cls=1.4508527517318726,
                 balance=[3.999673103246142, 1.0, 0.4000683762760778],
                 grads=[
                     (1.9368464941703003, 0.0069439584333776515, 2.230449889319015, ((3893, 0.005079432390630245), (2998, 0.005069455597549677), (4747, 0.0050596981309354305)), 0.0037366626784205437),
                     (0.4632014567878464, 0.002483306931675772, 0.7132833502943363, ((530, 0.008915474638342857), (546, -0.006419666111469269), (441, -0.005569223314523697)), 0.001220238278619945),
                     (0.2948098862934785, 0.021980830945735674, 0.45042415700572747, ((110, 0.11317311972379684), (106, -0.06412150710821152), (111, 0.06193913146853447)), 0.0044021001085639),
                 ]),
            dict(loss_box=0.14314624667167664, loss_obj=4.978072643280029, loss_cls=1.4508527517318726,
                 balance=[3.9993462420398243, 1.0, 0.40013674511675446],
                 grads=[
                     (1.9366881545988015, 0.006942884873848083, 2.2302894766962247, ((3893, 0.005079017486423254), (2998, 0.005069041159003973), (4747, 0.005059284623712301)), 0.00373635720461607),
                     (0.4632014567878464, 0.002483306931675772, 0.7132833502943363, ((530, 0.008915474638342857), (546, -0.006419666111469269), (441, -0.005569223314523697)), 0.001220238278619945),
                     (0.294843533493804, 0.02198118702765686, 0.45045780420605297, ((110, 0.11317311972379684), (106, -0.06412150710821152), (111, 0.06193913146853447)), 0.004402852617204189),
                 ]),
        ]),
    'one_class_crowded': dict(
        case={'nc': 1, 'inputs': {'seed': 4, 'batch': 2, 'num_classes': 1, 'grids': [[8, 8], [4, 4], [2, 2]], 'num_anchors': 3, 'num_boxes': 60}},
        calls=[
            dict(loss_box=0.1465846598148346, loss_obj=4.8998565673828125, loss_cls=0.0,
                 balance=[4.0, 1.0, 0.4],
                 grads=[
                     (1.6738824345344079, 0.011071773774669807, 1.772383415350081, ((266, 0.01026375312358141), (1829, 0.010228358209133148), (1027, 0.010203216224908829)), 0.007516905199736357),
                     (0.42004067373212983, 0.002615109862860388, 0.438984340352528, ((546, 0.01003794651478529), (453, 0.009540733881294727), (551, 0.009403206408023834)), 0.003830409375950694),
                     (0.1778715076293338, 0.001771953812164224, 0.1834805569301352, ((112, 0.014860093593597412), (17, 0.01461698953062296), (88, 0.012988091446459293)), 0.009710920974612236),
                 ]),
        ]),
    'crowd500': dict(
        case={'nc': 4, 'inputs': {'seed': 5, 'batch': 1, 'num_classes': 4, 'grids': [[12, 12], [6, 6], [3, 3]], 'num_anchors': 3, 'num_boxes': 500}},
        calls=[
            dict(loss_box=0.13957343995571136, loss_obj=4.909405708312988, loss_cls=1.4454066753387451,
                 balance=[4.0, 1.0, 0.4],
                 grads=[
                     (0.9932887964420112, 0.00645582712245377, 1.5711421607843632, ((615, 0.009030512534081936), (636, 0.008888747543096542), (600, 0.008760567754507065)), 0.0009453342063352466),
                     (0.38663681823134155, 0.0017501504560300514, 0.5029720783653282, ((486, 0.008765630424022675), (807, 0.008682752028107643), (480, 0.008472777903079987)), 0.0015545487403869629),
                     (0.28817811310474895, 0.0021869440767772223, 0.32813517962401306, ((205, 0.014096628874540329), (118, 0.012921982444822788), (123, 0.011349337175488472)), 0.009114183485507965),
                 ]),
        ]),
    'two_anchors_two_levels': dict(
        case={'nc': 3, 'strides': [8, 16], 'anchors': [[[12, 12], [20, 30]], [[40, 40], [60, 90]]], 'inputs': {'seed': 6, 'batch': 3, 'num_classes': 3, 'grids': [[10, 14], [5, 7]], 'num_anchors': 2, 'num_boxes': 9}},
        calls=[
            dict(loss_box=0.09182848036289215, loss_obj=4.585952281951904, loss_cls=0.7715274095535278,
                 balance=[4.0, 1.0, 0.25, 0.06, 0.02],
                 grads=[
                     (2.0683657120912144, 0.0067082344410575225, 2.2356300170165255, ((2874, 0.004728263709694147), (3924, 0.004713953472673893), (6247, 0.00471331924200058)), 0.004253161605447531),
                     (0.5219000409209542, 0.0023543433154383448, 0.7095071868758254, ((1382, 0.006716671399772167), (834, -0.006683503743261099), (235, -0.006360204890370369)), 0.001048702746629715),
                 ]),
        ]),
    'focal': dict(
        case={'nc': 4, 'hyp': {'fl_gamma': 1.5}, 'inputs': {'seed': 7, 'batch': 2, 'num_classes': 4, 'grids': [[8, 8], [4, 4], [2, 2]], 'num_anchors': 3, 'num_boxes': 10}},
        calls=[
            dict(loss_box=0.0992119088768959, loss_obj=2.341937303543091, loss_cls=0.31055086851119995,
                 balance=[4.0, 1.0, 0.4],
                 grads=[
                     (1.4286542127964772, 0.007980899348299451, 1.4706775403906107, ((1408, 0.008499238640069962), (3169, 0.00849683303385973), (1986, 0.008495071902871132)), 0.007758216932415962),
                     (0.4199203662441562, 0.0024518358071684812, 0.45881130178017315, ((215, 0.008478624746203423), (647, 0.008477315306663513), (358, 0.00847360398620367)), 0.0025469912216067314),
                     (0.11348859983172588, 0.001033751979517167, 0.11348859983172588, ((125, 0.013598872348666191), (199, 0.01348668523132801), (162, 0.011616992764174938)), 0.0003989997203461826),
                 ]),
        ]),
}


@pytest.mark.parametrize('name', list(REFERENCE))
def test_matches_yolov5_compute_loss(name):
    case, calls = REFERENCE[name]['case'], REFERENCE[name]['calls']
    loss = build_case_loss(case)
    for expected in calls:
        preds, targets = case_tensors(case)
        out = loss(preds, targets)
        assert set(out) == {'loss_box', 'loss_obj', 'loss_cls'}
        for key in ('loss_box', 'loss_obj', 'loss_cls'):
            assert out[key].shape == () and out[key].dtype == torch.float32
            assert math.isclose(float(out[key]), expected[key], rel_tol=2e-6, abs_tol=1e-9), key
        sum(out.values()).backward()
        for pred, (g_sum, g_sq, g_abs, top, g_obj) in zip(preds, expected['grads']):
            grad = pred.grad.double()
            assert math.isclose(float(grad.sum()), g_sum, rel_tol=2e-5)
            assert math.isclose(float((grad ** 2).sum()), g_sq, rel_tol=2e-5)
            assert math.isclose(float(grad.abs().sum()), g_abs, rel_tol=2e-5)
            for index, value in top:
                assert math.isclose(float(grad.flatten()[index]), value,
                                    rel_tol=2e-5, abs_tol=1e-10)
            assert math.isclose(float(grad[0, 4, 0, 0]), g_obj, rel_tol=2e-5, abs_tol=1e-10)
        if case.get('autobalance'):
            np.testing.assert_allclose(loss.balance.numpy(), expected['balance'], rtol=1e-6)


def hand_case(**overrides):
    """One 32x32 image, one level (stride 8, 4x4 cells), one anchor 16x8 px
    (2 x 1 cells), two classes, one box of class 1 centred at (1.5, 2.5)
    cells, 2 x 1 cells: fractions exactly 0.5, so only its own cell (1, 2)
    is positive, and the ratio to the anchor is 1."""
    loss = build_loss(dict(type='YOLOv5Loss', num_classes=2, anchors=[[(16, 8)]],
                           strides=(8,), **overrides))
    pred = torch.zeros(1, 7, 4, 4)
    pred[0, 0, 2, 1] = math.log(3.0)    # sigmoid 0.75 -> x = 2 * 0.75 - 0.5 = 1.0
    pred[0, 4, 2, 1] = 1.0              # objectness logit of the positive cell
    pred[0, 5, 2, 1] = 0.2              # class 0 logit
    pred[0, 6, 2, 1] = -0.3             # class 1 logit
    pred.requires_grad_()
    targets = torch.tensor([[0.0, 1.0, 0.375, 0.625, 0.5, 0.25]])
    return loss, pred, targets


def test_hand_computed_single_box():
    loss, pred, targets = hand_case()
    out = loss([pred], targets)
    # predicted box (1.0, 0.5, 2, 1) (zero w/h logits: (2 * 0.5)^2 * anchor),
    # target (0.5, 0.5, 2, 1), cell units: intersection 1.5 x 1, union 2.5,
    # IoU 0.6; enclosing box 2.5 x 1, centre distance 0.5; same aspect -> v = 0
    ciou = 0.6 - 0.5 ** 2 / (2.5 ** 2 + 1.0 ** 2)
    assert math.isclose(float(out['loss_box']), 0.05 * (1 - ciou), rel_tol=1e-6)
    # objectness: mean BCE over the 16 cells, target CIoU at the positive,
    # balance 4.0 for a single level
    obj = (15 * bce(0.0, 0.0) + bce(1.0, ciou)) / 16
    assert math.isclose(float(out['loss_obj']), 4.0 * obj, rel_tol=1e-6)
    # classes: mean over 2 of BCE(0.2, 0) and BCE(-0.3, 1), gain 0.5
    cls = (bce(0.2, 0.0) + bce(-0.3, 1.0)) / 2
    assert math.isclose(float(out['loss_cls']), 0.5 * cls, rel_tol=1e-6)
    sum(out.values()).backward()
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    grad = pred.grad[0]
    assert math.isclose(float(grad[4, 2, 1]), 4.0 / 16 * (sigmoid(1.0) - ciou), rel_tol=1e-5)
    assert math.isclose(float(grad[4, 0, 0]), 4.0 / 16 * 0.5, rel_tol=1e-6)
    assert math.isclose(float(grad[5, 2, 1]), 0.5 / 2 * sigmoid(0.2), rel_tol=1e-6)
    assert math.isclose(float(grad[6, 2, 1]), 0.5 / 2 * (sigmoid(-0.3) - 1), rel_tol=1e-6)
    # only the positive cell gets box and class gradients
    others = grad.clone()
    others[:, 2, 1] = 0
    assert float(others[[0, 1, 2, 3, 5, 6]].abs().max()) == 0.0


def test_hand_case_options_gr_label_smoothing_and_pos_weight():
    loss, pred, targets = hand_case(gr=0.25, label_smoothing=0.2, cls_pw=3.0, obj_pw=2.0)
    out = loss([pred], targets)
    ciou = 0.6 - 0.25 / 7.25
    tobj = 0.75 + 0.25 * ciou                     # (1 - gr) + gr * iou

    def bce_pw(x, t, pw):                         # BCEWithLogits with pos_weight
        return -(pw * t * math.log(1 / (1 + math.exp(-x)))
                 + (1 - t) * math.log(1 - 1 / (1 + math.exp(-x))))
    obj = (15 * bce_pw(0.0, 0.0, 2.0) + bce_pw(1.0, tobj, 2.0)) / 16
    assert math.isclose(float(out['loss_obj']), 4.0 * obj, rel_tol=1e-6)
    # smooth_BCE(0.2): positive 0.9, negative 0.1
    cls = (bce_pw(0.2, 0.1, 3.0) + bce_pw(-0.3, 0.9, 3.0)) / 2
    assert math.isclose(float(out['loss_cls']), 0.5 * cls, rel_tol=1e-6)
    assert math.isclose(float(out['loss_box']), 0.05 * (1 - ciou), rel_tol=1e-6)


def test_siou_and_focal_swapped_in_from_config():
    loss, pred, targets = hand_case(
        loss_bbox=dict(type='SIoULoss', loss_weight=0.05),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=0.5))
    out = loss([pred], targets)
    # SIoU as mmdet 3.3.0 computes it, of pred xyxy (0, 0, 2, 1) and target
    # (-0.5, 0, 1.5, 1): IoU 0.6; centres 0.5 apart along x only -> angle
    # cost cos(-pi/2) = 0, gamma = 2 - 0 = 2, rho_x = (0.5 / 2.5)^2,
    # rho_y = 0; mmdet's distance cost is 2 - exp(gamma rho_x) - exp(gamma
    # rho_y) (positive exponent, so it is negative here); equal sizes ->
    # shape cost 0
    siou = 0.6 - 0.5 * (2 - math.exp(2 * 0.04) - 1)
    assert math.isclose(float(out['loss_box']), 0.05 * (1 - siou), rel_tol=1e-5)
    obj = (15 * bce(0.0, 0.0) + bce(1.0, siou)) / 16   # the box loss's own IoU
    assert math.isclose(float(out['loss_obj']), 4.0 * obj, rel_tol=1e-5)
    p0, p1 = 1 / (1 + math.exp(-0.2)), 1 / (1 + math.exp(0.3))
    focal = (0.75 * p0 ** 2 * bce(0.2, 0.0) + 0.25 * (1 - p1) ** 2 * bce(-0.3, 1.0)) / 2
    assert math.isclose(float(out['loss_cls']), 0.5 * focal, rel_tol=1e-5)


def collision_case(order):
    preds, _ = make_inputs(8, 1, 2, [(8, 8), (4, 4), (2, 2)], 3, 1)
    rows = [[0, 1, 0.30, 0.30, 0.2, 0.2], [0, 0, 0.33, 0.31, 0.2, 0.25]]
    return ([torch.tensor(p) for p in preds],
            torch.tensor([rows[i] for i in order], dtype=torch.float32))


def test_objectness_collisions_take_the_largest_iou():
    # Two boxes whose centres share cells and anchors. expected: yolov5
    # 7.0.14 ComputeLoss (scratch venv): lobj 4.942826747894287 with
    # sort_obj_iou=True in either row order; with the default
    # sort_obj_iou=False the last write wins: 4.942798614501953 (rows as
    # given) and 4.942333698272705 (rows swapped).
    loss = build_loss(dict(type='YOLOv5Loss', num_classes=2))
    for order in ((0, 1), (1, 0)):
        out = loss(*collision_case(order))
        assert math.isclose(float(out['loss_obj']), 4.942826747894287, rel_tol=2e-6)
        assert math.isclose(float(out['loss_box']), 0.09684862196445465, rel_tol=2e-6)
        assert math.isclose(float(out['loss_cls']), 1.0913641452789307, rel_tol=2e-6)


def test_row_order_does_not_change_anything():
    case = REFERENCE['nonsquare']['case']
    loss = build_case_loss(case)
    preds, targets = case_tensors(case)
    out = loss(preds, targets)
    sum(out.values()).backward()
    grads = [p.grad.clone() for p in preds]
    for seed in range(3):
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(targets)))
        for p in preds:
            p.grad = None
        again = loss(preds, targets[perm])
        sum(again.values()).backward()
        for key in out:
            assert torch.equal(out[key], again[key])
        for g, p in zip(grads, preds):
            assert torch.equal(g, p.grad)


def test_empty_targets_give_objectness_only():
    preds, _ = make_inputs(3, 2, 3, [(8, 8), (4, 4), (2, 2)], 3, 0)
    preds = [torch.tensor(p, requires_grad=True) for p in preds]
    loss = build_loss(dict(type='YOLOv5Loss', num_classes=3))
    out = loss(preds, torch.zeros(0, 6))
    assert float(out['loss_box']) == 0.0 and float(out['loss_cls']) == 0.0
    expected = 0.0
    for balance, p in zip((4.0, 1.0, 0.4), preds):
        obj = p.detach().double().view(2, 3, 8, *p.shape[-2:])[:, :, 4]
        expected += balance * F.softplus(obj).mean().item()
    assert math.isclose(float(out['loss_obj']), expected, rel_tol=1e-6)
    sum(out.values()).backward()
    for p in preds:
        assert bool(torch.isfinite(p.grad).all())
        box_cls = p.grad.view(2, 3, 8, *p.shape[-2:])[:, :, [0, 1, 2, 3, 5, 6, 7]]
        assert float(box_cls.abs().max()) == 0.0
    # max_boxes=0 is the same call without the sync
    again = loss(preds, torch.zeros(0, 6), max_boxes=0)
    assert all(torch.equal(out[k], again[k]) for k in out)


def test_image_without_boxes_gets_objectness_gradient_only():
    case = REFERENCE['autobalance']['case']         # image 2 has no boxes
    preds, targets = case_tensors(case)
    assert not bool((targets[:, 0] == 2).any())
    out = build_case_loss(case, autobalance=False)(preds, targets)
    sum(out.values()).backward()
    for p in preds:
        grad = p.grad[2].view(3, 7, *p.shape[-2:])
        assert float(grad[:, [0, 1, 2, 3, 5, 6]].abs().max()) == 0.0
        assert float(grad[:, 4].abs().min()) > 0.0


def test_boxes_on_cell_borders_and_image_edges_are_finite():
    preds, _ = make_inputs(9, 1, 2, [(8, 8), (4, 4), (2, 2)], 3, 0)
    preds = [torch.tensor(p, requires_grad=True) for p in preds]
    targets = torch.tensor([[0, 0, 0.5, 0.5, 0.25, 0.25],    # on a border at every level
                            [0, 1, 1.0, 0.0, 0.2, 0.3],      # image corner
                            [0, 1, 0.0, 1.0, 0.5, 0.6]])
    out = build_loss(dict(type='YOLOv5Loss', num_classes=2))(preds, targets)
    assert all(bool(torch.isfinite(v)) for v in out.values())
    assert float(out['loss_box']) > 0
    sum(out.values()).backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in preds)


def test_one_class_skips_the_class_loss_unless_asked():
    case = REFERENCE['one_class_crowded']['case']
    preds, targets = case_tensors(case)
    assert float(build_case_loss(case)(preds, targets)['loss_cls']) == 0.0
    out = build_case_loss(case, skip_cls_for_single_class=False)(preds, targets)
    assert float(out['loss_cls']) > 0 and bool(torch.isfinite(out['loss_cls']))
    out['loss_cls'].backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in preds)
    assert float(preds[0].grad.view(2, 3, 6, 8, 8)[:, :, 5].abs().sum()) > 0


class HostSync(AssertionError):
    pass


def test_no_host_sync_with_max_boxes_and_validation_off(monkeypatch):
    case = REFERENCE['nonsquare']['case']
    loss = build_case_loss(case, validate=False, autobalance=True)
    preds, targets = case_tensors(case)
    expected = build_case_loss(case)(preds, targets)

    def refuse(*args, **kwargs):
        raise HostSync('host sync')
    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    monkeypatch.setattr(torch, 'nonzero', refuse)
    out = loss(preds, targets, img_size=(96, 128), max_boxes=12)
    sum(out.values()).backward()
    monkeypatch.undo()
    for key in out:
        assert math.isclose(float(out[key]), float(expected[key]), rel_tol=1e-6)
    assert not torch.equal(loss.balance, torch.tensor([4.0, 1.0, 0.4]))


def test_float64_and_bfloat16_autocast_agree_with_float32():
    case = REFERENCE['nonsquare']['case']
    loss = build_case_loss(case)
    reference = {k: float(v) for k, v in loss(*case_tensors(case)).items()}
    out64 = loss(*case_tensors(case, torch.float64))
    for key, value in out64.items():
        assert value.dtype == torch.float64
        assert math.isclose(float(value), reference[key], rel_tol=1e-5)
    preds, targets = case_tensors(case)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = [p.to(torch.bfloat16) for p in preds]
        out = loss(low, targets)
    sum(out.values()).backward()
    for key, value in out.items():
        assert value.dtype == torch.float32 and bool(torch.isfinite(value))
        assert math.isclose(float(value), reference[key], rel_tol=0.05)
    assert all(bool(torch.isfinite(p.grad).all()) for p in preds)


def test_640_input_runs_and_is_finite():
    preds, targets = make_inputs(12, 1, 4, [(80, 80), (40, 40), (20, 20)], 3, 30, scale=1.0)
    preds = [torch.tensor(p, requires_grad=True) for p in preds]
    out = build_loss(dict(type='YOLOv5Loss', num_classes=4))(
        preds, torch.tensor(targets), img_size=(640, 640), max_boxes=30)
    sum(out.values()).backward()
    assert all(bool(torch.isfinite(v)) and float(v) > 0 for v in out.values())


def test_bad_inputs_raise_named_errors():
    case = REFERENCE['nonsquare']['case']
    loss = build_case_loss(case)
    preds, targets = case_tensors(case)
    with pytest.raises(ValueError, match='levels'):
        loss(preds[:2], targets)
    with pytest.raises(TypeError, match='preds'):
        loss(preds[0], targets)
    with pytest.raises(ValueError, match=r'preds\[1\].*A\*\(5\+C\)'):
        loss([preds[0], preds[1][:, :-1], preds[2]], targets)
    with pytest.raises(ValueError, match='targets'):
        loss(preds, targets[:, :5])
    bad = targets.clone()
    bad[0, 1] = 3                                      # class id == num_classes
    with pytest.raises(ValueError, match='class id'):
        loss(preds, bad)
    bad = targets.clone()
    bad[0, 0] = 2                                      # batch index == batch size
    with pytest.raises(ValueError, match='batch index'):
        loss(preds, bad)
    bad = targets.clone()
    bad[0, 4] = -0.1
    with pytest.raises(ValueError, match='negative'):
        loss(preds, bad)
    bad = targets.clone()
    bad[1, 3] = float('nan')
    with pytest.raises(ValueError, match='targets'):
        loss(preds, bad)
    nan_preds = [p.detach().clone() for p in preds]
    nan_preds[2][0, 4, 0, 0] = float('nan')
    with pytest.raises(ValueError, match=r'preds\[2\]'):
        loss(nan_preds, targets)
    with pytest.raises(ValueError, match='max_boxes'):
        loss(preds, targets, max_boxes=2)
    with pytest.raises(TypeError, match='max_boxes'):
        loss(preds, targets, max_boxes=2.5)
    with pytest.raises(ValueError, match='img_size'):
        loss(preds, targets, img_size=(128, 96))       # (w, h) by mistake
    # value checks are off on the fast path: a bad class id no longer raises
    bad = targets.clone()
    bad[0, 1] = 3
    out = build_case_loss(case, validate=False)(preds, bad, max_boxes=12)
    assert all(bool(torch.isfinite(v)) for v in out.values())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match='num_classes'):
        YOLOv5Loss(num_classes=0)
    with pytest.raises(ValueError, match='strides'):
        YOLOv5Loss(num_classes=2, strides=(8, 16))
    with pytest.raises(ValueError, match='anchors'):
        YOLOv5Loss(num_classes=2, anchors=[[(10, 13)], [(30, 61), (62, 45)]], strides=(8, 16))
    with pytest.raises(ValueError, match='anchors'):
        YOLOv5Loss(num_classes=2, anchors=[[(10, -13)]], strides=(8,))
    with pytest.raises(ValueError, match='obj_level_weights'):
        YOLOv5Loss(num_classes=2, obj_level_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match='gr'):
        YOLOv5Loss(num_classes=2, gr=1.5)
    with pytest.raises(ValueError, match='autobalance'):
        YOLOv5Loss(num_classes=2, anchors=[[(10, 13)], [(30, 61)]], strides=(8, 32),
                   autobalance=True)
    with pytest.raises(KeyError, match='CIoULos'):
        YOLOv5Loss(num_classes=2, loss_bbox=dict(type='CIoULos'))
    # Box and class terms are means over each level's matches.
    with pytest.raises(ValueError, match="loss_bbox must have reduction 'mean'.*'sum'"):
        YOLOv5Loss(num_classes=2, loss_bbox=dict(type='CIoULoss', reduction='sum'))
    with pytest.raises(ValueError, match="loss_cls must have reduction 'mean'.*'none'"):
        YOLOv5Loss(num_classes=2, loss_cls=dict(type='FocalLoss', reduction='none'))


def test_default_obj_level_weights_follow_yolov5():
    anchors = [[(10, 13)]] * 5
    for levels, weights in ((1, [4.0]), (3, [4.0, 1.0, 0.4]), (4, [4.0, 1.0, 0.25, 0.06]),
                            (5, [4.0, 1.0, 0.25, 0.06, 0.02])):
        loss = YOLOv5Loss(num_classes=2, anchors=anchors[:levels],
                          strides=(8, 16, 32, 64, 128)[:levels])
        np.testing.assert_allclose(loss.balance.numpy(), weights)
    with pytest.raises(ValueError, match='obj_level_weights'):
        YOLOv5Loss(num_classes=2, anchors=[[(10, 13)]] * 6, strides=(1, 2, 4, 8, 16, 32))


def test_autobalance_buffer_checkpoints_and_survives_failed_calls():
    case = REFERENCE['autobalance']['case']
    loss = build_case_loss(case)
    assert 'balance' in loss.state_dict()
    assert 'balance' not in build_case_loss(case, autobalance=False).state_dict()
    preds, targets = case_tensors(case)
    loss(preds, targets)
    after_one = loss.balance.clone()
    bad = targets.clone()
    bad[0, 1] = 7
    with pytest.raises(ValueError):
        loss(preds, bad)
    assert torch.equal(loss.balance, after_one)
    loss.eval()                                        # evaluation never updates it
    loss(preds, targets)
    assert torch.equal(loss.balance, after_one)
    fresh = build_case_loss(case)
    fresh.load_state_dict(copy.deepcopy(loss.state_dict()))
    assert torch.equal(fresh.balance, after_one)
    # the second reference call (yolov5 balance after two calls)
    fresh.train()
    out = fresh(*case_tensors(case))
    expected = REFERENCE['autobalance']['calls'][1]
    assert math.isclose(float(out['loss_obj']), expected['loss_obj'], rel_tol=2e-6)
    np.testing.assert_allclose(fresh.balance.numpy(), expected['balance'], rtol=1e-6)


def test_global_validation_switch_is_followed():
    case = REFERENCE['nonsquare']['case']
    loss = build_case_loss(case)
    preds, targets = case_tensors(case)
    bad = targets.clone()
    bad[0, 1] = 3
    with yolo_losses.validation(False):
        loss(preds, bad, max_boxes=12)
    with pytest.raises(ValueError, match='class id'):
        loss(preds, bad)


def test_anchor_helpers():
    from yolo_losses.ops.anchors import (decode_yolov5_boxes, resolve_img_size,
                                         split_level_pred)
    # a 100 x 70 input: strided convolutions give ceil(100 / 8) = 13 rows,
    # floor would give 12; both are accepted, anything else is an error
    preds = [torch.zeros(1, 18, 13, 9), torch.zeros(1, 18, 7, 5), torch.zeros(1, 18, 4, 3)]
    assert resolve_img_size(preds, (8, 16, 32), (100, 70)) == (100, 70)
    assert resolve_img_size(preds, (8, 16, 32)) == (104, 72)
    with pytest.raises(ValueError, match='img_size'):
        resolve_img_size(preds, (8, 16, 32), (120, 70))
    # channel layout: anchor-major, then (x, y, w, h, obj, classes)
    pred = torch.arange(2 * 6 * 2 * 3, dtype=torch.float32).view(1, 12, 2, 3)
    level = split_level_pred(pred, 2, 1)
    assert level.shape == (1, 2, 2, 3, 6)
    assert float(level[0, 1, 1, 2, 4]) == float(pred[0, 6 + 4, 1, 2])
    # xy = 2 sigmoid - 0.5, wh = (2 sigmoid)^2 anchor
    raw = torch.tensor([0.0, math.log(3.0), 0.0, math.log(3.0)])
    box = decode_yolov5_boxes(raw, torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(box, torch.tensor([0.5, 1.0, 2.0, 9.0]))


def test_objectness_and_slots_read_and_gradient_by_plain_indexing():
    """``gather_objectness_and_slots`` (one autograd op, one gradient
    buffer) against plain Python indexing, duplicated slots included, and
    its backward through ``gradcheck``."""
    from yolo_losses.ops.anchors import gather_objectness_and_slots
    torch.manual_seed(3)
    batch, anchors, attrs, height, width = 2, 3, 7, 4, 5
    pred = torch.randn(batch, anchors * attrs, height, width, dtype=torch.float64,
                       requires_grad=True)
    slot_anchor = torch.tensor([[0, 2, 2, 1], [1, 1, 0, 0]])
    slot_cell = torch.tensor([[3, 19, 19, 0], [7, 7, 12, 4]])      # repeats on purpose
    objectness, picked = gather_objectness_and_slots(pred, anchors, slot_anchor, slot_cell)
    per_anchor = pred.detach().view(batch, anchors, attrs, height, width)
    for b in range(batch):
        for a in range(anchors):
            assert torch.equal(objectness[b, a], per_anchor[b, a, 4].reshape(-1))
        for s in range(slot_anchor.shape[1]):
            y, x = divmod(int(slot_cell[b, s]), width)
            assert torch.equal(picked[b, s], per_anchor[b, int(slot_anchor[b, s]), :, y, x])
    assert torch.autograd.gradcheck(
        lambda p: gather_objectness_and_slots(p, anchors, slot_anchor, slot_cell),
        (pred,))
    # one output unused: its gradient is simply absent
    _, picked_only = gather_objectness_and_slots(pred, anchors, slot_anchor, slot_cell)
    picked_only.sum().backward()
    assert pred.grad.view(batch, anchors, attrs, height, width)[:, :, 4].abs().sum() > 0

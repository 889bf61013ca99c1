"""Tests of the IoU-family losses (``yolo_losses/losses/iou_loss.py``).

Expected values: hand computation, mmdet 3.3.0 and ultralytics 8.4.190
numbers pasted from a scratch venv, and the reduction rules written out.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import yolo_losses
from yolo_losses import MODELS, build_loss
from yolo_losses.losses.iou_loss import (CIoULoss, DIoULoss, EIoULoss, GIoULoss, IoULoss,
                                         SIoULoss, ciou_loss, diou_loss, eiou_loss, giou_loss,
                                         iou_loss, siou_loss)
from yolo_losses.testing import check_loss_conventions

EPS32 = 1.1920928955078125e-07  # float32 machine eps: mmdet's avg_factor guard
LOSS_TYPES = ['IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss', 'SIoULoss']
# our config for each mmdet config of the pasted tables below
CONFIGS = {
    'iou_log': dict(type='IoULoss'),
    'iou_linear': dict(type='IoULoss', mode='linear'),
    'iou_square': dict(type='IoULoss', mode='square'),
    'iou_log_eps0.1': dict(type='IoULoss', eps=0.1),
    'giou': dict(type='GIoULoss'),
    'diou': dict(type='DIoULoss'),
    'ciou': dict(type='CIoULoss'),
    'eiou': dict(type='EIoULoss'),
    'eiou_sp0.5': dict(type='EIoULoss', smooth_point=0.5),
    'siou': dict(type='SIoULoss'),
    'siou_neg': dict(type='SIoULoss', neg_gamma=True),
}


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
    return (torch.tensor(p, dtype=dtype, requires_grad=requires_grad),
            torch.tensor(t, dtype=dtype))


def reduction_weights(dtype):
    """The weights of MMDET_REDUCED: [8] per box and [8, 4] per coordinate."""
    weight = torch.tensor(np.random.default_rng(2).uniform(0, 2, 8), dtype=dtype)
    weight4 = torch.tensor(np.random.default_rng(3).uniform(0, 2, (8, 4)), dtype=dtype)
    return weight, weight4


# --- hand-computed cases ------------------------------------------------------

# Unit squares offset by 0.5 along x (IoU 1/3, GIoU 1/3, DIoU = CIoU =
# 1/3 - 0.25/3.25, SIoU 1/3 + (e^(2/9) - 1)/2, see test_iou_ops.py) and two
# identical boxes (loss 0).
PRED = [[0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 4.0, 5.0]]
TARGET = [[0.5, 0.0, 1.5, 1.0], [2.0, 2.0, 4.0, 5.0]]
DIOU = 1 / 3 - 0.25 / 3.25
HAND = {
    'IoULoss': [-math.log(1 / 3), 0.0],
    'GIoULoss': [2 / 3, 0.0],
    'DIoULoss': [1 - DIOU, 0.0],
    'CIoULoss': [1 - DIOU, 0.0],
    # smooth penalty of d = 1 - 1/3 > smooth_point 0.1: d - 0.05
    'EIoULoss': [2 / 3 - 0.05, 0.0],
    'SIoULoss': [1 - (1 / 3 + (math.exp(2 / 9) - 1) / 2), 0.0],
}


@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_hand_computed_values_and_reductions(loss_type):
    pred = torch.tensor(PRED, dtype=torch.float64)
    target = torch.tensor(TARGET, dtype=torch.float64)
    expected = torch.tensor(HAND[loss_type], dtype=torch.float64)
    loss = build_loss(dict(type=loss_type, reduction='none'))
    got = loss(pred, target)
    assert got.shape == (2,)
    torch.testing.assert_close(got, expected, rtol=0, atol=5e-6)
    mean = build_loss(dict(type=loss_type))
    assert mean(pred, target).item() == pytest.approx(expected.mean().item(), abs=5e-6)
    assert mean(pred, target, reduction_override='sum').item() == pytest.approx(
        expected.sum().item(), abs=5e-6)
    none = mean(pred, target, reduction_override='none')
    torch.testing.assert_close(none, got, rtol=0, atol=0)
    weight = torch.tensor([3.0, 5.0], dtype=torch.float64)
    assert mean(pred, target, weight=weight).item() == pytest.approx(
        (3.0 * expected[0] + 5.0 * expected[1]).item() / 2, abs=1e-5)
    assert mean(pred, target, weight=weight, avg_factor=4.0).item() == pytest.approx(
        (3.0 * expected[0] + 5.0 * expected[1]).item() / (4.0 + EPS32), abs=1e-5)
    scaled = build_loss(dict(type=loss_type, loss_weight=2.5, reduction='sum'))
    assert scaled(pred, target).item() == pytest.approx(2.5 * expected.sum().item(), abs=1e-5)
    with pytest.raises(ValueError, match='avg_factor'):
        scaled(pred, target, avg_factor=2.0)


def test_iou_loss_modes_by_hand():
    pred = torch.tensor(PRED[:1])
    target = torch.tensor(TARGET[:1])
    third = 1 / 3
    assert IoULoss(mode='linear')(pred, target).item() == pytest.approx(1 - third, abs=1e-6)
    assert IoULoss(mode='square')(pred, target).item() == pytest.approx(1 - third ** 2, abs=1e-6)
    # eps floors the IoU before the log: disjoint boxes give -log(eps)
    apart = torch.tensor([[5.0, 5.0, 6.0, 6.0]])
    assert IoULoss()(pred, apart).item() == pytest.approx(-math.log(1e-6), rel=1e-6)
    assert IoULoss(eps=0.1)(pred, apart).item() == pytest.approx(-math.log(0.1), rel=1e-6)


def test_eiou_quadratic_below_smooth_point():
    # 10x10 vs 10x9.5 sharing a corner: IoU 0.95, d = 0.05 < 0.1: 0.5 d^2 / 0.1
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 0.0, 10.0, 9.5]], dtype=torch.float64)
    assert EIoULoss()(pred, target).item() == pytest.approx(0.5 * 0.05 ** 2 / 0.1, rel=1e-5)
    # disjoint unit squares: extended IoU -1/3, d = 4/3 (linear part)
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]], dtype=torch.float64)
    assert EIoULoss()(a, b).item() == pytest.approx(4 / 3 - 0.05, rel=1e-5)
    assert EIoULoss(smooth_point=2.0)(a, b).item() == pytest.approx(
        0.5 * (4 / 3) ** 2 / 2.0, rel=1e-5)


# --- mmdet 3.3.0 ---------------------------------------------------------------
# expected: mmdet 3.3.0 IoULoss/GIoULoss/DIoULoss/CIoULoss/EIoULoss/SIoULoss with
# the options of CONFIGS and reduction='none', on float64 make_boxes(0, 8),
# computed in a scratch venv; 'grad' is d/d pred of the summed loss.
MMDET_SMALL = {'iou_log': {'loss': [0.6023241650768578, 13.815510557964274, 1.3452998795141233,
                      3.163126221658912, 0.8926464578360628, 0.28215390063676465,
                      0.2769035187006581, 3.364276720009276],
             'grad': [[0.049502535302279535, -0.04695034735966183, 0.030123564858427238,
                       -0.05211942236330307],
                      [0.0, 0.0, 0.0, 0.0],
                      [0.8113719147943952, 0.26109979527932986, 0.35071603120456324,
                       0.13873130295724423],
                      [-0.020394119444347072, -0.0210952396663075, -0.04780191464800258,
                       -0.36748470565673746],
                      [0.05198283103762943, -0.05105775227591147, 0.03285333319129451,
                       -0.10386049741626874],
                      [0.03236455578957569, 0.036242382569374, 0.030528479802679455,
                       0.031020829496306933],
                      [-0.0461399446919659, 0.061128503040787034, -0.040246866077141966,
                       0.048503231122254985],
                      [-0.011501373034677732, 0.06462083744965441, -0.3325343431965784,
                       -0.06462083744965441]]},
 'iou_linear': {'loss': [0.45246241162224576, 0.999999, 0.7395384109473269,
                         0.9577066840870843, 0.5904295935873307, 0.24584238973507455,
                         0.24187236127829637, 0.9654129768248368],
                'grad': [[0.027104498797994783, -0.0257070799668071, 0.016493784055924113,
                          -0.028537342828444556],
                         [0.0, 0.0, 0.0, 0.0],
                         [0.21133121824005824, 0.0680064675797819, 0.09134805479378744,
                          0.03613417561959164],
                         [-0.0008625349364255094, -0.0008921876354658155,
                          -0.0020217014774502103, -0.015542146749505268],
                         [0.021290629234563017, -0.020911744350162458, 0.013455753027169334,
                          -0.042538186137003185],
                         [0.024407976051552257, 0.02733246862882628, 0.023023285373009777,
                          0.023394594641370545],
                         [-0.03497996732007012, 0.04634320766890436, -0.030512261545012277,
                          0.036771640081088214],
                         [-0.0003977982556965959, 0.002235042402469652,
                          -0.011501373034677733, -0.002235042402469652]]},
 'iou_square': {'loss': [0.7002025893134729, 0.999999999999, 0.9321597606281564,
                         0.9982112754290903, 0.8322520821909609, 0.43124629887949684,
                         0.42524248340625403, 0.9988037378278807],
                'grad': [[0.029681463812083607, -0.028151185138519278, 0.018061933490408286,
                          -0.031250535741991464],
                         [0.0, 0.0, 0.0, 0.0],
                         [0.11008732983848568, 0.03542614522337818, 0.047585319016921056,
                          0.0188231296019744],
                         [-7.295892510434163e-05, -7.546714704070618e-05,
                          -0.00017100891853482074, -0.0013146578448834474],
                         [0.01744002333676286, -0.017129663264587758, 0.011022156471852498,
                          -0.03484476436838034],
                         [0.03681492178088436, 0.041225978447513356, 0.03472637175471294,
                          0.03528642317570528],
                         [-0.05303856005385423, 0.070268133201632, -0.046264377594358384,
                          0.055755193333199525],
                         [-2.751731497763532e-05, 0.00015460692674338058,
                          -0.0007955965113931918, -0.00015460692674338058]]},
 'iou_log_eps0.1': {'loss': [0.6023241650768578, 2.3025850929940455, 1.3452998795141233,
                             2.3025850929940455, 0.8926464578360628, 0.28215390063676465,
                             0.2769035187006581, 2.3025850929940455],
                    'grad': [[0.049502535302279535, -0.04695034735966183,
                              0.030123564858427238, -0.05211942236330307],
                             [0.0, 0.0, 0.0, 0.0],
                             [0.8113719147943952, 0.26109979527932986, 0.35071603120456324,
                              0.13873130295724423],
                             [0.0, 0.0, 0.0, 0.0],
                             [0.05198283103762943, -0.05105775227591147,
                              0.03285333319129451, -0.10386049741626874],
                             [0.03236455578957569, 0.036242382569374, 0.030528479802679455,
                              0.031020829496306933],
                             [-0.0461399446919659, 0.061128503040787034,
                              -0.040246866077141966, 0.048503231122254985],
                             [0.0, 0.0, 0.0, 0.0]]},
 'giou': {'loss': [0.5176228219866179, 1.425345418759564, 0.8768366447041104,
                   1.1556460039204066, 0.6450934548325284, 0.25210613822725536,
                   0.2442188981601997, 1.182458944725916],
          'grad': [[0.02892826223884026, -0.02334905207657689, 0.023810006313361734,
                    -0.03966030729095321],
                   [0.014724383162871476, -0.003092710380825772, 0.011743944635296677,
                    -0.010763633402044741],
                   [0.3067308126238374, 0.11641289339022977, 0.06450274194296837,
                    0.0938354471144053],
                   [-0.014446850308110692, -0.0017503032268163764, -0.016159558667802727,
                    -0.019815336852406478],
                   [0.029045220181062606, -0.024369923025047053, 0.026646713521392595,
                    -0.048251879983711166],
                   [0.027875262240315026, 0.029421937603113485, 0.02589552477998644,
                    0.023205772009688104],
                   [-0.0363235208653263, 0.04756891781143893, -0.03938022532004654,
                    0.03706922993592886],
                   [-0.007906448278910603, 0.015405008632762725, -0.011501373034677732,
                    -0.015405008632762725]]},
 'diou': {'loss': [0.47229310808284997, 1.2748098139168942, 0.7926615069351337,
                   1.133236583830765, 0.6242010104525016, 0.2515587851484722,
                   0.24776279679304436, 1.1400691196939858],
          'grad': [[0.02998363634035806, -0.027831274838761938, 0.018502714490671916,
                    -0.03140485653045064],
                   [0.003965725535844726, -7.094210102898818e-05, -0.0014797594829031174,
                    -0.010472883966415705],
                   [0.24189454010417827, 0.09358646299197533, 0.11197106209532624,
                    0.0462634621858114],
                   [0.0004640691875759462, -0.002845834080945852, -0.00411099106953014,
                    -0.023248899635329418],
                   [0.02429465903186464, -0.025155235492990813, 0.014634242098950452,
                    -0.048343347488992],
                   [0.0249297209025214, 0.028964377567875878, 0.023369360066256718,
                    0.024836087286677834],
                   [-0.03510191318521871, 0.048922981895958936, -0.03092156245563188,
                    0.039071801527531674],
                   [-0.002232212261608944, 7.505995500309238e-05, -0.018721679372071268,
                    -0.004395024846839023]]},
 'ciou': {'loss': [0.4737559111814903, 1.2748098139168942, 0.7926615069351337,
                   1.133236583830765, 0.6242010104525016, 0.2515592325165521,
                   0.24778842530672762, 1.1400691196939858],
          'grad': [[0.02978376104653869, -0.02751975082240836, 0.018702589784491283,
                    -0.031716380546804215],
                   [0.003965725535844726, -7.094210102898818e-05, -0.0014797594829031174,
                    -0.010472883966415705],
                   [0.24189454010417827, 0.09358646299197533, 0.11197106209532624,
                    0.0462634621858114],
                   [0.0004640691875759462, -0.002845834080945852, -0.00411099106953014,
                    -0.023248899635329418],
                   [0.02429465903186464, -0.025155235492990813, 0.014634242098950452,
                    -0.048343347488992],
                   [0.024929198429006788, 0.02896490846759206, 0.02336988253977133,
                    0.02483555638696165],
                   [-0.03508631329617585, 0.04890658298194449, -0.030937162344674737,
                    0.03908820044154612],
                   [-0.002232212261608944, 7.505995500309238e-05, -0.018721679372071268,
                    -0.004395024846839023]]},
 'eiou': {'loss': [0.40246241260975707, 1.145302448479034, 0.6895384307874185,
                   0.907706684130716, 0.5404295946969325, 0.19584239051700308,
                   0.1918723630393297, 0.9154129768572341],
          'grad': [[0.027104498751036994, -0.025707079874079105, 0.016493783996429395,
                    -0.0285373427887257],
                   [0.009566641604213015, 0.0029436921618849294, -0.00402689776640862,
                    -0.038447143889651245],
                   [0.21133120433632904, 0.06800646351277079, 0.09134804087731155,
                    0.03613417011470832],
                   [-0.0008625349346458411, -0.0008921876336249683, -0.0020217014761336233,
                    -0.015542146733703716],
                   [0.021290629185984823, -0.020911744236854882, 0.01345575295426109,
                    -0.042538186028465916],
                   [0.024407976028973745, 0.02733246860213145, 0.023023285325267595,
                    0.023394594592858396],
                   [-0.03497996715756215, 0.046343207563418615, -0.030512261489789715,
                    0.0367716399102566],
                   [-0.0003977982549513672, 0.0022350424009210577, -0.011501373023904493,
                    -0.0022350424009210577]]},
 'eiou_sp0.5': {'loss': [0.20472223482464205, 0.945302448479034, 0.48953843078741854,
                         0.707706684130716, 0.34042959469693257, 0.060438480975114645,
                         0.0585022400022293, 0.7154129768572342],
                'grad': [[0.02452753379494469, -0.023262974761955123, 0.014925634600177288,
                          -0.025824149935316967],
                         [0.009566641604213015, 0.0029436921618849294, -0.00402689776640862,
                          -0.038447143889651245],
                         [0.21133120433632904, 0.06800646351277079, 0.09134804087731155,
                          0.03613417011470832],
                         [-0.0008625349346458411, -0.0008921876336249683,
                          -0.0020217014761336233, -0.015542146733703716],
                         [0.021290629185984823, -0.020911744236854882, 0.01345575295426109,
                          -0.042538186028465916],
                         [0.012001030349289229, 0.013438958839757851, 0.011320199003837645,
                          0.011502766119768925],
                         [-0.016921374630875403, 0.02241828224837239, -0.014760145576418748,
                          0.01778808687585018],
                         [-0.0003977982549513672, 0.0022350424009210577,
                          -0.011501373023904493, -0.0022350424009210577]]},
 'siou': {'loss': [0.4337562349780024, 0.6418290054858147, 0.6687111311434923,
                   0.7282461757187333, 0.5449169830896179, 0.23817003206457765,
                   0.2317929097341237, 0.7579532923196519],
          'grad': [[0.024108341732909405, -0.022724571557022503, 0.015064114835485162,
                    -0.0256502497367254],
                   [-0.0028121200061126967, 0.004602703652232818, 0.003323560553803619,
                    0.014536979409250528],
                   [0.15215130681618202, 0.053745872615500734, 0.05816267740226425,
                    0.03444406991756287],
                   [-0.00395512491808987, 0.002471209976456206, -0.002383630217243949,
                    -0.003747189680031484],
                   [0.022160638003575588, -0.013805559280803978, 0.015019575969910638,
                    -0.03238929915488213],
                   [0.024850528443917094, 0.024753607746322372, 0.023553232337854595,
                    0.021242032262854267],
                   [-0.036897475055595735, 0.041125175537493674, -0.032406296186758166,
                    0.03302119110849643],
                   [0.00288163052580625, 0.005580735360680773, -0.000596229387071108,
                    -0.005397514395257076]]},
 'siou_neg': {'loss': [0.47438860517029957, 1.2789384147440783, 0.8087367268585752,
                       1.1338929804268003, 0.6342248937604984, 0.2534388270121525,
                       0.2522418304296815, 1.1589697976434457],
              'grad': [[0.02911274161604361, -0.02741953043301754, 0.018761374991468363,
                        -0.0324258912884256],
                       [0.00825089661192246, 0.0013055243099137385, -0.005810276965770158,
                        -0.010193903319942197],
                       [0.2705406598302511, 0.07648258147335428, 0.10686622437353396,
                        0.04425170133835572],
                       [-0.00021437401448619895, -0.0013783294503786519,
                        -0.003801087352528034, -0.023061176180831623],
                       [0.020816610683758653, -0.02580588869544844, 0.012306574374505845,
                        -0.052577744558018],
                       [0.023961060511891195, 0.029842723564803587, 0.02255434493668835,
                        0.025490542945752086],
                       [-0.03316102147839251, 0.05089326532197877, -0.028715050646496883,
                        0.04083960465623913],
                       [-0.0010087237853561733, 0.0037059877957162615,
                        -0.018592465118649808, -0.007272261960221588]]}}

# expected: same losses on float64 make_boxes(1, 2000): sum and sum of squares
# of the losses and of the gradient of their sum, and its first two rows.
MMDET_BIG = {'iou_log': {'sum': 9837.586178221478,
             'sumsq': 114518.56487457445,
             'gsum': 137.4225607406399,
             'gsumsq': 3731.384789282787,
             'g0': [0.06929915886872969, -0.05498887648186733, 0.043028697432037286,
                    0.05498887648186733],
             'g1': [0.05952510104445835, 0.04183330844559876, 0.030553519405404867,
                    0.02547268633976981]},
 'iou_linear': {'sum': 1436.3857574555707,
                'sumsq': 1178.9054147150553,
                'gsum': 0.12548504392291804,
                'gsumsq': 20.0461638519758,
                'g0': [0.025479850488111355, -0.020218259126654908, 0.015820751581462712,
                       0.020218259126654908],
                'g1': [0.019618393338644943, 0.013787499480759299, 0.010069885662646142,
                       0.008395335265912265]},
 'iou_square': {'sum': 1693.8661001960854,
                'sumsq': 1505.242440984785,
                'gsum': -3.0453954428671253,
                'gsumsq': 25.38018729157701,
                'g0': [0.01873681561204234, -0.014867661544143738, 0.011633918549251523,
                       0.014867661544143738],
                'g1': [0.012931733014693303, 0.00908821936372272, 0.006637703232369911,
                       0.0055339003736742986]},
 'iou_log_eps0.1': {'sum': 2935.6758190559717,
                    'sumsq': 5642.452744456107,
                    'gsum': 9.760778097292139,
                    'gsumsq': 140.61006639124523,
                    'g0': [0.06929915886872969, -0.05498887648186733, 0.043028697432037286,
                           0.05498887648186733],
                    'g1': [0.05952510104445835, 0.04183330844559876, 0.030553519405404867,
                           0.02547268633976981]},
 'giou': {'sum': 1875.6169670166153,
          'sumsq': 2214.5220980349627,
          'gsum': 0.1726149253961502,
          'gsumsq': 30.56244998275496,
          'g0': [0.037801573866278027, -0.025909717836442255, 0.014180341777748278,
                 0.025909717836442255],
          'g1': [0.027028156290576474, 0.021705511961428232, 0.010598508211625245,
                 0.014909023824042657]},
 'diou': {'sum': 1650.072207634501,
          'sumsq': 1633.758742668842,
          'gsum': -0.1535685112028098,
          'gsumsq': 21.499800906336667,
          'g0': [0.03251069191035785, -0.018249572579641132, 0.020453285421501065,
                 0.01893329096103296],
          'g1': [0.024030914392750333, 0.016539990295105306, 0.012745327874285041,
                 0.00949373302407755]},
 'ciou': {'sum': 1650.1948125433503,
          'sumsq': 1633.858219751096,
          'gsum': -0.15356851120280623,
          'gsumsq': 21.506191528432186,
          'g0': [0.03251069191035785, -0.018249572579641132, 0.020453285421501065,
                 0.01893329096103296],
          'g1': [0.024030914392750333, 0.016539990295105306, 0.012745327874285041,
                 0.00949373302407755]},
 'eiou': {'sum': 1526.0764134389674,
          'sumsq': 1492.4177267831822,
          'gsum': -1.2586784591629652,
          'gsumsq': 24.7699957198109,
          'g0': [0.025479850433691355, -0.020218259020665947, 0.015820751498526537,
                 0.02021825902066594],
          'g1': [0.019618393319533467, 0.01378749946844886, 0.010069885639881383,
                 0.008395335246933125]},
 'eiou_sp0.5': {'sum': 1141.1001844996022,
                'sumsq': 963.5928628137027,
                'gsum': -1.5675258962935956,
                'gsumsq': 18.493641919787123,
                'g0': [0.025479850433691355, -0.020218259020665947, 0.015820751498526537,
                       0.02021825902066594],
                'g1': [0.019618393319533467, 0.01378749946844886, 0.010069885639881383,
                       0.008395335246933125]},
 'siou': {'sum': 1120.1350759010497,
          'sumsq': 700.1222464363584,
          'gsum': 2.1745564106890143,
          'gsumsq': 18.457630630789566,
          'g0': [0.013530955820030804, -0.01661754918659631, 0.010697487150587087,
                 0.026068144552775493],
          'g1': [0.01335315651708589, 0.012402686395364293, 0.006463737363356575,
                 0.008416612538685534]},
 'siou_neg': {'sum': 1708.6714780787925,
              'sumsq': 1756.1804098230673,
              'gsum': -0.5157366139624457,
              'gsumsq': 25.63057983962065,
              'g0': [0.033703296495714116, -0.024795741664273764, 0.02109561240926895,
                     0.017742893556644337],
              'g1': [0.025034214432261344, 0.014968435751287725, 0.01311902239681727,
                     0.008723368135408258]}}

# expected: same losses, default reduction, on float64 make_boxes(0, 8):
# 'mean'; loss_weight=2, 'sum'; weight [8]; weight [8] + avg_factor=3.7;
# weight [8, 4] with reduction_override='sum' (weights: reduction_weights()).
MMDET_REDUCED = {'iou_log': {'mean': 2.967780177674616,
             'sum_lw2': 47.48448284279386,
             'w_mean': 1.6615762893380923,
             'w_avg': 3.592597266603722,
             'w4_sum': 17.51932477833509},
 'iou_linear': {'mean': 0.6491579785102743,
                'sum_lw2': 10.38652765616439,
                'w_mean': 0.43478893529909796,
                'w_avg': 0.9400841541421674,
                'w4_sum': 4.588730763416919},
 'iou_square': {'mean': 0.789764778459289,
                'sum_lw2': 12.636236455348625,
                'w_mean': 0.5702551895074208,
                'w_avg': 1.2329841538043786,
                'w4_sum': 5.673192671920546},
 'iou_log_eps0.1': {'mean': 1.2883854000933255,
                    'sum_lw2': 20.614166401493208,
                    'w_mean': 0.7680381775467374,
                    'w_avg': 1.6606230330843803,
                    'w4_sum': 9.002040299930158},
 'giou': {'mean': 0.7874160406645748,
          'sum_lw2': 12.598656650633197,
          'w_mean': 0.5157319427311529,
          'w_avg': 1.1150960564647066,
          'w4_sum': 5.472394635570735},
 'diou': {'mean': 0.7420740906067058,
          'sum_lw2': 11.873185449707293,
          'w_mean': 0.4802324939565427,
          'w_avg': 1.038340494019597,
          'w4_sum': 5.20049678432482},
 'ciou': {'mean': 0.7422602004792563,
          'sum_lw2': 11.876163207668101,
          'w_mean': 0.4803294511066866,
          'w_avg': 1.038550131094235,
          'w4_sum': 5.201779707988489},
 'eiou': {'mean': 0.6235709126396781,
          'sum_lw2': 9.97713460223485,
          'w_mean': 0.41138860578425834,
          'w_avg': 0.889488848713171,
          'w4_sum': 4.333282613691541},
 'eiou_sp0.5': {'mean': 0.4402566363441651,
                'sum_lw2': 7.044106181506642,
                'w_mean': 0.2745342160923659,
                'w_avg': 0.5935874751291313,
                'w4_sum': 2.9998851026940256},
 'siou': {'mean': 0.5306719705667517,
          'sum_lw2': 8.490751529068028,
          'w_mean': 0.37558859348086326,
          'w_avg': 0.8120834191997347,
          'w4_sum': 3.802404553088471},
 'siou_neg': {'mean': 0.7493540095056914,
              'sum_lw2': 11.989664152091063,
              'w_mean': 0.4862821777598065,
              'w_avg': 1.0514208910106255,
              'w4_sum': 5.248278336164351}}

# expected: ultralytics 8.4.190 v8DetectionLoss box term
# ((1 - bbox_iou(pred, target, xywh=False, CIoU=True)) * weight).sum() / target_scores_sum
# on float64 make_boxes(0, 8), weight = default_rng(4).uniform(0, 1, 8),
# target_scores_sum = 1.3 * weight.sum(); grad: d/d pred.
ULTRALYTICS_V8_BOX = {'value': 0.4879062263250446,
 'target_scores_sum': 5.813255275739826,
 'grad': [[0.004831674535695435, -0.004464395167200222, 0.0030340300743352594,
           -0.005145193996187197],
          [0.0003487860078776231, -6.2145080868670545e-06, -0.0001301231628253016,
           -0.0009212088587995004],
          [0.040798500444480135, 0.015646674089601374, 0.018627598102854297,
           0.007838895995919314],
          [6.099300574061602e-06, -3.9206688247922646e-05, -5.681144884793459e-05,
           -0.0003236527448184461],
          [0.0025368101013116978, -0.002625922606505338, 0.0015303938663916881,
           -0.00505304391319554],
          [0.0016145013855167346, 0.0018758679757992136, 0.0015135146796418236,
           0.0016084367988107634],
          [-0.004839931392771079, 0.006746348782870091, -0.004267582681326165,
           0.0053919659778680065],
          [-7.001453100080452e-05, 7.372643907232492e-06, -0.0005590713709494198,
           -0.0001370683140351394]]}


@pytest.mark.parametrize('key', list(CONFIGS))
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_matches_mmdet_small(key, dtype):
    pred, target = tensors(0, 8, dtype, requires_grad=True)
    loss = build_loss(dict(CONFIGS[key], reduction='none'))
    got = loss(pred, target)
    grad, = torch.autograd.grad(got.sum(), pred)
    expected = MMDET_SMALL[key]
    # float64: equal to round-off; float32: to float32 round-off
    rtol, atol = (1e-12, 1e-14) if dtype == torch.float64 else (2e-6, 1e-6)
    torch.testing.assert_close(got.detach().double(),
                               torch.tensor(expected['loss'], dtype=torch.float64),
                               rtol=rtol, atol=atol)
    torch.testing.assert_close(grad.double(), torch.tensor(expected['grad'], dtype=torch.float64),
                               rtol=rtol * 100, atol=atol)


@pytest.mark.parametrize('key', list(CONFIGS))
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_matches_mmdet_big(key, dtype):
    pred, target = tensors(1, 2000, dtype, requires_grad=True)
    loss = build_loss(dict(CONFIGS[key], reduction='none'))
    got = loss(pred, target)
    grad, = torch.autograd.grad(got.sum(), pred)
    got, grad = got.detach().double(), grad.double()
    ref = MMDET_BIG[key]
    rtol = 1e-11 if dtype == torch.float64 else 2e-5
    assert got.sum().item() == pytest.approx(ref['sum'], rel=rtol)
    assert (got ** 2).sum().item() == pytest.approx(ref['sumsq'], rel=rtol)
    assert (grad ** 2).sum().item() == pytest.approx(ref['gsumsq'], rel=rtol * 5)
    # the gradient sum cancels: compare on the scale of the gradient
    assert grad.sum().item() == pytest.approx(ref['gsum'], abs=rtol * 100)
    for row, name in ((0, 'g0'), (1, 'g1')):
        torch.testing.assert_close(grad[row], torch.tensor(ref[name], dtype=torch.float64),
                                   rtol=rtol * 10, atol=1e-15 if dtype == torch.float64 else 1e-7)


@pytest.mark.parametrize('key', list(CONFIGS))
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_reductions_match_mmdet(key, dtype):
    pred, target = tensors(0, 8, dtype)
    weight, weight4 = reduction_weights(dtype)
    cfg = CONFIGS[key]
    got = {
        'mean': build_loss(cfg)(pred, target),
        'sum_lw2': build_loss(dict(cfg, loss_weight=2.0, reduction='sum'))(pred, target),
        'w_mean': build_loss(cfg)(pred, target, weight=weight),
        'w_avg': build_loss(cfg)(pred, target, weight=weight, avg_factor=3.7),
        'w4_sum': build_loss(cfg)(pred, target, weight=weight4, reduction_override='sum'),
    }
    rel = 1e-12 if dtype == torch.float64 else 2e-6
    for name, value in MMDET_REDUCED[key].items():
        assert got[name].shape == ()
        assert got[name].item() == pytest.approx(value, rel=rel), name


def test_weight_per_coordinate_is_averaged():
    # mmdet averages a [N, 4] weight over the last dimension
    pred, target = tensors(0, 8)
    _, weight4 = reduction_weights(torch.float64)
    for loss_type in LOSS_TYPES:
        loss = build_loss(dict(type=loss_type, reduction='none'))
        torch.testing.assert_close(loss(pred, target, weight=weight4),
                                   loss(pred, target) * weight4.mean(-1), rtol=0, atol=0)


# --- the YOLO style ------------------------------------------------------------

def test_ciou_yolo_style_reproduces_ultralytics_v8_box_term():
    pred, target = tensors(0, 8, requires_grad=True)
    weight = torch.tensor(np.random.default_rng(4).uniform(0.0, 1.0, 8))
    ref = ULTRALYTICS_V8_BOX
    loss = build_loss(dict(type='CIoULoss', style='yolo'))
    got = loss(pred, target, weight=weight, avg_factor=ref['target_scores_sum'])
    grad, = torch.autograd.grad(got, pred)
    # ultralytics divides by the score sum, mmdet's convention adds eps32 to it
    scale = ref['target_scores_sum'] / (ref['target_scores_sum'] + EPS32)
    assert got.item() == pytest.approx(ref['value'] * scale, rel=1e-12)
    torch.testing.assert_close(grad, torch.tensor(ref['grad'], dtype=torch.float64) * scale,
                               rtol=1e-10, atol=1e-15)
    # float32, the training dtype
    pred32, target32 = tensors(0, 8, torch.float32, requires_grad=True)
    got32 = loss(pred32, target32, weight=weight.float(),
                 avg_factor=torch.tensor(ref['target_scores_sum'], dtype=torch.float32))
    assert got32.dtype == torch.float32
    assert got32.item() == pytest.approx(ref['value'], rel=2e-6)


def test_ciou_styles_differ_as_documented():
    mmdet, yolo = CIoULoss(), CIoULoss(style='yolo')
    assert mmdet.eps == 1e-6 and yolo.eps == 1e-7
    assert CIoULoss(style='yolo', eps=1e-3).eps == 1e-3
    # low IoU: mmdet has no aspect term (alpha gated), ultralytics has one
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[1.0, 1.0, 4.0, 3.0]], dtype=torch.float64)
    iou = 1 / 9
    diou = iou - 3.25 / 25
    v = 4 / math.pi ** 2 * (math.atan(1.5) - math.atan(1.0)) ** 2
    assert mmdet(pred, target).item() == pytest.approx(1 - diou, abs=1e-6)
    assert yolo(pred, target).item() == pytest.approx(1 - (diou - v * v / (1 - iou + v)), abs=1e-6)
    # far apart with opposite aspects: ultralytics' CIoU goes below -1
    # (-rho2/c2 - v^2/(1 + v)) and is not clamped; mmdet's alpha gate leaves
    # only -rho2/c2 there
    far = torch.tensor([[0.0, 0.0, 1.0, 10.0]], dtype=torch.float64)
    away = torch.tensor([[1000.0, 0.0, 1010.0, 1.0]], dtype=torch.float64)
    rho2 = 1004.5 ** 2 + 4.5 ** 2
    c2 = 1010.0 ** 2 + 10.0 ** 2
    v = 4 / math.pi ** 2 * (math.atan(10.0) - math.atan(0.1)) ** 2
    assert yolo.iou(far, away).item() == pytest.approx(-rho2 / c2 - v * v / (1 + v), rel=1e-6)
    assert yolo.iou(far, away).item() < -1.0
    assert yolo(far, away).item() == pytest.approx(1 - yolo.iou(far, away).item(), rel=1e-12)
    assert mmdet.iou(far, away).item() == pytest.approx(-rho2 / c2, rel=1e-6)


@pytest.mark.parametrize('loss_type', ['GIoULoss', 'DIoULoss', 'CIoULoss'])
def test_styled_losses_are_one_minus_their_iou(loss_type):
    pred, target = tensors(5, 32)
    for style in ('mmdet', 'yolo'):
        loss = build_loss(dict(type=loss_type, style=style, reduction='none'))
        torch.testing.assert_close(loss(pred, target), 1 - loss.iou(pred, target),
                                   rtol=0, atol=0)


def test_iou_method_of_each_loss():
    pred, target = tensors(5, 32)
    none = dict(reduction='none')
    siou = SIoULoss(**none)
    torch.testing.assert_close(siou(pred, target), 1 - siou.iou(pred, target), rtol=0, atol=0)
    assert (siou.iou(pred, target).abs() <= 1).all()
    for mode in ('linear', 'log', 'square'):
        iou = IoULoss(mode=mode, **none)
        value = iou.iou(pred, target)
        expected = {'linear': 1 - value, 'log': -value.log(), 'square': 1 - value ** 2}[mode]
        torch.testing.assert_close(iou(pred, target), expected, rtol=0, atol=0)
        assert (value >= 1e-6).all()
    eiou = EIoULoss(**none)
    distance = 1 - eiou.iou(pred, target)
    expected = torch.where(distance < 0.1, 0.5 * distance ** 2 / 0.1, distance - 0.05)
    torch.testing.assert_close(eiou(pred, target), expected, rtol=1e-12, atol=1e-15)
    # the similarity keeps the graph; detached it is a target
    grad_pred = pred.clone().requires_grad_()
    assert CIoULoss(style='yolo').iou(grad_pred, target).requires_grad
    assert not CIoULoss(style='yolo').iou(grad_pred.detach(), target).requires_grad


# --- reductions, weights, empty input -----------------------------------------

@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_zero_weight_gives_zero_without_the_mmdet_shortcut(loss_type):
    pred, target = tensors(0, 8, requires_grad=True)
    zero = torch.zeros(8, dtype=torch.float64)
    loss = build_loss(dict(type=loss_type))
    for kwargs in (dict(), dict(reduction_override='sum'), dict(avg_factor=3.0)):
        got = loss(pred, target, weight=zero, **kwargs)
        assert got.item() == 0.0
        grad, = torch.autograd.grad(got, pred)
        assert torch.equal(grad, torch.zeros_like(grad))
    # mmdet returns a scalar here; we keep the per-box zeros of 'none'
    none = loss(pred, target, weight=zero, reduction_override='none')
    assert torch.equal(none, torch.zeros(8, dtype=torch.float64))


@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_leading_dimensions(loss_type):
    pred, target = tensors(3, 24)
    loss = build_loss(dict(type=loss_type, reduction='none'))
    flat = loss(pred, target)
    shaped = loss(pred.view(2, 3, 4, 4), target.view(2, 3, 4, 4))
    assert shaped.shape == (2, 3, 4)
    torch.testing.assert_close(shaped.reshape(-1), flat, rtol=0, atol=0)
    weight = torch.rand(2, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(loss(pred.view(2, 3, 4, 4), target.view(2, 3, 4, 4), weight=weight),
                               shaped * weight, rtol=0, atol=0)
    # a weight that broadcasts to the boxes: one per image
    per_image = torch.tensor([[[1.0]], [[3.0]]], dtype=torch.float64)
    torch.testing.assert_close(loss(pred.view(2, 3, 4, 4), target.view(2, 3, 4, 4),
                                    weight=per_image), shaped * per_image, rtol=0, atol=0)


@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_empty_input(loss_type):
    pred = torch.zeros(0, 4, requires_grad=True)
    target = torch.zeros(0, 4)
    loss = build_loss(dict(type=loss_type))
    assert loss(pred, target, reduction_override='none').shape == (0,)
    total = loss(pred, target, reduction_override='sum')
    assert total.item() == 0.0
    averaged = loss(pred, target, weight=torch.zeros(0), avg_factor=0.0)
    assert averaged.item() == 0.0
    (total + averaged).backward()
    assert pred.grad.shape == (0, 4)


# --- numerics ------------------------------------------------------------------

@pytest.mark.parametrize('cfg', [dict(type=t) for t in LOSS_TYPES]
                         + [dict(type=t, style='yolo')
                            for t in ('GIoULoss', 'DIoULoss', 'CIoULoss')])
def test_half_inputs_and_autocast(cfg):
    pred, target = tensors(6, 64, torch.float32)
    loss = build_loss(cfg)
    expected = loss(pred.half().float(), target)
    half_pred = pred.half().requires_grad_()
    got = loss(half_pred, target.half())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(loss(pred.half().float(), target.half().float()).item(),
                                       rel=1e-6)
    got.backward()
    assert half_pred.grad.dtype == torch.float16 and torch.isfinite(half_pred.grad).all()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        under = loss(pred, target)
    assert under.dtype == torch.float32
    assert under.item() == pytest.approx(loss(pred, target).item(), rel=1e-6)
    assert expected.item() == pytest.approx(loss(pred, target).item(), rel=1e-3)


@pytest.mark.parametrize('cfg', [dict(type=t) for t in LOSS_TYPES]
                         + [dict(type='CIoULoss', style='yolo')])
def test_degenerate_boxes_finite(cfg):
    pred = torch.tensor([[100.0, 100.0, 300.0, 250.0], [5.0, 5.0, 5.0, 5.0],
                         [5.0, 0.0, 5.0, 3.0], [0.0, 0.0, 1.0, 1.0]], requires_grad=True)
    target = torch.tensor([[100.0, 100.0, 300.0, 250.0], [5.0, 5.0, 5.0, 5.0],
                           [5.0, 1.0, 5.0, 2.0], [1e4, 1e4, 1e4 + 2.0, 1e4 + 3.0]])
    got = build_loss(dict(cfg, reduction='none'))(pred, target)
    assert torch.isfinite(got).all()
    # identical boxes cost nothing (mmdet's CIoU gives NaN for this pair)
    assert got[0].item() == pytest.approx(0.0, abs=1e-6)
    grad, = torch.autograd.grad(got.sum(), pred)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_conformance_kit(loss_type):
    def make_inputs(device, dtype):
        xy = torch.rand(12, 2, device=device, dtype=dtype) * 20
        wh = torch.rand(12, 2, device=device, dtype=dtype) * 10 + 1
        pred = torch.cat([xy, xy + wh], -1)
        target = pred + torch.randn(12, 4, device=device, dtype=dtype)
        target = torch.cat([target[:, :2], torch.maximum(target[:, 2:], target[:, :2] + 0.5)], -1)
        return pred, target, (12,)

    report = check_loss_conventions(dict(type=loss_type), make_inputs, elementwise_shape=(12,))
    assert not report.skipped


# --- no host sync on the fast path ----------------------------------------------

class NoHostSync(TorchDispatchMode):
    """Fails on every aten op that reads tensor values back to the host."""
    SYNCING = {'_local_scalar_dense', 'nonzero', 'masked_select', 'is_nonzero', 'equal',
               '_unique2', 'unique_dim', 'unique_consecutive', 'item'}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in self.SYNCING:
            raise AssertionError(f'host sync: aten.{func.overloadpacket.__name__}')
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('cfg', [dict(type=t) for t in LOSS_TYPES]
                         + [dict(type='CIoULoss', style='yolo')])
def test_no_host_sync_without_validation(cfg):
    pred, target = tensors(0, 8, torch.float32, requires_grad=True)
    weight = torch.rand(8)
    avg_factor = weight.sum()
    loss = build_loss(dict(cfg, validate=False))
    with NoHostSync():
        value = loss(pred, target, weight=weight, avg_factor=avg_factor)
        loss.iou(pred, target)
        value.backward()
    # the detector works: validation reads values back
    with pytest.raises(AssertionError, match='host sync'):
        with NoHostSync():
            build_loss(dict(cfg, validate=True))(pred, target)


# --- bad input -------------------------------------------------------------------

@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_validation_names_the_argument(loss_type):
    pred, target = tensors(0, 8, torch.float32)
    loss = build_loss(dict(type=loss_type))
    bad = pred.clone()
    bad[3, 1] = float('nan')
    with pytest.raises(ValueError, match='pred contains NaN'):
        loss(bad, target)
    bad = target.clone()
    bad[2, 0] = float('inf')
    with pytest.raises(ValueError, match='target contains infinite'):
        loss(pred, bad)
    flipped = target.clone()
    flipped[1] = torch.tensor([5.0, 5.0, 4.0, 9.0])
    with pytest.raises(ValueError, match='target has boxes of negative width or height'):
        loss(pred, flipped)
    with pytest.raises(ValueError, match='pred has boxes of negative'):
        loss.iou(flipped, pred)
    weight = torch.ones(8)
    weight[0] = float('nan')
    with pytest.raises(ValueError, match='weight contains NaN'):
        loss(pred, target, weight=weight)
    # validate=False (per loss, or the global switch) skips the value checks
    quiet = build_loss(dict(type=loss_type, validate=False))
    assert torch.isfinite(quiet(pred, flipped))
    with yolo_losses.validation(False):
        assert torch.isfinite(loss(pred, flipped))


@pytest.mark.parametrize('loss_type', LOSS_TYPES)
def test_shape_and_type_errors(loss_type):
    loss = build_loss(dict(type=loss_type, validate=False))
    boxes = torch.rand(6, 4)
    with pytest.raises(ValueError, match='pred must have last dimension 4'):
        loss(torch.rand(6, 5), boxes)
    with pytest.raises(ValueError, match='target must have the shape of pred'):
        loss(boxes, torch.rand(1, 4))
    with pytest.raises(ValueError, match='weight must have shape'):
        loss(boxes, boxes, weight=torch.ones(6, 1))
    with pytest.raises(ValueError, match='weight must have shape'):
        loss(boxes, boxes, weight=torch.ones(5))
    with pytest.raises(TypeError, match='weight must be a torch.Tensor'):
        loss(boxes, boxes, weight=[1.0] * 6)
    with pytest.raises(TypeError, match='pred must be a floating-point tensor'):
        loss(torch.ones(6, 4, dtype=torch.long), boxes)
    with pytest.raises(TypeError, match='target must be a torch.Tensor'):
        loss(boxes, boxes.tolist())
    with pytest.raises(ValueError, match='reduction_override'):
        loss(boxes, boxes, reduction_override='avg')
    with pytest.raises(ValueError, match='reduction'):
        build_loss(dict(type=loss_type, reduction='avg'))
    with pytest.raises(ValueError, match='eps'):
        build_loss(dict(type=loss_type, eps=-1e-6))
    with pytest.raises(TypeError, match='unexpected keyword'):
        build_loss(dict(type=loss_type, gamma=2.0))


def test_constructor_options():
    with pytest.raises(ValueError, match='mode'):
        IoULoss(mode='cube')
    with pytest.warns(DeprecationWarning, match='linear'):
        deprecated = IoULoss(linear=True)
    assert deprecated.mode == 'linear' and deprecated.linear
    with pytest.warns(DeprecationWarning, match='linear'):
        iou_loss(torch.tensor(PRED), torch.tensor(TARGET), linear=True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert IoULoss().mode == 'log'
    with pytest.raises(ValueError, match='smooth_point'):
        EIoULoss(smooth_point=0.0)
    with pytest.raises(TypeError, match='neg_gamma'):
        SIoULoss(neg_gamma='yes')
    with pytest.raises(ValueError, match='style'):
        CIoULoss(style='v5')
    with pytest.raises(ValueError, match='style'):
        GIoULoss(style='torchvision')
    # mmdet 3.3.0 defaults: eps 1e-6 in every module
    for cls in (IoULoss, GIoULoss, DIoULoss, CIoULoss, EIoULoss, SIoULoss):
        module = cls()
        assert module.eps == 1e-6 and module.reduction == 'mean' and module.loss_weight == 1.0
    assert EIoULoss().smooth_point == 0.1 and SIoULoss().neg_gamma is False
    for style in ('mmdet', 'yolo'):
        assert build_loss(dict(type='DIoULoss', style=style)).style == style
    assert MODELS.get('CIoULoss') is CIoULoss


def test_functional_forms_take_weight_and_reduction():
    pred, target = tensors(0, 8)
    weight, _ = reduction_weights(torch.float64)
    for function, key in ((giou_loss, 'giou'), (diou_loss, 'diou'), (ciou_loss, 'ciou'),
                          (eiou_loss, 'eiou'), (siou_loss, 'siou')):
        module = build_loss(dict(CONFIGS[key], reduction='none'))
        torch.testing.assert_close(
            function(pred, target, weight, reduction='sum', eps=1e-6),
            (module(pred, target) * weight).sum(), rtol=1e-14, atol=0)
    torch.testing.assert_close(iou_loss(pred, target, reduction='none'),
                               IoULoss(reduction='none')(pred, target), rtol=0, atol=0)


# --- CUDA (skipped without a GPU) ---------------------------------------------------

CUDA_CONFIGS = [dict(type=t) for t in LOSS_TYPES] + [dict(type='CIoULoss', style='yolo')]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('cfg', CUDA_CONFIGS)
def test_cuda_no_sync_matches_cpu_and_captures_in_a_graph(cfg):
    loss = build_loss(dict(cfg, validate=False))
    pred_cpu, target_cpu = tensors(1, 512, torch.float32)
    weight_cpu = torch.rand(512)
    cpu_pred = pred_cpu.clone().requires_grad_()
    cpu_value = loss(cpu_pred, target_cpu, weight=weight_cpu, avg_factor=weight_cpu.sum())
    cpu_value.backward()

    device = torch.device('cuda')
    pred = pred_cpu.to(device).requires_grad_()
    target, weight = target_cpu.to(device), weight_cpu.to(device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        value = loss(pred, target, weight=weight, avg_factor=weight.sum())
        value.backward()
        loss.iou(pred.detach(), target)
    finally:
        torch.cuda.set_sync_debug_mode('default')
    torch.testing.assert_close(value.cpu(), cpu_value.detach(), rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(pred.grad.cpu(), cpu_pred.grad, rtol=2e-4, atol=1e-6)

    # CUDA graph: warm up on a side stream, capture, replay on new values
    static_pred = pred.detach().clone().requires_grad_()
    static_target, static_weight = target.clone(), weight.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            static_pred.grad = None
            loss(static_pred, static_target, weight=static_weight,
                 avg_factor=static_weight.sum()).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    static_pred.grad = None
    with torch.cuda.graph(graph):
        static_value = loss(static_pred, static_target, weight=static_weight,
                            avg_factor=static_weight.sum())
        static_value.backward()
    new_pred, new_target = tensors(2, 512, torch.float32)
    new_weight = torch.rand(512)
    with torch.no_grad():
        static_pred.copy_(new_pred.to(device))
        static_target.copy_(new_target.to(device))
        static_weight.copy_(new_weight.to(device))
    graph.replay()
    eager_pred = new_pred.to(device).requires_grad_()
    eager_weight = new_weight.to(device)
    eager_value = loss(eager_pred, new_target.to(device), weight=eager_weight,
                       avg_factor=eager_weight.sum())
    eager_value.backward()
    torch.testing.assert_close(static_value, eager_value, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(static_pred.grad, eager_pred.grad, rtol=2e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('cfg', CUDA_CONFIGS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cuda_autocast(cfg, dtype):
    loss = build_loss(cfg)
    pred, target = tensors(3, 256, torch.float32)
    pred, target = pred.cuda(), target.cuda()
    low = pred.to(dtype).requires_grad_()
    with torch.autocast('cuda', dtype=dtype):
        value = loss(low, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(low.grad).all()
    expected = loss(low.detach().float(), target)
    torch.testing.assert_close(value.detach(), expected, rtol=1e-5, atol=1e-6)

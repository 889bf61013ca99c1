"""Tests of ``yolo_losses/ops/boxes.py``: conversions, areas, pairwise IoU.

Expected values: hand computation and ultralytics 8.4.190 / yolov5 7.0.14
numbers pasted from a scratch venv.
"""
import numpy as np
import pytest
import torch

from yolo_losses.ops.boxes import (box_area, cxcywh_to_xyxy, pairwise_box_iou, wh_iou,
                                   xywh_to_xyxy, xyxy_to_cxcywh, xyxy_to_xywh)


def make_boxes(seed, n):
    """Seeded xyxy pairs (the generator of test_iou_ops.py)."""
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


# expected: ultralytics 8.4.190 utils.ops xyxy2xywh (centre format), xywh2xyxy,
# xyxy2ltwh, ltwh2xyxy on P = make_boxes(0, 5)[0] (float64); metrics.box_iou(P, T)
# and box_iou(P, P) with T = make_boxes(0, 5)[1][:4] (it computes in float32);
# yolov5 7.0.14 utils.metrics.wh_iou(P sizes, T sizes) (eps 1e-7, float64).
# Computed in a scratch venv.
BOX_REF = {'xyxy2xywh': [[44.17796090083493, 14.029043940660664, 24.65975306952443,
                1.0794165049342954],
               [14.981038207329489, 1.813372618355688, 25.86472402103951,
                1.9739816838584665],
               [51.743515933247814, 48.68478536262319, 22.160007946468383,
                6.094012997474209],
               [43.347883162432346, 44.82601574281175, 26.03218874814671,
                16.70237538722366],
               [32.02707198606322, 53.38258589675446, 9.69164482558416,
                13.257929414732097]],
 'xywh2xyxy': [[3.594165648274142, 6.20495959162961, 60.10200308387129, 20.77371178475742],
               [-11.908023912114889, -0.5737999537160059, 16.005376305734355,
                2.2265635065689153],
               [9.25175200677262, 19.771882933205937, 72.07527191325462, 71.50367479456622],
               [2.1498000201061416, 9.88622633098813, 58.51377755661184, 63.06342976741171],
               [8.744802373843491, 16.747845887328157, 45.61769677269879,
                76.75939649144867]],
 'xyxy2ltwh': [[31.848084366072715, 13.489335688193515, 24.65975306952443,
                1.0794165049342954],
               [2.0486761968097342, 0.8263817764264547, 25.86472402103951,
                1.9739816838584665],
               [40.66351196001362, 45.63777886388608, 22.160007946468383,
                6.094012997474209],
               [30.331788788358992, 36.47482804919992, 26.03218874814671,
                16.70237538722366],
               [27.181249573271142, 46.75362118938841, 9.69164482558416,
                13.257929414732097]],
 'ltwh2xyxy': [[31.848084366072715, 13.489335688193515, 88.35592180166987,
                28.058087881321327],
               [2.0486761968097342, 0.8263817764264547, 29.962076414658977,
                3.626745236711376],
               [40.66351196001362, 45.63777886388608, 103.48703186649563,
                97.36957072524638],
               [30.331788788358992, 36.47482804919992, 86.69576632486469, 89.6520314856235],
               [27.181249573271142, 46.75362118938841, 64.05414397212644,
                106.76517179350893]],
 'box_iou_f32': [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0],
                 [0.0, 0.0, 0.7409324645996094, 0.0],
                 [0.0, 0.0, 0.1586744487285614, 0.050299204885959625],
                 [0.0, 0.0, 0.0, 0.21753466129302979]],
 'box_iou_self_f32': [[1.0, 0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 1.0, 0.20178429782390594, 0.0],
                      [0.0, 0.0, 0.20178429782390594, 1.0, 0.08060519397258759],
                      [0.0, 0.0, 0.0, 0.08060519397258759, 1.0]],
 'wh_iou': [[0.8261321801831255, 0.3733868863003983, 0.19156284890248093,
             0.04333754466113686],
            [0.4980562880328651, 0.7161965928304994, 0.3419295522291069,
             0.07665712369820898],
            [0.1633436891632001, 0.4080852188921927, 0.8635136724758258,
             0.2207632492819381],
            [0.06236415694143785, 0.16117626002797134, 0.30416038949139734,
             0.43591190669442825],
            [0.06830401309761366, 0.15062553986623317, 0.2622292524420454,
             0.379310271556772]]}


def seeded():
    p, t = make_boxes(0, 5)
    return torch.tensor(p), torch.tensor(t[:4])


def test_conversions_by_hand():
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 8.0]])
    torch.testing.assert_close(xyxy_to_cxcywh(xyxy), torch.tensor([[3.0, 5.0, 4.0, 6.0]]))
    torch.testing.assert_close(cxcywh_to_xyxy(torch.tensor([[3.0, 5.0, 4.0, 6.0]])), xyxy)
    torch.testing.assert_close(xyxy_to_xywh(xyxy), torch.tensor([[1.0, 2.0, 4.0, 6.0]]))
    torch.testing.assert_close(xywh_to_xyxy(torch.tensor([[1.0, 2.0, 4.0, 6.0]])), xyxy)


def test_conversions_match_ultralytics():
    boxes, _ = seeded()
    for ours, key in ((xyxy_to_cxcywh, 'xyxy2xywh'), (cxcywh_to_xyxy, 'xywh2xyxy'),
                      (xyxy_to_xywh, 'xyxy2ltwh'), (xywh_to_xyxy, 'ltwh2xyxy')):
        torch.testing.assert_close(ours(boxes), torch.tensor(BOX_REF[key], dtype=torch.float64),
                                   rtol=1e-15, atol=1e-13)


def test_conversions_round_trip_keep_shape_dtype_and_grad():
    boxes = torch.rand(2, 3, 4, dtype=torch.float64, requires_grad=True)
    for forward, backward in ((xyxy_to_cxcywh, cxcywh_to_xyxy), (xyxy_to_xywh, xywh_to_xyxy)):
        out = backward(forward(boxes))
        assert out.shape == (2, 3, 4) and out.dtype == torch.float64
        torch.testing.assert_close(out, boxes, rtol=1e-14, atol=1e-14)
    assert torch.autograd.gradcheck(xyxy_to_cxcywh, (boxes,))
    assert cxcywh_to_xyxy(torch.zeros(0, 4)).shape == (0, 4)
    half = xyxy_to_cxcywh(torch.tensor([[1.0, 2.0, 5.0, 8.0]], dtype=torch.float16))
    assert half.dtype == torch.float16


def test_box_area():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 3.0], [1.0, 1.0, 1.0, 5.0], [3.0, 3.0, 1.0, 5.0]])
    # a zero-width box has area 0; negative sizes count as 0
    torch.testing.assert_close(box_area(boxes), torch.tensor([6.0, 0.0, 0.0]))
    assert box_area(torch.zeros(2, 0, 4)).shape == (2, 0)


def test_pairwise_box_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 4.0, 3.0], [0.5, 0.0, 1.5, 1.0], [5.0, 5.0, 6.0, 6.0]])
    # the 1x1 box inside the 2x2 one: 1 / 4
    expected = torch.tensor([[1 / 9, 1 / 4, 0.0],
                             [0.0, 0.5 / 1.5, 0.0]])
    torch.testing.assert_close(pairwise_box_iou(a, b), expected, rtol=1e-6, atol=1e-7)
    assert pairwise_box_iou(a, torch.zeros(0, 4)).shape == (2, 0)
    # leading (batch) dimensions broadcast
    batched = pairwise_box_iou(a.expand(3, 2, 4), b)
    assert batched.shape == (3, 2, 3)
    torch.testing.assert_close(batched[1], expected, rtol=1e-6, atol=1e-7)


def test_pairwise_box_iou_matches_ultralytics():
    boxes, others = seeded()
    torch.testing.assert_close(pairwise_box_iou(boxes, others).float(),
                               torch.tensor(BOX_REF['box_iou_f32']), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(pairwise_box_iou(boxes.float(), boxes.float()),
                               torch.tensor(BOX_REF['box_iou_self_f32']), rtol=1e-6, atol=1e-7)


def test_wh_iou_matches_yolov5():
    boxes, others = seeded()
    got = wh_iou(boxes[:, 2:] - boxes[:, :2], others[:, 2:] - others[:, :2], eps=1e-7)
    torch.testing.assert_close(got, torch.tensor(BOX_REF['wh_iou'], dtype=torch.float64),
                               rtol=1e-14, atol=1e-15)


def test_wh_iou_by_hand():
    # centred 2x4 and 4x2: overlap 2x2 = 4, union 8 + 8 - 4 = 12
    got = wh_iou(torch.tensor([[2.0, 4.0]]), torch.tensor([[4.0, 2.0], [2.0, 4.0]]))
    torch.testing.assert_close(got, torch.tensor([[1 / 3, 1.0]]))
    assert wh_iou(torch.zeros(0, 2), torch.ones(3, 2)).shape == (0, 3)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_pairwise_iou_is_symmetric_and_bounded(dtype):
    p, t = make_boxes(3, 30)
    a, b = torch.tensor(p, dtype=dtype), torch.tensor(t, dtype=dtype)
    forward, reverse = pairwise_box_iou(a, b), pairwise_box_iou(b, a)
    torch.testing.assert_close(forward, reverse.T, rtol=0, atol=0)
    assert ((forward >= 0) & (forward <= 1)).all()
    torch.testing.assert_close(pairwise_box_iou(a, a).diagonal(),
                               torch.ones(30, dtype=dtype), rtol=0, atol=1e-6)

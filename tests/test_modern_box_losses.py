"""The modern box losses (DESIGN.md "Modern box losses") against their
authors' code: values and gradients on random and edge boxes.

Expected numbers: ``tests/box_loss_references.py``, computed once with each
authors' function (repository and commit named there) in float64; MPDIoU
(no official code) and Focaler-IoU (one line of code) from their formulas
written out below.
"""
import math

import pytest
import torch

from yolo_losses import build_loss
from yolo_losses.testing import CHECKS, check_loss_conventions

from box_loss_references import CASES, PRED, REFERENCE, TARGET

ALL = tuple(CASES)
# The base of Inner(CIoU) is this library's ultralytics-style CIoU (xyxy:
# heights + eps); the authors' inner_ciou embeds a cxcywh CIoU without it.
# The two differ by O(eps / side) terms: visible only on the 1e-3 boxes.
NOT_TINY = tuple(c for c in CASES if c != 'tiny')
# Inner(SIoU) uses mmdet's SIoU (heights + eps, enclosing sides floored at
# eps), the authors embed a plain one: O(eps / side) apart, so 'tiny' and
# 'thin' (0.01 wide) differ beyond 1e-6.
NOT_TINY_THIN = tuple(c for c in CASES if c not in ('tiny', 'thin'))

REFERENCE_CASES = [
    ('inner_ciou-0.75', dict(type='InnerIoULoss', loss=dict(type='CIoULoss', style='yolo')),
     NOT_TINY),
    ('inner_ciou-1.25', dict(type='InnerIoULoss', loss=dict(type='CIoULoss', style='yolo'),
                             ratio=1.25), NOT_TINY),
    ('inner_siou-0.75', dict(type='InnerIoULoss',
                             loss=dict(type='SIoULoss', neg_gamma=True, eps=1e-7)),
     NOT_TINY_THIN),
    ('inner_siou-1.25', dict(type='InnerIoULoss',
                             loss=dict(type='SIoULoss', neg_gamma=True, eps=1e-7),
                             ratio=1.25), NOT_TINY_THIN),
    ('shape-0.0', dict(type='ShapeIoULoss'), ALL),
    ('shape-0.5', dict(type='ShapeIoULoss', scale=0.5), ALL),
    ('nwd-12.8', dict(type='NWDLoss'), ALL),
    ('nwd-2.0', dict(type='NWDLoss', constant=2.0), ALL),
    ('alpha-iou-3.0', dict(type='AlphaIoULoss', mode='iou'), ALL),
    ('alpha-giou-3.0', dict(type='AlphaIoULoss', mode='giou'), ALL),
    ('alpha-diou-3.0', dict(type='AlphaIoULoss', mode='diou'), ALL),
    ('alpha-ciou-3.0', dict(type='AlphaIoULoss'), ALL),
    ('alpha-ciou-2.0', dict(type='AlphaIoULoss', alpha=2.0), ALL),
    ('eiou-0.0', dict(type='EfficientIoULoss'), ALL),
    ('eiou-0.5', dict(type='EfficientIoULoss', gamma=0.5), ALL),
    ('piou-1', dict(type='PIoULoss'), ALL),
    ('piou-2', dict(type='PIoULoss', version=2), ALL),
]


def boxes(dtype=torch.float64):
    return (torch.tensor(PRED, dtype=dtype), torch.tensor(TARGET, dtype=dtype))


def values_and_grads(loss, dtype=torch.float64, **kwargs):
    pred, target = boxes(dtype)
    pred.requires_grad_(True)
    out = loss(pred, target, reduction_override='none', **kwargs)
    out.sum().backward()
    return out.detach().double(), pred.grad.double()


def assert_matches(key, value, grad, cases, rtol, atol):
    ref_value = torch.tensor(REFERENCE[key][0], dtype=torch.float64)
    ref_grad = torch.tensor(REFERENCE[key][1], dtype=torch.float64)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all(), (key, value, grad)
    for name in cases:
        i = CASES.index(name)
        if not (torch.isfinite(ref_value[i]) and torch.isfinite(ref_grad[i]).all()):
            continue  # the reference's NaN/inf; ours is finite (checked above)
        scale = ref_grad[i].abs().max().clamp(min=1.0)
        torch.testing.assert_close(value[i], ref_value[i], rtol=rtol, atol=atol,
                                   msg=lambda m: f'{key} value, case {name}: {m}')
        torch.testing.assert_close(grad[i], ref_grad[i], rtol=rtol, atol=atol * scale,
                                   msg=lambda m: f'{key} gradient, case {name}: {m}')


@pytest.mark.parametrize('key, cfg, cases', REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_equals_authors_code_float64(key, cfg, cases):
    value, grad = values_and_grads(build_loss(cfg))
    # Inner(SIoU): mmdet's SIoU puts eps on the heights and centre offsets
    # where the authors' copy does not: O(eps) apart
    atol = 1e-7 if key.startswith('inner_siou') else 1e-9
    assert_matches(key, value, grad, cases, rtol=1e-7, atol=atol)


@pytest.mark.parametrize('key, cfg, cases', REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_equals_authors_code_float32(key, cfg, cases):
    # 'huge' (1e4-pixel boxes) loses digits in float32 corner differences;
    # the remaining cases agree to float32 round-off.
    cases = tuple(c for c in cases if c not in ('huge', 'tiny'))
    value, grad = values_and_grads(build_loss(cfg), torch.float32)
    assert_matches(key, value, grad, cases, rtol=2e-4, atol=2e-5)


def test_reference_non_finite_cases_are_finite_here():
    """Where the authors' code gives NaN/inf (PIoU divides by the target
    width: zero-width target), the value is the limit and finite."""
    ref_grad = torch.tensor(REFERENCE['piou-1'][1])
    zero_w = CASES.index('zero_width_target')
    assert not torch.isfinite(ref_grad[zero_w]).all()  # the reference: NaN
    for cfg in (dict(type='PIoULoss'), dict(type='PIoULoss', version=2)):
        value, grad = values_and_grads(build_loss(cfg))
        assert torch.isfinite(grad).all()
    # v1: exp(-P^2) -> 0, L = 2 - IoU (IoU = 0 here); v2: x -> 0, L -> 0,
    # the reference's values.
    v1, _ = values_and_grads(build_loss(dict(type='PIoULoss')))
    assert v1[zero_w].item() == pytest.approx(2.0)
    v2, _ = values_and_grads(build_loss(dict(type='PIoULoss', version=2)))
    assert v2[zero_w].item() == pytest.approx(0.0, abs=1e-12)


def test_degenerate_boxes_stay_finite():
    """Two zero-area boxes at one point, two zero-width boxes: NaN in several
    references (0/0); finite values and gradients here."""
    pred = torch.tensor([[2., 2., 2., 2.], [1., 0., 1., 5.], [0., 0., 0., 0.]],
                        dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[2., 2., 2., 2.], [1., 1., 1., 4.], [0., 0., 0., 0.]],
                          dtype=torch.float64)
    for cfg in (dict(type='WIoULoss'), dict(type='WIoULoss', version='v1'),
                dict(type='ShapeIoULoss', scale=1.0), dict(type='NWDLoss'),
                dict(type='AlphaIoULoss'), dict(type='EfficientIoULoss', gamma=0.5),
                dict(type='PIoULoss', version=2), dict(type='MPDIoULoss', img_size=(8, 8)),
                dict(type='InnerIoULoss', loss=dict(type='CIoULoss')),
                dict(type='FocalerIoULoss', loss=dict(type='SIoULoss'))):
        pred.grad = None
        out = build_loss(dict(cfg, reduction='none'))(pred, target)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(pred.grad).all(), cfg


# ---------------------------------------------------------------------------
# MPDIoU: arXiv 2307.07662, Algorithm 1 (no official code)
# ---------------------------------------------------------------------------
def mpdiou_formula(pred, target, h, w, eps=1e-7):
    """Algorithm 1 written out; IoU with ultralytics bbox_iou (xyxy) numerics."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    inter = ((torch.minimum(px2, tx2) - torch.maximum(px1, tx1)).clamp(min=0)
             * (torch.minimum(py2, ty2) - torch.maximum(py1, ty1)).clamp(min=0))
    union = (px2 - px1) * (py2 - py1 + eps) + (tx2 - tx1) * (ty2 - ty1 + eps) - inter + eps
    d1 = (px1 - tx1) ** 2 + (py1 - ty1) ** 2
    d2 = (px2 - tx2) ** 2 + (py2 - ty2) ** 2
    return 1 - (inter / union - d1 / (h ** 2 + w ** 2) - d2 / (h ** 2 + w ** 2))


def test_mpdiou_hand_case():
    # inter 4, union 28, d1^2 = d2^2 = 8, image 10 x 20: 1 - 1/7 + 16/500
    loss = build_loss(dict(type='MPDIoULoss', reduction='none'))
    value = loss(torch.tensor([[0., 0., 4., 4.]]), torch.tensor([[2., 2., 6., 6.]]),
                 img_size=(10, 20))
    assert value.item() == pytest.approx(1 - 1 / 7 + 16 / 500, rel=1e-6)


def test_mpdiou_formula_values_and_gradients():
    loss = build_loss(dict(type='MPDIoULoss'))
    value, grad = values_and_grads(loss, img_size=(640, 480))
    pred, target = boxes()
    pred.requires_grad_(True)
    expected = mpdiou_formula(pred, target, 640.0, 480.0)
    expected.sum().backward()
    torch.testing.assert_close(value, expected.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, pred.grad, rtol=1e-10, atol=1e-12)


def test_mpdiou_img_size_tensor_per_box_equals_pairs():
    pred, target = boxes()
    loss = build_loss(dict(type='MPDIoULoss', reduction='none'))
    sizes = torch.tensor([[640., 480.], [32., 16.]], dtype=torch.float64)
    per_box = sizes[torch.arange(len(PRED)) % 2]
    value = loss(pred, target, img_size=per_box)
    for i in range(len(PRED)):
        h, w = per_box[i].tolist()
        assert value[i].item() == pytest.approx(
            mpdiou_formula(pred[i], target[i], h, w).item(), rel=1e-12)
    # a [2] tensor broadcasts like the pair
    torch.testing.assert_close(loss(pred, target, img_size=sizes[0]),
                               loss(pred, target, img_size=(640, 480)))


def test_mpdiou_is_scale_invariant():
    """Boxes and image size in another unit (e.g. stride units) give the same
    loss: the penalty is normalised by the image, not by a box."""
    pred, target = boxes()
    # eps-sized terms vs 1e-3 boxes and 0.01-wide ones
    keep = [CASES.index(c) for c in CASES if c not in ('tiny', 'thin')]
    pred, target = pred[keep], target[keep]
    loss = build_loss(dict(type='MPDIoULoss', reduction='none'))
    pixels = loss(pred, target, img_size=(640, 480))
    strides = loss(pred / 8, target / 8, img_size=(80, 60))
    # equal up to the O(eps / side) terms of the IoU's eps
    torch.testing.assert_close(pixels, strides, rtol=1e-6, atol=1e-6)


def test_mpdiou_bad_img_size():
    pred, target = boxes()
    loss = build_loss(dict(type='MPDIoULoss'))
    with pytest.raises(ValueError, match='img_size'):
        loss(pred, target)
    with pytest.raises(ValueError, match='img_size'):
        loss(pred, target, img_size=(0, 10))
    with pytest.raises(TypeError, match='img_size'):
        loss(pred, target, img_size=(1, 2, 3))
    with pytest.raises(ValueError, match='img_size'):
        loss(pred, target, img_size=torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match='img_size'):
        loss(pred, target, img_size=-torch.ones(2, dtype=torch.float64))


# ---------------------------------------------------------------------------
# Focaler-IoU and Inner-IoU: formulas and every base
# ---------------------------------------------------------------------------
def plain_iou_mmdet(pred, target, eps=1e-6):
    """mmdet bbox_overlaps (aligned): union floored at eps."""
    inter = ((torch.minimum(pred[:, 2], target[:, 2]) - torch.maximum(pred[:, 0], target[:, 0]))
             .clamp(min=0)
             * (torch.minimum(pred[:, 3], target[:, 3]) - torch.maximum(pred[:, 1], target[:, 1]))
             .clamp(min=0))
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return inter / (area(pred) + area(target) - inter).clamp(min=eps)


def test_focaler_formula_with_linear_iou_base():
    # L = (1 - IoU) + IoU - clamp((IoU - d) / (u - d), 0, 1)  (Focaler-IoU
    # paper eq. 2-3; d4dfc34 focaleriou.py: iou = ((iou - d) / (u - d)).clamp(0, 1))
    d, u = 0.1, 0.8
    loss = build_loss(dict(type='FocalerIoULoss', loss=dict(type='IoULoss', mode='linear'),
                           d=d, u=u))
    value, grad = values_and_grads(loss)
    pred, target = boxes()
    pred.requires_grad_(True)
    iou = plain_iou_mmdet(pred, target)
    expected = (1 - iou.clamp(min=1e-6)) + iou - ((iou - d) / (u - d)).clamp(0, 1)
    expected.sum().backward()
    torch.testing.assert_close(value, expected.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, pred.grad, rtol=1e-10, atol=1e-12)


WRAPPED_BASES = [
    dict(type='IoULoss'), dict(type='IoULoss', mode='linear'), dict(type='GIoULoss'),
    dict(type='GIoULoss', style='yolo'), dict(type='DIoULoss'),
    dict(type='DIoULoss', style='yolo'), dict(type='CIoULoss'),
    dict(type='CIoULoss', style='yolo'), dict(type='SIoULoss'),
    dict(type='EfficientIoULoss'), dict(type='WIoULoss', momentum=0.0),
]


@pytest.mark.parametrize('base', WRAPPED_BASES,
                         ids=[f"{b['type']}-{b.get('style', b.get('mode', ''))}" for b in WRAPPED_BASES])
def test_wrappers_reduce_to_the_base(base):
    """Inner with ratio 1 (auxiliary boxes = the boxes) and Focaler with
    [d, u] = [0, 1] (identity map) give the base loss, up to the IoUs' eps."""
    pred, target = boxes()
    keep = [CASES.index(c) for c in CASES if c not in ('tiny',)]
    pred, target = pred[keep], target[keep]
    expected = build_loss(dict(base, reduction='none'))(pred, target)
    inner = build_loss(dict(type='InnerIoULoss', loss=base, ratio=1.0, reduction='none'))
    focaler = build_loss(dict(type='FocalerIoULoss', loss=base, d=0.0, u=1.0,
                              reduction='none'))
    torch.testing.assert_close(inner(pred, target), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(focaler(pred, target), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize('base', WRAPPED_BASES,
                         ids=[f"{b['type']}-{b.get('style', b.get('mode', ''))}" for b in WRAPPED_BASES])
def test_wrappers_add_back_the_plain_iou(base):
    """Inner: L = L_base + IoU - IoU_inner with IoU the plain overlap (not
    the base's penalised iou()), so the base's penalty survives (what the
    authors' inner_ciou computes). Disjoint boxes: both IoUs are 0, so the
    wrapper equals the base there for any ratio."""
    pred = torch.tensor([[0., 0., 2., 2.]], dtype=torch.float64)
    target = torch.tensor([[10., 12., 14., 16.]], dtype=torch.float64)
    expected = build_loss(dict(base, reduction='none'))(pred, target)
    for cfg in (dict(type='InnerIoULoss', ratio=0.6), dict(type='FocalerIoULoss', d=0.2, u=0.7)):
        got = build_loss(dict(cfg, loss=base, reduction='none'))(pred, target)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_wrapper_bad_arguments():
    with pytest.raises(TypeError, match='loss'):
        build_loss(dict(type='InnerIoULoss', loss='CIoULoss'))
    with pytest.raises(TypeError, match='iou'):
        build_loss(dict(type='InnerIoULoss', loss=dict(type='L1Loss')))
    with pytest.raises(ValueError, match='ratio'):
        build_loss(dict(type='InnerIoULoss', loss=dict(type='CIoULoss'), ratio=0))
    with pytest.raises(ValueError, match='d and u'):
        build_loss(dict(type='FocalerIoULoss', loss=dict(type='CIoULoss'), d=0.5, u=0.5))
    with pytest.raises(ValueError, match='loss_weight'):
        build_loss(dict(type='FocalerIoULoss', loss=dict(type='CIoULoss', loss_weight=2.0)))


def test_efficient_iou_is_not_mmdet_eiou():
    """Same boxes, different losses: Efficient-IoU has width/height terms,
    mmdet's EIoULoss (extended IoU, smooth-L1) has none."""
    pred = torch.tensor([[0., 0., 4., 4.]])
    target = torch.tensor([[0., 0., 4., 8.]])
    # 1 - 0.5 + 2^2 / (4^2 + 8^2) + 0 / 4^2 + 4^2 / 8^2 (eps ~ 0)
    efficient = build_loss(dict(type='EfficientIoULoss'))(pred, target)
    assert efficient.item() == pytest.approx(0.5 + 4 / 80 + 0.25, rel=1e-5)
    extended = build_loss(dict(type='EIoULoss'))(pred, target)
    assert extended.item() == pytest.approx(0.5 - 0.05, rel=1e-5)  # d - 0.5 * 0.1


@pytest.mark.parametrize('cfg, match', [
    (dict(type='WIoULoss', version='v4'), 'version'),
    (dict(type='WIoULoss', momentum=1.5), 'momentum'),
    (dict(type='WIoULoss', alpha=0), 'alpha'),
    (dict(type='AlphaIoULoss', mode='eiou'), 'mode'),
    (dict(type='AlphaIoULoss', alpha=-1), 'alpha'),
    (dict(type='PIoULoss', version=3), 'version'),
    (dict(type='NWDLoss', constant=0), 'constant'),
    (dict(type='ShapeIoULoss', scale=-1), 'scale'),
    (dict(type='EfficientIoULoss', gamma=-0.5), 'gamma'),
])
def test_bad_constructor_arguments(cfg, match):
    with pytest.raises(ValueError, match=match):
        build_loss(cfg)


# ---------------------------------------------------------------------------
# Conformance kit
# ---------------------------------------------------------------------------
N = 8


def xyxy_boxes(device, dtype):
    corner = torch.rand(N, 2, device=device, dtype=dtype) * 16
    size = torch.rand(N, 2, device=device, dtype=dtype) * 6 + 2
    target = torch.cat([corner, corner + size], dim=1)
    jitter = torch.randn(N, 2, device=device, dtype=dtype) * 2
    grow = torch.rand(N, 2, device=device, dtype=dtype) * 1.5 + 0.5
    pred_corner = corner + jitter
    return torch.cat([pred_corner, pred_corner + size * grow], dim=1), target


KIT_CASES = [
    # the kit calls the loss many times; with momentum 0 the WIoU mean stays
    # 1 so the calls are comparable (the state is tested below)
    dict(type='WIoULoss', momentum=0.0), dict(type='WIoULoss', version='v1'),
    dict(type='WIoULoss', version='v2', momentum=0.0),
    dict(type='MPDIoULoss', img_size=(20, 24)),
    dict(type='InnerIoULoss', loss=dict(type='CIoULoss', style='yolo')),
    dict(type='FocalerIoULoss', loss=dict(type='SIoULoss')),
    dict(type='ShapeIoULoss'), dict(type='NWDLoss'), dict(type='AlphaIoULoss'),
    dict(type='AlphaIoULoss', mode='giou'), dict(type='EfficientIoULoss'),
    dict(type='EfficientIoULoss', gamma=0.5), dict(type='PIoULoss'),
    dict(type='PIoULoss', version=2),
]


@pytest.mark.parametrize('cfg', KIT_CASES, ids=[
    '-'.join(str(v) for k, v in c.items() if k != 'loss') for c in KIT_CASES])
def test_passes_the_conformance_kit(cfg):
    report = check_loss_conventions(cfg, xyxy_boxes, elementwise_shape=(N,),
                                    weight_shape=(N,))
    ran = {entry.split('[')[0] for entry in report.passed}
    assert ran == set(CHECKS) and not report.skipped, report


@pytest.mark.parametrize('cfg', KIT_CASES, ids=[
    '-'.join(str(v) for k, v in c.items() if k != 'loss') for c in KIT_CASES])
def test_no_host_sync_when_not_validating(cfg):
    """validate=False, training mode (WIoU's update runs): forward and
    backward read no tensor value on the host (the composites' guard)."""
    from test_composite_no_sync import NoHostSync

    pred, target = xyxy_boxes('cpu', torch.float32)
    pred.requires_grad_(True)
    weight = (torch.arange(N) % 3 != 0).float()
    loss = build_loss(dict(cfg, validate=False)).train()
    kwargs = {}
    if cfg['type'] == 'MPDIoULoss':
        kwargs = dict(img_size=torch.full((N, 2), 20.0))
    with NoHostSync(pred.device):
        out = loss(pred, target, weight=weight, avg_factor=weight.sum(), **kwargs)
        out.backward()
    assert torch.isfinite(out) and torch.isfinite(pred.grad).all()


# ---------------------------------------------------------------------------
# CUDA (skipped without a GPU): no sync, CUDA-graph capture
# ---------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
@pytest.mark.parametrize('cfg', KIT_CASES, ids=[
    '-'.join(str(v) for k, v in c.items() if k != 'loss') for c in KIT_CASES])
def test_cuda_no_sync_and_graph_capture(cfg):
    device = torch.device('cuda')
    loss = build_loss(dict(cfg, validate=False)).to(device).train()
    pred, target = xyxy_boxes(device, torch.float32)
    weight = torch.rand(N, device=device)
    kwargs = dict(img_size=torch.full((N, 2), 20.0, device=device)) \
        if cfg['type'] == 'MPDIoULoss' else {}

    def call(p, t, w):
        return loss(p, t, weight=w, avg_factor=w.sum(), **kwargs)

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        leaf = pred.clone().requires_grad_()
        call(leaf, target, weight).backward()
        loss.iou(pred, target)
    finally:
        torch.cuda.set_sync_debug_mode('default')

    static_pred = pred.clone().requires_grad_()
    static_target, static_weight = target.clone(), weight.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            static_pred.grad = None
            call(static_pred, static_target, static_weight).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    static_pred.grad = None
    with torch.cuda.graph(graph):
        static_value = call(static_pred, static_target, static_weight)
        static_value.backward()
    new_pred, new_target = xyxy_boxes(device, torch.float32)
    with torch.no_grad():
        static_pred.copy_(new_pred)
        static_target.copy_(new_target)
    graph.replay()
    eager = new_pred.clone().requires_grad_()
    expected = call(eager, new_target, weight)
    expected.backward()
    # the graph keeps the running mean's in-place update; momentum 0 or v1
    # keeps the WIoU values comparable
    torch.testing.assert_close(static_value, expected, rtol=2e-5, atol=1e-6)
    torch.testing.assert_close(static_pred.grad, eager.grad, rtol=2e-5, atol=1e-6)

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.varifocal_loss import VarifocalLoss, varifocal_loss

EPS32 = torch.finfo(torch.float32).eps  # mmdet's avg_factor eps


def vfl_inputs(seed=1, n=6, c=4):
    """Seeded inputs (numpy): logits, IoU-aware targets (about 40 % positive,
    0 elsewhere), one weight per prior as [N, 1]."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, c))
    iou = rng.uniform(0.0, 1.0, (n, c))
    target = np.where(rng.uniform(0.0, 1.0, (n, c)) > 0.6, iou, 0.0)
    weight = rng.uniform(0.0, 1.0, (n, 1))
    return logits, target, weight


def plain_varifocal(pred, target, alpha=0.75, gamma=2.0, iou_weighted=True):
    """The VarifocalNet formula written out, as mmdet 3.3 writes the weight."""
    p = torch.sigmoid(pred)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))
    positive = (target > 0).double()
    negative_weight = alpha * (p - target).abs() ** gamma * (1 - positive)
    positive_weight = (target if iou_weighted else 1.0) * positive
    return bce * (positive_weight + negative_weight)


def run_with_grad(loss, pred, *args, **kwargs):
    pred = pred.clone().requires_grad_(True)
    out = loss(pred, *args, **kwargs)
    out.sum().backward()
    return out.detach(), pred.grad


def test_hand_computed_small_case():
    # p = sigmoid([0, ln 3]) = [1/2, 3/4]; a positive of IoU 0.8, a negative
    pred = torch.tensor([[0.0, math.log(3.0)]])
    target = torch.tensor([[0.8, 0.0]])
    positive = 0.8 * math.log(2.0)                 # q * BCE(0, q) = q * ln 2
    negative = 0.75 * 0.75 ** 2 * math.log(4.0)    # alpha p^2 * (-ln(1 - p))
    assert VarifocalLoss(reduction='sum')(pred, target).item() == \
        pytest.approx(positive + negative, rel=1e-6)
    unweighted = VarifocalLoss(iou_weighted=False, reduction='sum')(pred, target)
    assert unweighted.item() == pytest.approx(math.log(2.0) + negative, rel=1e-6)
    none = VarifocalLoss(reduction='none')(pred, target)
    torch.testing.assert_close(none, torch.tensor([[positive, negative]]))


# expected: mmdet 3.3.0 VarifocalLoss (CPU, float32), computed in a scratch
# venv on vfl_inputs(); grad is d(sum of output)/d(pred).
MMDET_VFL = {
    'iou_weighted, weight [N, 1], avg_factor 2.5': dict(
        value=2.9255127906799316, grad_sum=1.004087209701538, grad_sq=0.27907460927963257,
        grad_first=0.16664093732833862, grad_last=0.29744479060173035),
    'alpha 0.5, gamma 1.5, not iou_weighted, sum': dict(
        value=13.540775299072266, grad_sum=2.6288318634033203, grad_sq=2.1666905879974365,
        grad_first=0.33051633834838867, grad_last=0.5220757126808167),
}
MMDET_VFL_NONE = [  # mmdet 3.3.0 VarifocalLoss(), reduction 'none'
    0.36528199911117554, 0.4558946490287781, 0.38942909240722656, 0.21954011917114258,
    1.0870221853256226, 0.35897350311279297, 0.014295819215476513, 0.6242232918739319,
    0.4165783226490021, 0.44506382942199707, 0.4212114214897156, 0.581689715385437,
    0.005384624470025301, 0.07164446264505386, 0.35181236267089844, 0.08646851032972336,
    0.43783998489379883, 0.042522139847278595, 0.004271393641829491, 0.15669846534729004,
    0.5775408148765564, 0.374932199716568, 1.726210594177246, 1.2484291791915894]
MMDET_VFL_NONE_GRAD = dict(grad_sum=3.6824440956115723, grad_sq=3.1832222938537598,
                           grad_first=0.4656253159046173, grad_last=0.8090753555297852)


def _assert_matches(value, grad, expected, rtol=2e-6):
    if 'value' in expected:
        assert value.item() == pytest.approx(expected['value'], rel=rtol)
    assert grad.sum().item() == pytest.approx(expected['grad_sum'], rel=rtol)
    assert grad.square().sum().item() == pytest.approx(expected['grad_sq'], rel=rtol)
    assert grad[0, 0].item() == pytest.approx(expected['grad_first'], rel=rtol)
    assert grad[-1, -1].item() == pytest.approx(expected['grad_last'], rel=rtol)


def test_matches_mmdet_reference_values():
    logits, target, weight = (torch.tensor(a, dtype=torch.float32) for a in vfl_inputs())
    value, grad = run_with_grad(VarifocalLoss(), logits, target, weight=weight, avg_factor=2.5)
    _assert_matches(value, grad, MMDET_VFL['iou_weighted, weight [N, 1], avg_factor 2.5'])
    value, grad = run_with_grad(VarifocalLoss(alpha=0.5, gamma=1.5, iou_weighted=False),
                                logits, target, reduction_override='sum')
    _assert_matches(value, grad, MMDET_VFL['alpha 0.5, gamma 1.5, not iou_weighted, sum'])
    value, grad = run_with_grad(VarifocalLoss(), logits, target, reduction_override='none')
    torch.testing.assert_close(value.flatten(), torch.tensor(MMDET_VFL_NONE), rtol=2e-6, atol=1e-7)
    _assert_matches(value, grad, MMDET_VFL_NONE_GRAD)


@pytest.mark.parametrize('alpha, gamma, iou_weighted',
                         [(0.75, 2.0, True), (0.5, 1.5, False), (1.0, 0.0, True),
                          (0.0, 3.0, False)])
def test_matches_plain_formula_with_all_options(alpha, gamma, iou_weighted):
    logits, target, weight = (torch.tensor(a) for a in vfl_inputs(seed=4, n=7, c=5))
    element = plain_varifocal(logits, target, alpha, gamma, iou_weighted)
    loss = VarifocalLoss(alpha=alpha, gamma=gamma, iou_weighted=iou_weighted, loss_weight=0.5)
    close = dict(rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(loss(logits, target, reduction_override='none'), 0.5 * element,
                               **close)
    torch.testing.assert_close(loss(logits, target), 0.5 * element.mean(), **close)
    torch.testing.assert_close(loss(logits, target, reduction_override='sum'), 0.5 * element.sum(),
                               **close)
    weighted = element * weight
    torch.testing.assert_close(loss(logits, target, weight), 0.5 * weighted.mean(), **close)
    torch.testing.assert_close(loss(logits, target, weight, avg_factor=4.0),
                               0.5 * weighted.sum() / (4.0 + EPS32), **close)
    torch.testing.assert_close(loss(logits, target, weight, avg_factor=4.0,
                                    reduction_override='none'), 0.5 * weighted, **close)
    with pytest.raises(ValueError, match='avg_factor'):
        loss(logits, target, avg_factor=4.0, reduction_override='sum')
    # functional form; weight broadcasts as in mmdet (here per class)
    class_weight = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    torch.testing.assert_close(
        varifocal_loss(logits, target, class_weight, reduction='sum', alpha=alpha, gamma=gamma,
                       iou_weighted=iou_weighted),
        (element * class_weight).sum(), **close)


def test_gradcheck_float64():
    logits, target, weight = (torch.tensor(a) for a in vfl_inputs(seed=5, n=4, c=3))
    pred = logits.clone().requires_grad_(True)
    loss = VarifocalLoss(gamma=1.5)
    assert gradcheck(lambda p: loss(p, target, weight, avg_factor=2.0), (pred,))
    # target gradients: positives only (the weight switches at q = 0)
    positive_target = (0.1 + 0.8 * torch.rand(4, 3, dtype=torch.float64)).requires_grad_(True)
    assert gradcheck(lambda p, t: loss(p, t, reduction_override='sum'), (pred, positive_target))


def test_empty_inputs_give_a_graph_connected_zero():
    pred = torch.zeros(0, 4, requires_grad=True)
    for reduction in ('mean', 'sum', 'none'):
        value = VarifocalLoss()(pred, torch.zeros(0, 4), reduction_override=reduction)
        assert value.shape == (() if reduction != 'none' else (0, 4))
        assert value.sum().item() == 0.0
    value = VarifocalLoss()(pred, torch.zeros(0, 4), torch.zeros(0, 1), avg_factor=0.0)
    assert value.item() == 0.0
    value.backward()
    assert pred.grad.shape == (0, 4)


def test_half_and_autocast_never_overflow():
    logits = torch.tensor([[30.0, -30.0, 0.5], [-30.0, 30.0, -2.0]])
    target = torch.tensor([[0.9, 0.0, 0.3], [0.0, 0.0, 0.6]])
    loss = VarifocalLoss(reduction='sum')
    reference = loss(logits.double(), target.double())
    half = loss(logits.half(), target.half())
    assert half.dtype == torch.float32 and torch.isfinite(half)
    torch.testing.assert_close(half.double(), reference, rtol=2e-3, atol=0)
    layer = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(3))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        pred = layer(logits)
        assert pred.dtype == torch.bfloat16
        value = loss(pred, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value.double(), loss(pred.double(), target.double()),
                               rtol=1e-6, atol=0)
    value.backward()
    assert torch.isfinite(layer.weight.grad).all()


def test_bad_inputs_name_the_argument():
    loss = VarifocalLoss()
    pred, target = torch.zeros(3, 4), torch.zeros(3, 4)
    with pytest.raises(TypeError, match='pred'):
        loss(pred.long(), target)
    with pytest.raises(TypeError, match='target'):
        loss(pred, target.tolist())
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.zeros(3))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.zeros(3, 5))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.full((3, 4), 1.5))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.full((3, 4), -0.5))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.full((3, 4), float('nan')))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.full((3, 4), float('inf')), target)
    for bad_weight in (torch.ones(3), torch.ones(2, 1), torch.ones(3, 4, 1)):
        with pytest.raises(ValueError, match='weight'):
            loss(pred, target, bad_weight)
    with pytest.raises(ValueError, match='weight'):
        loss(pred, target, torch.full((3, 1), float('nan')))
    with pytest.raises(ValueError, match='reduction_override'):
        loss(pred, target, reduction_override='avg')
    with pytest.raises(ValueError, match='alpha'):
        VarifocalLoss(alpha=-0.1)
    with pytest.raises(ValueError, match='gamma'):
        VarifocalLoss(gamma=-1.0)
    with pytest.raises(NotImplementedError, match='sigmoid'):
        VarifocalLoss(use_sigmoid=False)


def test_validation_switch_and_no_host_sync(monkeypatch):
    pred = torch.tensor([[float('nan'), 0.0]])
    assert torch.isnan(VarifocalLoss(validate=False)(pred, torch.tensor([[0.5, 0.0]])))
    with yolo_losses.validation(False):
        assert torch.isnan(VarifocalLoss()(pred, torch.tensor([[0.5, 0.0]])))
    logits, target, weight = (torch.tensor(a, dtype=torch.float32) for a in vfl_inputs())
    logits.requires_grad_(True)
    loss = VarifocalLoss(validate=False)

    def fail(*args, **kwargs):
        raise AssertionError('host-device synchronisation on the fast path')
    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, fail)
    loss(logits, target, weight, avg_factor=torch.tensor(2.0)).backward()


def test_built_from_the_registry():
    loss = build_loss(dict(type='VarifocalLoss', alpha=0.5, gamma=1.0, iou_weighted=False,
                           loss_weight=2.0))
    assert isinstance(loss, VarifocalLoss)
    assert (loss.alpha, loss.gamma, loss.iou_weighted, loss.loss_weight) == (0.5, 1.0, False, 2.0)
    # a negative at p = 1/2: 2 * 0.5 * 0.5 * ln 2
    assert loss(torch.tensor([[0.0]]), torch.tensor([[0.0]])).item() == \
        pytest.approx(0.5 * math.log(2.0), rel=1e-6)

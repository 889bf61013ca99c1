"""SmoothL1Loss and L1Loss: mmdet 3.3 numbers, reductions, dtypes, bad input."""
import numpy as np
import pytest
import torch

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.smooth_l1_loss import L1Loss, SmoothL1Loss, l1_loss, smooth_l1_loss

EPS32 = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps, mmdet's avg_factor eps

# diffs |pred - target| = 0.5, 2, 2.5, 0
PRED = torch.tensor([0.0, 2.0, 3.5, -1.0])
TARGET = torch.tensor([0.5, 0.0, 1.0, -1.0])


def test_smooth_l1_hand_values():
    # beta=1: 0.5*0.5^2 = 0.125, 2 - 0.5 = 1.5, 2.5 - 0.5 = 2.0, 0
    expected = torch.tensor([0.125, 1.5, 2.0, 0.0])
    loss = SmoothL1Loss(reduction='none')
    assert torch.allclose(loss(PRED, TARGET), expected)
    assert loss(PRED, TARGET, reduction_override='sum').item() == pytest.approx(3.625)
    assert SmoothL1Loss()(PRED, TARGET).item() == pytest.approx(3.625 / 4)
    # beta=2: 0.5*0.25/2 = 0.0625; d=2 is not < beta: 2 - 1 = 1; 2.5 - 1 = 1.5; 0
    got = SmoothL1Loss(beta=2.0, reduction='sum')(PRED, TARGET)
    assert got.item() == pytest.approx(0.0625 + 1.0 + 1.5)
    # the functional form, mmdet's call
    assert smooth_l1_loss(PRED, TARGET, beta=2.0, reduction='none').tolist() == \
        pytest.approx([0.0625, 1.0, 1.5, 0.0])


def test_l1_hand_values():
    loss = L1Loss(reduction='none')
    assert loss(PRED, TARGET).tolist() == pytest.approx([0.5, 2.0, 2.5, 0.0])
    assert L1Loss()(PRED, TARGET).item() == pytest.approx(5.0 / 4)
    assert l1_loss(PRED, TARGET, reduction='sum').item() == pytest.approx(5.0)


@pytest.mark.parametrize('cls,elementwise', [
    (SmoothL1Loss, [0.125, 1.5, 2.0, 0.0]),
    (L1Loss, [0.5, 2.0, 2.5, 0.0]),
])
def test_weight_avg_factor_override_loss_weight(cls, elementwise):
    elementwise = torch.tensor(elementwise)
    weight = torch.tensor([1.0, 0.5, 0.0, 2.0])
    weighted = elementwise * weight
    loss = cls(reduction='mean', loss_weight=3.0)
    assert loss(PRED, TARGET, weight).item() == pytest.approx(3.0 * weighted.mean().item())
    assert loss(PRED, TARGET, weight, avg_factor=2.0).item() == pytest.approx(
        3.0 * weighted.sum().item() / (2.0 + EPS32))
    # a tensor avg_factor works the same (no .item() needed)
    assert loss(PRED, TARGET, weight, avg_factor=torch.tensor(2.0)).item() == pytest.approx(
        3.0 * weighted.sum().item() / (2.0 + EPS32))
    assert loss(PRED, TARGET, weight, reduction_override='sum').item() == pytest.approx(
        3.0 * weighted.sum().item())
    got = loss(PRED, TARGET, weight, avg_factor=2.0, reduction_override='none')
    assert torch.allclose(got, 3.0 * weighted)  # avg_factor ignored with 'none'
    with pytest.raises(ValueError, match='avg_factor'):
        loss(PRED, TARGET, weight, avg_factor=2.0, reduction_override='sum')
    # a [N, 4] loss with a weight that broadcasts over its rows
    pred2 = torch.stack([PRED, PRED + 1.0])
    target2 = torch.stack([TARGET, TARGET + 1.0])
    row_weight = torch.tensor([[2.0], [0.0]])
    got = cls(reduction='sum')(pred2, target2, row_weight)
    assert got.item() == pytest.approx(2.0 * elementwise.sum().item())


def test_mmdet_reference_values():
    rng = np.random.default_rng(1)
    pred = torch.tensor(rng.normal(size=(16, 4)) * 3, dtype=torch.float32)
    target = torch.tensor(rng.normal(size=(16, 4)) * 3, dtype=torch.float32)
    weight = torch.tensor(rng.uniform(size=(16, 4)), dtype=torch.float32)
    # expected: mmdet 3.3.0 SmoothL1Loss(beta=0.5, loss_weight=2.0) and
    # L1Loss(loss_weight=2.0), computed in a scratch venv; value, then the sum
    # and the sum of squares of d(value)/d(pred)
    cases = [
        (SmoothL1Loss(beta=0.5, loss_weight=2.0), {}, 3.2945642471313477,
         0.1256320722750388, 0.021447637248449947),
        (SmoothL1Loss(beta=0.5, loss_weight=2.0), {'reduction_override': 'sum'},
         210.85211181640625, 8.040452625602484, 87.84952216965098),
        (SmoothL1Loss(beta=0.5, loss_weight=2.0), {'avg_factor': 10.0},
         21.0852108001709, 0.8040452564600855, 0.8784952530981807),
        (L1Loss(loss_weight=2.0), {}, 3.555884599685669,
         0.15956204145913944, 0.022590788602777905),
        (L1Loss(loss_weight=2.0), {'avg_factor': 10.0}, 22.757661819458008,
         1.0211970622185618, 0.9253187340083839),
    ]
    for loss, kwargs, value, grad_sum, grad_sumsq in cases:
        leaf = pred.clone().requires_grad_(True)
        out = loss(leaf, target, weight, **kwargs)
        out.backward()
        assert out.item() == pytest.approx(value, rel=1e-6)
        assert leaf.grad.sum().item() == pytest.approx(grad_sum, rel=1e-5, abs=1e-7)
        assert (leaf.grad ** 2).sum().item() == pytest.approx(grad_sumsq, rel=1e-5)


def test_zero_weight_gives_zero_without_early_return():
    pred = torch.randn(5, 4, requires_grad=True)
    target = torch.randn(5, 4)
    zeros = torch.zeros(5, 4)
    for cls in (SmoothL1Loss, L1Loss):
        for kwargs in ({}, {'reduction_override': 'sum'}, {'avg_factor': 3.0}):
            out = cls(loss_weight=2.0)(pred, target, zeros, **kwargs)
            assert out.item() == 0.0
            (grad,) = torch.autograd.grad(out, pred)
            assert torch.equal(grad, torch.zeros_like(grad))
        # 'none' keeps the element-wise shape (mmdet returns a scalar there)
        none = cls(reduction='none')(pred, target, zeros)
        assert none.shape == (5, 4) and not none.any()


def test_empty_inputs_give_graph_connected_zero():
    for cls in (SmoothL1Loss, L1Loss):
        for reduction in ('none', 'mean', 'sum'):
            pred = torch.zeros(0, 4, requires_grad=True)
            out = cls(reduction=reduction)(pred, torch.zeros(0, 4), torch.zeros(0, 4))
            assert out.shape == (() if reduction != 'none' else (0, 4))
            assert out.sum().item() == 0.0 and out.requires_grad
            out.sum().backward()
            assert pred.grad.shape == (0, 4)
        out = cls()(torch.zeros(0, 4), torch.zeros(0, 4), avg_factor=0.0)
        assert out.item() == 0.0


def test_gradcheck_float64():
    rng = np.random.default_rng(5)
    # keep |diff| away from 0 (L1's kink) and from beta (smooth L1's seam)
    diff = rng.uniform(0.2, 2.0, size=(6, 4)) * rng.choice([-1.0, 1.0], size=(6, 4))
    diff[np.abs(np.abs(diff) - 0.8) < 0.05] += 0.2
    target = torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float64)
    pred = (target + torch.tensor(diff)).requires_grad_(True)
    weight = torch.tensor(rng.uniform(size=(6, 4)), dtype=torch.float64)
    smooth = SmoothL1Loss(beta=0.8)
    assert torch.autograd.gradcheck(lambda p: smooth(p, target, weight), (pred,))
    assert torch.autograd.gradcheck(lambda p: L1Loss()(p, target, weight, avg_factor=3.0), (pred,))
    assert smooth(pred, target).dtype == torch.float64


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_low_precision(dtype):
    pred = torch.randn(32, 4) * 100
    target = torch.randn(32, 4) * 100
    for loss in (SmoothL1Loss(reduction='sum'), L1Loss(reduction='sum')):
        expected32 = loss(pred, target)
        low = pred.to(dtype).requires_grad_(True)
        with torch.autocast('cpu', dtype=dtype):
            got = loss(low, target.to(dtype))
        assert got.dtype == torch.float32 and torch.isfinite(got)
        # the same rounded values in float32 give the same number
        same = loss(low.detach().float(), target.to(dtype).float())
        assert got.item() == pytest.approx(same.item(), rel=1e-6)
        assert got.item() == pytest.approx(expected32.item(), rel=1e-2)
        got.backward()
        assert torch.isfinite(low.grad.float()).all()


def test_built_from_registry():
    loss = build_loss(dict(type='SmoothL1Loss', beta=0.5, reduction='sum', loss_weight=2.0))
    assert isinstance(loss, SmoothL1Loss) and loss.beta == 0.5 and loss.loss_weight == 2.0
    assert isinstance(yolo_losses.MODELS.build(dict(type='L1Loss')), L1Loss)


def test_bad_input_raises_named_errors():
    pred, target = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match='beta'):
        SmoothL1Loss(beta=0.0)
    with pytest.raises(ValueError, match='beta'):
        smooth_l1_loss(pred, target, beta=-1.0)
    with pytest.raises(ValueError, match='reduction'):
        L1Loss(reduction='avg')
    with pytest.raises(ValueError, match='reduction_override'):
        SmoothL1Loss()(pred, target, reduction_override='avg')
    with pytest.raises(ValueError, match='target'):
        SmoothL1Loss()(pred, torch.randn(3, 5))
    with pytest.raises(ValueError, match='weight'):
        L1Loss()(pred, target, torch.ones(3))  # [3] does not broadcast to [3, 4]
    with pytest.raises(ValueError, match='weight'):
        L1Loss()(pred, target, torch.ones(2, 3, 4))  # would enlarge the loss
    with pytest.raises(TypeError, match='pred'):
        L1Loss()(pred.tolist(), target)
    with pytest.raises(TypeError, match='target'):
        L1Loss()(pred, target.long())
    with pytest.raises(TypeError, match='beta'):
        SmoothL1Loss()(pred, target, beta=2.0)  # unexpected keyword
    bad = pred.clone()
    bad[1, 2] = float('nan')
    with pytest.raises(ValueError, match='pred contains NaN'):
        SmoothL1Loss()(bad, target)
    inf_target = target.clone()
    inf_target[0, 0] = float('inf')
    with pytest.raises(ValueError, match='target contains infinite'):
        L1Loss()(pred, inf_target)
    # validation off: no value checks (and no host sync)
    assert torch.isnan(SmoothL1Loss(validate=False)(bad, target))
    with yolo_losses.validation(False):
        assert torch.isnan(L1Loss()(bad, target))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu_without_sync():
    pred, target, weight = torch.randn(64, 4), torch.randn(64, 4), torch.rand(64, 4)
    for loss in (SmoothL1Loss(beta=0.5, validate=False), L1Loss(validate=False)):
        expected = loss(pred, target, weight, avg_factor=7.0)
        torch.cuda.set_sync_debug_mode('error')
        try:
            got = loss(pred.cuda(), target.cuda(), weight.cuda(),
                       avg_factor=torch.tensor(7.0, device='cuda'))
        finally:
            torch.cuda.set_sync_debug_mode('default')
        assert got.device.type == 'cuda'
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)

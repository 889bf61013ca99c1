"""MSELoss: mmdet 3.3 numbers, reductions, dtypes, bad input."""
import numpy as np
import pytest
import torch

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.mse_loss import MSELoss, mse_loss

EPS32 = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps, mmdet's avg_factor eps

PRED = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
TARGET = torch.tensor([[0.0, 1.0], [0.5, 1.0]])
# squared errors: 1, 9, 0, 4
SQUARED = torch.tensor([[1.0, 9.0], [0.0, 4.0]])


def test_hand_values_and_conventions():
    assert torch.equal(MSELoss(reduction='none')(PRED, TARGET), SQUARED)
    assert MSELoss()(PRED, TARGET).item() == pytest.approx(14.0 / 4)
    assert mse_loss(PRED, TARGET, reduction='sum').item() == pytest.approx(14.0)
    weight = torch.tensor([[0.5], [2.0]])  # one weight per row, broadcast
    loss = MSELoss(loss_weight=0.5)
    # weighted: 0.5, 4.5, 0, 8 -> sum 13
    assert loss(PRED, TARGET, weight).item() == pytest.approx(0.5 * 13.0 / 4)
    assert loss(PRED, TARGET, weight, avg_factor=5.0).item() == pytest.approx(
        0.5 * 13.0 / (5.0 + EPS32))
    assert loss(PRED, TARGET, weight, reduction_override='sum').item() == pytest.approx(6.5)
    assert loss(PRED, TARGET, weight, reduction_override='none').tolist() == [
        [0.25, 2.25], [0.0, 4.0]]
    with pytest.raises(ValueError, match='avg_factor'):
        loss(PRED, TARGET, avg_factor=5.0, reduction_override='sum')


def test_mmdet_reference_values():
    rng = np.random.default_rng(1)
    pred = torch.tensor(rng.normal(size=(16, 4)) * 3, dtype=torch.float32)
    target = torch.tensor(rng.normal(size=(16, 4)) * 3, dtype=torch.float32)
    weight = torch.tensor(rng.uniform(size=(16, 4)), dtype=torch.float32)
    # expected: mmdet 3.3.0 MSELoss(loss_weight=2.0), computed in a scratch
    # venv; value, sum and sum of squares of d(value)/d(pred)
    for kwargs, value, grad_sum, grad_sumsq in (
            ({}, 17.711698532104492, 0.01923203351907432, 1.6251442572023755),
            ({'avg_factor': 10.0}, 113.35487365722656, 0.12308461591601372,
             66.56591380945999)):
        leaf = pred.clone().requires_grad_(True)
        out = MSELoss(loss_weight=2.0)(leaf, target, weight, **kwargs)
        out.backward()
        assert out.item() == pytest.approx(value, rel=1e-6)
        assert leaf.grad.sum().item() == pytest.approx(grad_sum, rel=1e-4, abs=1e-6)
        assert (leaf.grad ** 2).sum().item() == pytest.approx(grad_sumsq, rel=1e-5)


def test_zero_weight_and_empty_inputs():
    pred = torch.randn(4, 3, requires_grad=True)
    out = MSELoss()(pred, torch.randn(4, 3), torch.zeros(4, 3), avg_factor=2.0)
    assert out.item() == 0.0
    (grad,) = torch.autograd.grad(out, pred)
    assert not grad.any()
    # empty: 0 for 'mean' (mmdet's mse_loss gives NaN) and 'sum', the empty
    # element-wise loss for 'none'; on pred's graph
    for reduction in ('none', 'mean', 'sum'):
        empty = torch.zeros(0, 3, requires_grad=True)
        got = MSELoss(reduction=reduction)(empty, torch.zeros(0, 3), torch.zeros(0, 3))
        assert got.shape == (() if reduction != 'none' else (0, 3))
        assert got.sum().item() == 0.0 and got.requires_grad
        got.sum().backward()


def test_gradcheck_float64():
    pred = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    target = torch.randn(5, 4, dtype=torch.float64)
    weight = torch.rand(5, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: MSELoss()(p, target, weight), (pred,))
    assert torch.autograd.gradcheck(lambda t: MSELoss()(pred.detach(), t, weight),
                                    (target.clone().requires_grad_(True),))
    assert MSELoss()(pred, target).dtype == torch.float64


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_low_precision(dtype):
    # squared errors of ~300 overflow float16 (max 65504); float32 inside
    pred = torch.full((8, 4), 300.0) + torch.randn(8, 4)
    target = torch.zeros(8, 4)
    loss = MSELoss(reduction='sum')
    low = pred.to(dtype).requires_grad_(True)
    with torch.autocast('cpu', dtype=dtype):
        got = loss(low, target.to(dtype))
    assert got.dtype == torch.float32 and torch.isfinite(got)
    assert got.item() == pytest.approx(loss(low.detach().float(), target).item(), rel=1e-6)
    assert got.item() == pytest.approx(loss(pred, target).item(), rel=1e-2)
    got.backward()
    assert torch.isfinite(low.grad.float()).all()


def test_registry_and_bad_input():
    assert isinstance(build_loss(dict(type='MSELoss', loss_weight=2.0)), MSELoss)
    pred, target = torch.randn(3, 2), torch.randn(3, 2)
    with pytest.raises(ValueError, match='reduction'):
        MSELoss(reduction='average')
    with pytest.raises(ValueError, match='target'):
        MSELoss()(pred, torch.randn(2, 3))
    with pytest.raises(ValueError, match='weight'):
        MSELoss()(pred, target, torch.ones(3))
    with pytest.raises(TypeError, match='ignore_index'):
        MSELoss()(pred, target, ignore_index=1)
    bad = target.clone()
    bad[2, 1] = float('-inf')
    with pytest.raises(ValueError, match='target contains infinite'):
        MSELoss()(pred, bad)
    nan_weight = torch.ones(3, 2)
    nan_weight[0, 0] = float('nan')
    with pytest.raises(ValueError, match='weight contains NaN'):
        MSELoss()(pred, target, nan_weight)
    with yolo_losses.validation(False):
        assert torch.isinf(MSELoss()(pred, bad))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu_without_sync():
    pred, target, weight = torch.randn(64, 4), torch.randn(64, 4), torch.rand(64, 4)
    loss = MSELoss(validate=False)
    expected = loss(pred, target, weight)
    torch.cuda.set_sync_debug_mode('error')
    try:
        got = loss(pred.cuda(), target.cuda(), weight.cuda())
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)

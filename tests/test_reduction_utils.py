import pytest
import torch

from yolo_losses.losses.utils import reduce_loss, weight_reduce_loss, weighted_loss

EPS32 = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps, mmdet's avg_factor eps


def test_reduce_loss_modes():
    loss = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert reduce_loss(loss, 'none') is loss
    assert reduce_loss(loss, 'sum').item() == 12.0
    assert reduce_loss(loss, 'mean').item() == 3.0
    with pytest.raises(ValueError, match='reduction'):
        reduce_loss(loss, 'avg')


def test_weight_and_avg_factor_follow_mmdet():
    loss = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weight = torch.tensor([[1.0], [0.5]])  # broadcasts over the last dim
    # (1 + 2) * 1 + (3 + 4) * 0.5 = 6.5
    assert weight_reduce_loss(loss, weight, 'sum').item() == 6.5
    assert weight_reduce_loss(loss, weight, 'mean').item() == 6.5 / 4
    got = weight_reduce_loss(loss, weight, 'mean', avg_factor=2.0)
    assert got.item() == pytest.approx(6.5 / (2.0 + EPS32), rel=1e-7)
    none = weight_reduce_loss(loss, weight, 'none', avg_factor=2.0)
    assert torch.equal(none, torch.tensor([[1.0, 2.0], [1.5, 2.0]]))
    with pytest.raises(ValueError, match='avg_factor'):
        weight_reduce_loss(loss, weight, 'sum', avg_factor=2.0)


def test_weighted_loss_decorator_and_half_inputs():
    @weighted_loss
    def squared(pred, target):
        return (pred - target) ** 2

    pred = torch.tensor([1.0, 2.0, 4.0])
    target = torch.tensor([0.0, 0.0, 0.0])
    assert squared(pred, target).item() == pytest.approx(7.0)
    assert squared(pred, target, reduction='sum').item() == 21.0
    assert squared(pred, target, weight=torch.tensor([1.0, 0.0, 0.5]),
                   avg_factor=3.0).item() == pytest.approx(9.0 / (3.0 + EPS32))
    # 300**2 overflows float16 (max 65504); the decorator computes in float32.
    big = torch.tensor([300.0], dtype=torch.float16)
    out = squared(big, torch.zeros(1, dtype=torch.float16), reduction='sum')
    assert out.dtype == torch.float32 and out.item() == 90000.0


def test_mean_of_empty_loss_is_zero_not_nan():
    empty = torch.zeros(0, 4, requires_grad=True)
    out = reduce_loss(empty * 2, 'mean')
    assert out.item() == 0.0
    out.backward()
    assert empty.grad.shape == (0, 4)

"""Wise-IoU's state: the running mean ``iou_mean`` (a buffer).

Reference numbers: Instinct323/wiou ``iou.py`` @ ca97fc0 (see
``box_loss_references.py``), two consecutive training-mode calls.
"""
import io
import math

import pytest
import torch

from yolo_losses import build_loss

from box_loss_references import PRED, REFERENCE, TARGET


def boxes():
    return (torch.tensor(PRED, dtype=torch.float64),
            torch.tensor(TARGET, dtype=torch.float64))


@pytest.mark.parametrize('version', ['v1', 'v2', 'v3'])
def test_two_training_calls_equal_the_reference(version):
    loss = build_loss(dict(type='WIoULoss', version=version, reduction='none')).double()
    loss.train()
    means = REFERENCE[f'WIoULoss-{version}-means']
    for call, mean in zip(('call1', 'call2'), means):
        pred, target = boxes()
        pred.requires_grad_(True)
        value = loss(pred, target)
        value.sum().backward()
        ref_value, ref_grad = REFERENCE[f'WIoULoss-{version}-{call}']
        torch.testing.assert_close(value.detach(), torch.tensor(ref_value, dtype=torch.float64),
                                   rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(pred.grad, torch.tensor(ref_grad, dtype=torch.float64),
                                   rtol=1e-10, atol=1e-12)
        assert loss.iou_mean.item() == pytest.approx(mean, rel=1e-14)


def hand_case():
    # inter 2, union 6: L_IoU = 2/3; centres 1 apart, enclosing box 3 x 2
    return torch.tensor([[0., 0., 2., 2.]]), torch.tensor([[1., 0., 3., 2.]])


def test_update_happens_before_the_loss():
    """momentum 0.5 from 1.0: the mean becomes 0.5 + 0.5 * 2/3 = 5/6 first,
    then beta = (2/3) / (5/6) = 0.8 (not 2/3, the stale mean's)."""
    loss = build_loss(dict(type='WIoULoss', version='v2', momentum=0.5)).train()
    value = loss(*hand_case())
    assert loss.iou_mean.item() == pytest.approx(5 / 6)
    expected = math.exp(1 / 13) * (2 / 3) * 0.8 ** 0.5
    assert value.item() == pytest.approx(expected, rel=1e-6)

    v3 = build_loss(dict(type='WIoULoss', momentum=0.5)).train()
    beta = 0.8
    expected_v3 = math.exp(1 / 13) * (2 / 3) * beta / (3.0 * 1.9 ** (beta - 3.0))
    assert v3(*hand_case()).item() == pytest.approx(expected_v3, rel=1e-6)


def test_eval_reads_but_never_writes_the_mean():
    loss = build_loss(dict(type='WIoULoss', version='v2', momentum=0.5))
    loss.iou_mean.fill_(0.5)
    loss.eval()
    value = loss(*hand_case())
    assert loss.iou_mean.item() == 0.5
    # beta = (2/3) / 0.5
    assert value.item() == pytest.approx(math.exp(1 / 13) * (2 / 3) * (4 / 3) ** 0.5, rel=1e-6)


def test_checkpoint_round_trip():
    loss = build_loss(dict(type='WIoULoss', momentum=0.3)).train()
    pred, target = boxes()
    for _ in range(3):
        loss(pred, target)
    saved = io.BytesIO()
    torch.save(loss.state_dict(), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    assert set(state) == {'iou_mean'}
    resumed = build_loss(dict(type='WIoULoss', momentum=0.3))
    assert resumed.iou_mean.item() == 1.0
    resumed.load_state_dict(state)
    assert torch.equal(resumed.iou_mean, loss.iou_mean)
    resumed.train()
    torch.testing.assert_close(resumed(pred, target), loss(pred, target))
    torch.testing.assert_close(resumed.iou_mean, loss.iou_mean)


@pytest.mark.parametrize('bad', ['shape', 'nan', 'negative', 'reduction', 'weight'])
def test_failed_call_leaves_the_state_alone(bad):
    loss = build_loss(dict(type='WIoULoss', momentum=0.5)).train()
    pred, target = boxes()
    kwargs = {}
    if bad == 'shape':
        target = target[:3]
    elif bad == 'nan':
        pred = pred.clone()
        pred[0, 0] = float('nan')
    elif bad == 'negative':
        pred = pred.clone()
        pred[0, 2] = pred[0, 0] - 1
    elif bad == 'reduction':
        kwargs = dict(reduction_override='average')
    else:
        kwargs = dict(weight=torch.ones(5, dtype=torch.float64))
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    with pytest.raises((ValueError, TypeError)):
        loss(pred, target, **kwargs)
    after = loss.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_zero_weight_boxes_and_empty_calls_do_not_move_the_mean():
    """Composite losses pass fixed-size slots, background at weight 0: only
    weighted boxes count; no box at all leaves the mean alone (the
    reference would store NaN)."""
    loss = build_loss(dict(type='WIoULoss', momentum=0.5)).train()
    pred, target = hand_case()
    far = torch.tensor([[100., 100., 101., 101.]])
    loss(torch.cat([pred, far]), torch.cat([target, target]),
         weight=torch.tensor([1.0, 0.0]))
    assert loss.iou_mean.item() == pytest.approx(5 / 6)
    loss(torch.zeros(0, 4), torch.zeros(0, 4))
    assert loss.iou_mean.item() == pytest.approx(5 / 6)
    loss(pred, target, weight=torch.zeros(1))
    assert loss.iou_mean.item() == pytest.approx(5 / 6)


def test_iou_is_the_plain_iou_and_has_no_side_effect():
    loss = build_loss(dict(type='WIoULoss')).train()
    assert loss.iou(*hand_case()).item() == pytest.approx(1 / 3)
    assert loss.iou_mean.item() == 1.0


def test_wrapper_around_wiou_updates_once_and_not_on_a_failed_call():
    """Inner-IoU around Wise-IoU: the base's mean moves once per call (over
    the weighted boxes), and a call that fails its checks moves nothing."""
    loss = build_loss(dict(type='InnerIoULoss', loss=dict(type='WIoULoss', momentum=0.5)))
    loss.train()
    pred, target = hand_case()
    loss(pred, target)
    assert loss.loss.iou_mean.item() == pytest.approx(5 / 6)
    before = loss.state_dict()['loss.iou_mean'].clone()
    with pytest.raises(ValueError):
        loss(pred, target[:, :3])
    bad = pred.clone()
    bad[0, 0] = float('nan')
    with pytest.raises(ValueError):
        loss(bad, target)
    assert torch.equal(loss.state_dict()['loss.iou_mean'], before)

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.focal_loss import (FocalLoss, focal_loss_with_prob,
                                           sigmoid_focal_loss)

EPS32 = torch.finfo(torch.float32).eps  # mmdet's avg_factor eps


def focal_inputs(seed=0, n=6, c=4):
    """Seeded inputs (numpy, identical across torch versions): logits, class
    ids with c = background, soft targets, one weight per prior."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, c))
    labels = rng.integers(0, c + 1, n)
    soft = rng.uniform(0.0, 1.0, (n, c))
    weight = rng.uniform(0.0, 1.0, n)
    return logits, labels, soft, weight


def plain_focal(pred, target, gamma=2.0, alpha=0.25, pos_weight=1.0):
    """The paper's formula written out (float64 in, element-wise out)."""
    p = torch.sigmoid(pred)
    ce = -(pos_weight * target * torch.log(p) + (1 - target) * torch.log(1 - p))
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return alpha_t * (1 - p_t) ** gamma * ce


def run_with_grad(loss, pred, *args, **kwargs):
    pred = pred.clone().requires_grad_(True)
    out = loss(pred, *args, **kwargs)
    out.sum().backward()
    return out.detach(), pred.grad


@pytest.fixture
def forbid_host_sync(monkeypatch):
    """Call it to make every Python-level read of a tensor's values fail:
    the fast path (validate=False) must not synchronise with the device."""
    def fail(*args, **kwargs):
        raise AssertionError('host-device synchronisation on the fast path')

    def arm():
        for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
            monkeypatch.setattr(torch.Tensor, name, fail)
    return arm


def test_hand_computed_small_case():
    # p = sigmoid([0, ln 3]) = [1/2, 3/4]; class 0 positive, class 1 negative.
    pred = torch.tensor([[0.0, math.log(3.0)]])
    positive = 0.25 * (1 - 0.5) ** 2 * math.log(2.0)        # alpha (1-p)^2 (-ln p)
    negative = 0.75 * 0.75 ** 2 * math.log(4.0)             # (1-alpha) p^2 (-ln(1-p))
    loss = FocalLoss()
    assert loss(pred, torch.tensor([[1.0, 0.0]]), reduction_override='sum').item() == \
        pytest.approx(positive + negative, rel=1e-6)
    assert loss(pred, torch.tensor([0])).item() == \
        pytest.approx((positive + negative) / 2, rel=1e-6)
    # class id 2 = background: both columns negative
    both_negative = 0.75 * 0.5 ** 2 * math.log(2.0) + negative
    assert loss(pred, torch.tensor([2]), reduction_override='sum').item() == \
        pytest.approx(both_negative, rel=1e-6)
    # gamma = 0, alpha = 0.5: half the plain BCE
    bce = FocalLoss(gamma=0.0, alpha=0.5)(pred, torch.tensor([0]), reduction_override='sum')
    assert bce.item() == pytest.approx(0.5 * (math.log(2.0) + math.log(4.0)), rel=1e-6)


# expected: mmdet 3.3.0 FocalLoss (CPU, float32 unless noted), computed in a
# scratch venv on focal_inputs(); grad is d(sum of output)/d(pred).
MMDET_FOCAL = {
    'labels, weight [N], avg_factor 3.5': dict(
        value=0.9795385003089905, grad_sum=0.6384000182151794, grad_sq=0.07942322641611099,
        grad_first=0.020872144028544426, grad_last=0.06047581508755684),
    'soft, mean, loss_weight 2': dict(
        value=0.3370920717716217, grad_sum=0.03380056470632553, grad_sq=0.004317281302064657,
        grad_first=-0.0043633184395730495, grad_last=-0.0022510401904582977),
    'activated, labels, gamma 1.5, alpha 0.4, sum': dict(
        value=6.536186218261719, grad_sum=36.7457160949707, grad_sq=295.9269104003906,
        grad_first=1.1367558240890503, grad_last=1.804631233215332),
    'one-hot, flat weight [N*C], sum': dict(
        value=5.542873859405518, grad_sum=3.821638822555542, grad_sq=2.039790391921997,
        grad_first=0.2655889391899109, grad_last=0.46354490518569946),
    'float64, labels, mean': dict(
        value=0.2961730609136955, grad_sum=0.19909482640131584, grad_sq=0.0056087931815073265,
        grad_first=0.012716134127831066, grad_last=0.019583873064576082),
}
# mmdet 3.3.0 FocalLoss(gamma=1.5, alpha=0.4), soft targets, reduction 'none'
MMDET_FOCAL_SOFT_NONE = [
    0.06834273040294647, 0.13197752833366394, 0.08702914416790009, 0.10142888128757477,
    0.11048127710819244, 0.2900988757610321, 0.062393009662628174, 0.17172609269618988,
    0.0842071920633316, 0.22384479641914368, 0.34784555435180664, 0.09101847559213638,
    0.19138328731060028, 0.1344621181488037, 0.09739454090595245, 0.21677836775779724,
    0.09521625936031342, 0.11211176216602325, 0.03932472690939903, 0.5765372514724731,
    0.12906710803508759, 1.2044546604156494, 0.33606162667274475, 0.06249528005719185]
MMDET_FOCAL_SOFT_NONE_GRAD = dict(  # grad of the sum of that output
    grad_sum=-0.13608404994010925, grad_sq=0.5926105976104736,
    grad_first=-0.1044343113899231, grad_last=-0.04297013208270073)


def _assert_matches(value, grad, expected, rtol):
    assert value.item() == pytest.approx(expected['value'], rel=rtol)
    assert grad.sum().item() == pytest.approx(expected['grad_sum'], rel=rtol, abs=1e-6)
    assert grad.square().sum().item() == pytest.approx(expected['grad_sq'], rel=rtol)
    assert grad[0, 0].item() == pytest.approx(expected['grad_first'], rel=rtol)
    assert grad[-1, -1].item() == pytest.approx(expected['grad_last'], rel=rtol)


def test_matches_mmdet_reference_values():
    logits, labels, soft, weight = focal_inputs()
    pred = torch.tensor(logits, dtype=torch.float32)
    labels = torch.tensor(labels)
    cases = {
        'labels, weight [N], avg_factor 3.5': run_with_grad(
            FocalLoss(), pred, labels, weight=torch.tensor(weight, dtype=torch.float32),
            avg_factor=3.5),
        'soft, mean, loss_weight 2': run_with_grad(
            FocalLoss(loss_weight=2.0), pred, torch.tensor(soft, dtype=torch.float32)),
        'activated, labels, gamma 1.5, alpha 0.4, sum': run_with_grad(
            FocalLoss(gamma=1.5, alpha=0.4, activated=True), torch.sigmoid(pred), labels,
            reduction_override='sum'),
        'one-hot, flat weight [N*C], sum': run_with_grad(
            FocalLoss(), pred, F.one_hot(labels, 5)[:, :4],
            weight=torch.tensor(np.random.default_rng(9).uniform(0, 1, 24), dtype=torch.float32),
            reduction_override='sum'),
    }
    for name, (value, grad) in cases.items():
        _assert_matches(value, grad, MMDET_FOCAL[name], rtol=2e-6)
    value, grad = run_with_grad(FocalLoss(), torch.tensor(logits), labels)
    assert value.dtype == torch.float64
    _assert_matches(value, grad, MMDET_FOCAL['float64, labels, mean'], rtol=1e-12)

    value, grad = run_with_grad(FocalLoss(gamma=1.5, alpha=0.4), pred,
                                torch.tensor(soft, dtype=torch.float32),
                                reduction_override='none')
    torch.testing.assert_close(value.flatten(), torch.tensor(MMDET_FOCAL_SOFT_NONE),
                               rtol=2e-6, atol=1e-7)
    _assert_matches(value.sum(), grad, dict(value=sum(MMDET_FOCAL_SOFT_NONE),
                                            **MMDET_FOCAL_SOFT_NONE_GRAD), rtol=2e-6)


@pytest.mark.parametrize('gamma, alpha', [(2.0, 0.25), (1.5, 0.4), (0.0, 0.5), (3.0, 1.0)])
def test_soft_targets_match_plain_formula_with_all_options(gamma, alpha):
    logits, _, soft, weight = focal_inputs(seed=4, n=7, c=5)
    pred, target = torch.tensor(logits), torch.tensor(soft)
    weight = torch.tensor(weight)
    element = plain_focal(pred, target, gamma, alpha)
    loss = FocalLoss(gamma=gamma, alpha=alpha, loss_weight=0.5)
    close = dict(rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(loss(pred, target, reduction_override='none'), 0.5 * element,
                               **close)
    torch.testing.assert_close(loss(pred, target), 0.5 * element.mean(), **close)
    torch.testing.assert_close(loss(pred, target, reduction_override='sum'), 0.5 * element.sum(),
                               **close)
    weighted = element * weight[:, None]
    torch.testing.assert_close(loss(pred, target, weight), 0.5 * weighted.mean(), **close)
    torch.testing.assert_close(loss(pred, target, weight, avg_factor=3.0),
                               0.5 * weighted.sum() / (3.0 + EPS32), **close)
    # avg_factor is ignored by 'none' (mmdet)
    torch.testing.assert_close(
        loss(pred, target, weight, avg_factor=3.0, reduction_override='none'), 0.5 * weighted,
        **close)
    with pytest.raises(ValueError, match='avg_factor'):
        loss(pred, target, avg_factor=3.0, reduction_override='sum')
    # the functional form, keyword arguments after target
    torch.testing.assert_close(
        sigmoid_focal_loss(pred, target, weight[:, None], reduction='sum', gamma=gamma,
                           alpha=alpha),
        weighted.sum(), **close)


def test_label_ids_equal_one_hot_and_any_integer_dtype():
    logits, labels, _, weight = focal_inputs(seed=5, n=9, c=3)
    pred, labels = torch.tensor(logits), torch.tensor(labels)
    one_hot = torch.zeros(9, 3, dtype=torch.float64)
    for row, label in enumerate(labels.tolist()):
        if label < 3:
            one_hot[row, label] = 1.0
    expected = plain_focal(pred, one_hot).sum()
    loss = FocalLoss(reduction='sum')
    for dtype in (torch.int64, torch.int32, torch.uint8):
        torch.testing.assert_close(loss(pred, labels.to(dtype)), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(loss(pred, one_hot.long()), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(loss(pred, one_hot.bool()), expected, rtol=1e-12, atol=0)


def test_mmdet_weight_rules():
    logits, labels, _, weight = focal_inputs(seed=6, n=5, c=3)
    pred, labels, weight = torch.tensor(logits), torch.tensor(labels), torch.tensor(weight)
    loss = FocalLoss(reduction='none')
    unweighted = loss(pred, labels)
    expected = unweighted * weight[:, None]
    for per_prior in (weight, weight[:, None], weight[:, None].expand(5, 3),
                      weight[:, None].expand(5, 3).flatten()):
        torch.testing.assert_close(loss(pred, labels, per_prior), expected, rtol=0, atol=0)
    # any leading shape: pred [B, A, C], one weight per prior [B, A]
    pred3, weight3 = pred[:4].reshape(2, 2, 3), weight[:4].reshape(2, 2)
    torch.testing.assert_close(loss(pred3, labels[:4].reshape(2, 2), weight3),
                               expected[:4].reshape(2, 2, 3), rtol=0, atol=0)
    for bad in (torch.ones(4), torch.ones(5, 2), torch.ones(3, 5), torch.ones(1, 3),
                torch.ones(()), torch.ones(5, 3, 1)):
        with pytest.raises(ValueError, match='weight'):
            loss(pred, labels, bad)
    with pytest.raises(TypeError, match='weight'):
        loss(pred, labels, [1.0] * 5)


def test_pos_weight_matches_yolov5_focal_formula():
    logits, _, soft, _ = focal_inputs(seed=7, n=6, c=4)
    pred, target = torch.tensor(logits), torch.tensor(soft).round()
    gamma, alpha = 1.5, 0.25
    for pos_weight in (2.0, [1.0, 2.0, 0.5, 3.0]):
        # yolov5 utils/loss.py FocalLoss around BCEWithLogitsLoss(pos_weight),
        # written out: loss *= alpha_factor * (1 - p_t) ** gamma, then mean.
        bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float64),
                                         reduction='none')(pred, target)
        prob = torch.sigmoid(pred)
        p_t = target * prob + (1 - target) * (1 - prob)
        alpha_factor = target * alpha + (1 - target) * (1 - alpha)
        expected = (bce * alpha_factor * (1.0 - p_t) ** gamma).mean()
        loss = FocalLoss(gamma=gamma, alpha=alpha, pos_weight=pos_weight)
        torch.testing.assert_close(loss(pred, target), expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(
            loss(pred, target),
            plain_focal(pred, target, gamma, alpha, torch.tensor(pos_weight)).mean(),
            rtol=1e-12, atol=0)
        assert 'pos_weight' not in loss.state_dict()
    with pytest.raises(ValueError, match='pos_weight'):
        FocalLoss(pos_weight=[1.0, 2.0])(pred, target)
    with pytest.raises(ValueError, match='pos_weight'):
        FocalLoss(pos_weight=-1.0)
    with pytest.raises(ValueError, match='pos_weight'):
        FocalLoss(pos_weight=[[1.0]])
    with pytest.raises(NotImplementedError, match='pos_weight'):
        FocalLoss(pos_weight=2.0, activated=True)


def test_activated_takes_probabilities():
    logits, labels, soft, _ = focal_inputs(seed=8)
    pred = torch.tensor(logits)
    loss = FocalLoss(gamma=1.5, alpha=0.4, activated=True, reduction='sum')
    expected = plain_focal(pred, torch.tensor(soft), 1.5, 0.4).sum()
    torch.testing.assert_close(loss(torch.sigmoid(pred), torch.tensor(soft)), expected,
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(
        focal_loss_with_prob(torch.sigmoid(pred), torch.tensor(soft), reduction='sum',
                             gamma=1.5, alpha=0.4), expected, rtol=1e-10, atol=0)
    # probabilities of exactly 0 and 1: BCE logs clamp at -100, finite loss
    edge = loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    assert edge.item() == pytest.approx(0.4 * 100 + 0.6 * 100)
    with pytest.raises(ValueError, match='pred'):
        loss(torch.tensor([[1.5, 0.5]]), torch.tensor([0]))


def test_gradcheck_float64():
    logits, _, soft, weight = focal_inputs(seed=10, n=4, c=3)
    pred = torch.tensor(logits, requires_grad=True)
    target = torch.tensor(soft, requires_grad=True)
    weight = torch.tensor(weight)
    loss = FocalLoss(gamma=1.5, alpha=0.3)
    assert gradcheck(lambda p, t: loss(p, t, weight, avg_factor=2.0), (pred, target))
    assert gradcheck(lambda p: FocalLoss(pos_weight=[1.0, 2.0, 3.0])(p, target.detach()), (pred,))
    probs = torch.sigmoid(pred.detach()).requires_grad_(True)
    assert gradcheck(lambda p: FocalLoss(activated=True, reduction='sum')(p, target.detach()),
                     (probs,))


def test_empty_inputs_give_a_graph_connected_zero():
    # the project's convention (mmdet's smooth L1): a scalar 0, so 'mean' of
    # nothing is 0 rather than mmdet focal's NaN
    pred = torch.zeros(0, 4, requires_grad=True)
    labels = torch.zeros(0, dtype=torch.long)
    for loss in (FocalLoss(), FocalLoss(activated=True), FocalLoss(pos_weight=2.0)):
        for reduction in ('mean', 'sum', 'none'):
            for target in (labels, torch.zeros(0, 4)):
                value = loss(pred, target, reduction_override=reduction)
                assert value.shape == (() if reduction != 'none' else (0, 4))
                assert value.sum().item() == 0.0
        assert loss(pred, labels, torch.zeros(0), avg_factor=0.0).item() == 0.0
    total = FocalLoss()(pred, labels, torch.zeros(0, 1))
    total.backward()
    assert pred.grad.shape == (0, 4)
    # a batch of images with no priors at all: [B, 0, C]
    assert FocalLoss()(torch.zeros(2, 0, 3), torch.zeros(2, 0, dtype=torch.long)).item() == 0.0


def test_half_and_autocast_never_overflow():
    logits = torch.tensor([[30.0, -30.0, 0.5], [-30.0, 30.0, -2.0]])
    labels = torch.tensor([1, 3])
    soft = torch.tensor([[0.0, 1.0, 0.3], [0.9, 0.0, 0.0]])
    loss = FocalLoss(reduction='sum')
    for target in (labels, soft):
        reference = loss(logits.double(), target)
        # float16 inputs are computed in float32
        half = loss(logits.half(), target.half() if target.is_floating_point() else target)
        assert half.dtype == torch.float32 and torch.isfinite(half)
        torch.testing.assert_close(half.double(), reference, rtol=2e-3, atol=0)
        # bfloat16 logits from a layer under CPU autocast
        layer = torch.nn.Linear(3, 3, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(3))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            pred = layer(logits)
            assert pred.dtype == torch.bfloat16
            value = loss(pred, target)
        assert value.dtype == torch.float32 and torch.isfinite(value)
        torch.testing.assert_close(value.double(), loss(pred.double(), target), rtol=1e-6, atol=0)
        value.backward()
        assert torch.isfinite(layer.weight.grad).all()
    # a positive at +30 and a negative at -30 are right: their loss is ~0, not NaN
    easy = loss(torch.tensor([[30.0, -30.0]]).half(), torch.tensor([0]))
    assert 0.0 <= easy.item() < 1e-20


def test_bad_inputs_name_the_argument():
    loss = FocalLoss()
    pred = torch.zeros(3, 4)
    labels = torch.tensor([0, 1, 4])
    with pytest.raises(TypeError, match='pred'):
        loss([[0.0] * 4] * 3, labels)
    with pytest.raises(TypeError, match='pred'):
        loss(pred.long(), labels)
    with pytest.raises(TypeError, match='target'):
        loss(pred, [0, 1, 4])
    with pytest.raises(TypeError, match='target'):
        loss(pred, labels.float())
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.zeros(3, 5))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.zeros(3, 4, 1))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.zeros(()), torch.zeros(()))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0, 1, 5]))  # 4 = background is the largest id
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.full((3, 4), 1.5))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.full((3, 4), float('nan')))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.full((3, 4), float('inf')), labels)
    with pytest.raises(ValueError, match='weight'):
        loss(pred, labels, torch.tensor([1.0, float('nan'), 1.0]))
    with pytest.raises(ValueError, match='reduction_override'):
        loss(pred, labels, reduction_override='avg')
    with pytest.raises(ValueError, match='reduction'):
        FocalLoss(reduction='avg')
    with pytest.raises(ValueError, match='gamma'):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match='alpha'):
        FocalLoss(alpha=1.5)
    with pytest.raises(NotImplementedError, match='sigmoid'):
        FocalLoss(use_sigmoid=False)
    with pytest.raises(TypeError, match='gamma_'):
        build_loss(dict(type='FocalLoss', gamma_=2.0))


def test_validation_switch_skips_value_checks():
    pred = torch.tensor([[float('nan'), 0.0]])
    assert torch.isnan(FocalLoss(validate=False)(pred, torch.tensor([0])))
    with yolo_losses.validation(False):
        assert torch.isnan(FocalLoss()(pred, torch.tensor([[0.0, 2.0]])))
        with pytest.raises(ValueError, match='target'):  # shape checks always run
            FocalLoss()(pred, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='pred'):
        FocalLoss(validate=True)(pred, torch.tensor([0]))


def test_fast_path_reads_no_tensor_values(forbid_host_sync):
    logits, labels, soft, weight = focal_inputs()
    pred = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    losses = (FocalLoss(validate=False), FocalLoss(validate=False, pos_weight=[1.0, 2.0, 1.0, 1.0]))
    activated = FocalLoss(validate=False, activated=True)
    forbid_host_sync()
    for loss in losses:
        out = loss(pred, torch.tensor(labels), torch.tensor(weight), avg_factor=torch.tensor(3.0))
        out.backward()
        loss(pred, torch.tensor(soft), reduction_override='none')
    activated(torch.sigmoid(pred), torch.tensor(soft))


def test_built_from_the_registry():
    loss = build_loss(dict(type='FocalLoss', gamma=1.0, alpha=0.5, loss_weight=3.0,
                           reduction='sum'))
    assert isinstance(loss, FocalLoss)
    assert (loss.gamma, loss.alpha, loss.loss_weight, loss.reduction) == (1.0, 0.5, 3.0, 'sum')
    pred, target = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    # gamma 1, alpha 0.5, p = 1/2: 3 * 0.5 * 0.5 * ln 2
    assert loss(pred, target).item() == pytest.approx(0.75 * math.log(2.0), rel=1e-6)

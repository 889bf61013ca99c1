import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.gfocal_loss import (DistributionFocalLoss, QualityFocalLoss,
                                            distribution_focal_loss, quality_focal_loss,
                                            quality_focal_loss_tensor_target,
                                            quality_focal_loss_with_prob)

EPS32 = torch.finfo(torch.float32).eps  # mmdet's avg_factor eps


def qfl_inputs(seed=2, n=6, c=4):
    """Seeded inputs (numpy): logits, class ids (c = background), quality
    scores, one weight per prior."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, c))
    labels = rng.integers(0, c + 1, n)
    score = rng.uniform(0.0, 1.0, n)
    weight = rng.uniform(0.0, 1.0, n)
    return logits, labels, score, weight


def dfl_inputs(seed=3, n=8, bins=17):
    """Seeded inputs (numpy): logits over `bins` bins, distances in [0, bins - 1)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, bins))
    label = rng.uniform(0.0, bins - 1, n)
    weight = rng.uniform(0.0, 1.0, n)
    return logits, label, weight


def plain_qfl(pred, labels, score, beta=2.0, activated=False):
    """GFL's QFL written out per element, mmdet's way: every class a negative
    (target 0), then the true class of a positive against its score."""
    prob = pred if activated else torch.sigmoid(pred)

    def bce(p, y):
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))

    rows = []
    for i in range(pred.shape[0]):
        row = 0.0
        for c in range(pred.shape[1]):
            if c == int(labels[i]):
                row = row + bce(prob[i, c], score[i]) * (score[i] - prob[i, c]).abs() ** beta
            else:
                row = row + bce(prob[i, c], 0.0) * prob[i, c] ** beta
        rows.append(row)
    return torch.stack(rows)


def plain_dfl(pred, label):
    """mmdet's DFL formula: two cross-entropies weighted by the distances to
    the neighbouring bins."""
    left = label.long()
    right = left + 1
    return (F.cross_entropy(pred, left, reduction='none') * (right.to(label.dtype) - label)
            + F.cross_entropy(pred, right, reduction='none') * (label - left.to(label.dtype)))


def run_with_grad(loss, pred, *args, **kwargs):
    pred = pred.clone().requires_grad_(True)
    out = loss(pred, *args, **kwargs)
    out.sum().backward()
    return out.detach(), pred.grad


def _assert_matches(value, grad, expected, rtol=2e-6):
    if 'value' in expected:
        assert value.item() == pytest.approx(expected['value'], rel=rtol)
    if 'grad_sum' in expected:
        assert grad.sum().item() == pytest.approx(expected['grad_sum'], rel=rtol)
    assert grad.square().sum().item() == pytest.approx(expected['grad_sq'], rel=rtol)
    assert grad[0, 0].item() == pytest.approx(expected['grad_first'], rel=rtol)
    assert grad[-1, -1].item() == pytest.approx(expected['grad_last'], rel=rtol)


# --- quality focal loss ------------------------------------------------------

def test_qfl_hand_computed_small_case():
    # p = sigmoid([0, ln 3]) = [1/2, 3/4]; class 0 positive with score 0.8
    pred = torch.tensor([[0.0, math.log(3.0)]])
    positive = math.log(2.0) * (0.8 - 0.5) ** 2    # BCE(0, 0.8) = ln 2
    negative = math.log(4.0) * 0.75 ** 2           # -ln(1 - p) * p^2
    loss = QualityFocalLoss(reduction='none')
    target = (torch.tensor([0]), torch.tensor([0.8]))
    torch.testing.assert_close(loss(pred, target), torch.tensor([positive + negative]))
    torch.testing.assert_close(loss(pred, torch.tensor([[0.8, 0.0]])),
                               torch.tensor([positive + negative]))
    background = math.log(2.0) * 0.5 ** 2 + negative
    torch.testing.assert_close(loss(pred, (torch.tensor([2]), torch.tensor([0.8]))),
                               torch.tensor([background]))
    probs = QualityFocalLoss(activated=True, reduction='none')(torch.tensor([[0.5, 0.75]]), target)
    torch.testing.assert_close(probs, torch.tensor([positive + negative]))


# expected: mmdet 3.3.0 QualityFocalLoss (CPU, float32), computed in a
# scratch venv on qfl_inputs(); grad is d(sum of output)/d(pred).
MMDET_QFL = {
    'tuple, weight [N], avg_factor 2': dict(
        value=4.165877342224121, grad_sum=2.9683661460876465, grad_sq=0.8547234535217285,
        grad_first=0.19815810024738312, grad_last=0.2949851155281067),
    'tensor, beta 1.5, none': dict(
        grad_sum=9.674651145935059, grad_sq=8.256986618041992,
        grad_first=0.5221714973449707, grad_last=0.7163627743721008),
    'tuple, activated, sum': dict(
        value=13.123046875, grad_sum=95.43508911132812, grad_sq=2183.251953125,
        grad_first=1.934211254119873, grad_last=3.2250781059265137),
    'tensor, activated, mean': dict(
        value=2.1871745586395264, grad_sum=15.905848503112793, grad_sq=60.64589309692383,
        grad_first=0.3223685324192047, grad_last=0.537513017654419),
}
MMDET_QFL_TENSOR_NONE = [0.5123576521873474, 6.403054714202881, 2.350965738296509,
                         1.028900146484375, 1.9601314067840576, 2.533555030822754]


def test_qfl_matches_mmdet_reference_values():
    logits, labels, score, weight = qfl_inputs()
    pred = torch.tensor(logits, dtype=torch.float32)
    labels, score = torch.tensor(labels), torch.tensor(score, dtype=torch.float32)
    soft = F.one_hot(labels, 5)[:, :4] * score[:, None]
    value, grad = run_with_grad(QualityFocalLoss(), pred, (labels, score),
                                weight=torch.tensor(weight, dtype=torch.float32), avg_factor=2.0)
    _assert_matches(value, grad, MMDET_QFL['tuple, weight [N], avg_factor 2'])
    value, grad = run_with_grad(QualityFocalLoss(beta=1.5), pred, soft, reduction_override='none')
    torch.testing.assert_close(value, torch.tensor(MMDET_QFL_TENSOR_NONE), rtol=2e-6, atol=0)
    _assert_matches(value, grad, MMDET_QFL['tensor, beta 1.5, none'])
    value, grad = run_with_grad(QualityFocalLoss(activated=True), torch.sigmoid(pred),
                                [labels, score], reduction_override='sum')
    _assert_matches(value, grad, MMDET_QFL['tuple, activated, sum'])
    value, grad = run_with_grad(QualityFocalLoss(activated=True), torch.sigmoid(pred), soft)
    _assert_matches(value, grad, MMDET_QFL['tensor, activated, mean'])


@pytest.mark.parametrize('beta', [2.0, 1.5, 0.0])
def test_qfl_matches_plain_formula_with_all_options(beta):
    logits, labels, score, weight = (torch.tensor(a) for a in qfl_inputs(seed=4, n=7, c=3))
    expected = plain_qfl(logits, labels, score, beta)
    soft = F.one_hot(labels, 4)[:, :3] * score[:, None]
    loss = QualityFocalLoss(beta=beta, loss_weight=0.5)
    close = dict(rtol=1e-12, atol=1e-15)
    for target in ((labels, score), soft):
        torch.testing.assert_close(loss(logits, target, reduction_override='none'),
                                   0.5 * expected, **close)
        torch.testing.assert_close(loss(logits, target), 0.5 * expected.mean(), **close)
        torch.testing.assert_close(loss(logits, target, reduction_override='sum'),
                                   0.5 * expected.sum(), **close)
        torch.testing.assert_close(loss(logits, target, weight), 0.5 * (expected * weight).mean(),
                                   **close)
        torch.testing.assert_close(loss(logits, target, weight, avg_factor=3.0),
                                   0.5 * (expected * weight).sum() / (3.0 + EPS32), **close)
        with pytest.raises(ValueError, match='avg_factor'):
            loss(logits, target, avg_factor=3.0, reduction_override='sum')
    probs = torch.sigmoid(logits)
    expected_probs = plain_qfl(probs, labels, score, beta, activated=True)
    activated = QualityFocalLoss(beta=beta, activated=True, reduction='none')
    torch.testing.assert_close(activated(probs, (labels, score)), expected_probs, **close)
    torch.testing.assert_close(activated(probs, soft), expected_probs, **close)
    # the functional forms, keyword arguments after the target
    kwargs = dict(reduction='sum', beta=beta)
    torch.testing.assert_close(quality_focal_loss(logits, (labels, score), weight, **kwargs),
                               (expected * weight).sum(), **close)
    torch.testing.assert_close(quality_focal_loss_tensor_target(logits, soft, **kwargs),
                               expected.sum(), **close)
    torch.testing.assert_close(quality_focal_loss_with_prob(probs, (labels, score), **kwargs),
                               expected_probs.sum(), **close)


def test_qfl_positive_with_zero_score_and_out_of_range_ids():
    logits, labels, score, _ = (torch.tensor(a) for a in qfl_inputs(seed=6, n=5, c=3))
    score[0] = 0.0  # a positive of IoU 0 is trained like a negative there
    expected = plain_qfl(logits, labels, score)
    torch.testing.assert_close(QualityFocalLoss(reduction='none')(logits, (labels, score)),
                               expected, rtol=1e-12, atol=0)
    # without validation, ids outside [0, C) are negatives, as in mmdet
    odd = torch.tensor([-1, 7, 3, 3, 3])
    expected = plain_qfl(logits, torch.full((5,), 3), score)
    torch.testing.assert_close(QualityFocalLoss(reduction='none', validate=False)(
        logits, (odd, score)), expected, rtol=1e-12, atol=0)


def test_qfl_tensor_target_sums_over_dimension_1():
    rng = np.random.default_rng(11)
    logits = torch.tensor(rng.normal(0.0, 2.0, (3, 4, 5)))
    target = torch.tensor(np.where(rng.uniform(size=(3, 4, 5)) > 0.7, rng.uniform(size=(3, 4, 5)),
                                   0.0))
    loss = QualityFocalLoss(reduction='none')
    flat = loss(logits.permute(0, 2, 1).reshape(15, 4), target.permute(0, 2, 1).reshape(15, 4))
    torch.testing.assert_close(loss(logits, target), flat.reshape(3, 5), rtol=1e-12, atol=0)
    weight = torch.rand(3, 5, dtype=torch.float64)
    torch.testing.assert_close(loss(logits, target, weight), flat.reshape(3, 5) * weight,
                               rtol=1e-12, atol=0)


def test_qfl_gradcheck_float64():
    logits, labels, score, weight = (torch.tensor(a) for a in qfl_inputs(seed=7, n=4, c=3))
    pred = logits.clone().requires_grad_(True)
    score = score.clone().requires_grad_(True)
    loss = QualityFocalLoss(beta=1.5)
    assert gradcheck(lambda p, s: loss(p, (labels, s), weight, avg_factor=2.0), (pred, score))
    soft = (F.one_hot(labels, 4)[:, :3] * score.detach()[:, None])
    assert gradcheck(lambda p: loss(p, soft), (pred,))
    probs = torch.sigmoid(logits).requires_grad_(True)
    assert gradcheck(lambda p: QualityFocalLoss(activated=True)(p, (labels, score.detach())),
                     (probs,))


# expected: mmdet 3.3.0 DistributionFocalLoss (CPU, float32), computed in a
# scratch venv on dfl_inputs(); grad is d(sum of output)/d(pred) (its sum is
# ~0, softmax gradients sum to zero per row, so it is not compared).
MMDET_DFL = {
    'weight [N], avg_factor 3': dict(
        value=6.314224720001221, grad_sq=0.1927270144224167,
        grad_first=0.006584741175174713, grad_last=0.005513153504580259),
    'none, loss_weight 0.25': dict(
        grad_sq=0.4500962197780609, grad_first=0.0176443699747324,
        grad_last=0.006188458763062954),
}
MMDET_DFL_NONE = [1.6937410831451416, 1.338486671447754, 1.008052110671997, 1.2244075536727905,
                  1.2764668464660645, 1.072590708732605, 1.4128152132034302, 1.505038857460022]


def test_dfl_hand_computed_small_case():
    # softmax([0, ln 2, 0]) = [1/4, 1/2, 1/4]
    pred = torch.tensor([[0.0, math.log(2.0), 0.0]] * 3)
    label = torch.tensor([0.25, 1.0, 2.0])
    expected = torch.tensor([0.75 * math.log(4.0) + 0.25 * math.log(2.0),   # bins 0 and 1
                             math.log(2.0),                                  # bin 1 exactly
                             math.log(4.0)])                                 # label == n
    torch.testing.assert_close(DistributionFocalLoss(reduction='none')(pred, label), expected)
    torch.testing.assert_close(DistributionFocalLoss()(pred, label), expected.mean())


def test_dfl_matches_mmdet_reference_values():
    logits, label, weight = (torch.tensor(a, dtype=torch.float32) for a in dfl_inputs())
    value, grad = run_with_grad(DistributionFocalLoss(), logits, label, weight=weight,
                                avg_factor=3.0)
    _assert_matches(value, grad, MMDET_DFL['weight [N], avg_factor 3'])
    value, grad = run_with_grad(DistributionFocalLoss(loss_weight=0.25), logits, label,
                                reduction_override='none')
    torch.testing.assert_close(value, torch.tensor(MMDET_DFL_NONE), rtol=2e-6, atol=0)
    _assert_matches(value, grad, MMDET_DFL['none, loss_weight 0.25'])


def test_dfl_matches_plain_formula_with_all_options():
    logits, label, weight = (torch.tensor(a) for a in dfl_inputs(seed=8, n=12, bins=9))
    label[0], label[1] = 3.0, 0.0  # on a bin
    expected = plain_dfl(logits, label)
    loss = DistributionFocalLoss(loss_weight=1.5)
    close = dict(rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(loss(logits, label, reduction_override='none'), 1.5 * expected,
                               **close)
    torch.testing.assert_close(loss(logits, label), 1.5 * expected.mean(), **close)
    torch.testing.assert_close(loss(logits, label, reduction_override='sum'),
                               1.5 * expected.sum(), **close)
    torch.testing.assert_close(loss(logits, label, weight, avg_factor=5.0),
                               1.5 * (expected * weight).sum() / (5.0 + EPS32), **close)
    with pytest.raises(ValueError, match='avg_factor'):
        loss(logits, label, avg_factor=5.0, reduction_override='sum')
    torch.testing.assert_close(
        distribution_focal_loss(logits, label, weight, reduction='sum'),
        (expected * weight).sum(), **close)
    # YOLOv8's layout: [priors, 4 sides, bins] with [priors, 4] distances
    torch.testing.assert_close(loss(logits.reshape(3, 4, 9), label.reshape(3, 4),
                                    weight.reshape(3, 4), reduction_override='none'),
                               1.5 * (expected * weight).reshape(3, 4), **close)
    # integer distances sit on a bin
    ints = torch.tensor([0, 3, 8] * 4)
    torch.testing.assert_close(loss(logits, ints, reduction_override='none'),
                               1.5 * F.cross_entropy(logits, ints, reduction='none'), **close)


def test_dfl_gradcheck_float64():
    logits, label, weight = (torch.tensor(a) for a in dfl_inputs(seed=9, n=5, bins=6))
    pred = logits.clone().requires_grad_(True)
    label = label.clone().requires_grad_(True)
    assert gradcheck(lambda p, y: DistributionFocalLoss()(p, y, weight, avg_factor=2.0),
                     (pred, label))


# --- shared behaviour --------------------------------------------------------

def test_empty_inputs_give_a_graph_connected_zero():
    pred = torch.zeros(0, 4, requires_grad=True)
    labels, score = torch.zeros(0, dtype=torch.long), torch.zeros(0)
    for reduction in ('mean', 'sum', 'none'):
        for loss in (QualityFocalLoss(), QualityFocalLoss(activated=True)):
            for target in ((labels, score), torch.zeros(0, 4)):
                value = loss(pred, target, reduction_override=reduction)
                assert value.shape == (() if reduction != 'none' else (0,))
                assert value.sum().item() == 0.0
        value = DistributionFocalLoss()(pred, score, reduction_override=reduction)
        assert value.shape == (() if reduction != 'none' else (0,))
        assert value.sum().item() == 0.0
    total = (QualityFocalLoss()(pred, (labels, score), torch.zeros(0), avg_factor=0.0)
             + DistributionFocalLoss()(pred, score, torch.zeros(0), avg_factor=0.0))
    assert total.item() == 0.0
    total.backward()
    assert pred.grad.shape == (0, 4)


def test_half_and_autocast_never_overflow():
    logits = torch.tensor([[30.0, -30.0, 0.5], [-30.0, 30.0, -2.0]])
    labels, score = torch.tensor([0, 1]), torch.tensor([0.9, 0.4])
    dfl_label = torch.tensor([0.5, 1.25])
    qfl, dfl = QualityFocalLoss(reduction='sum'), DistributionFocalLoss(reduction='sum')
    cases = [(qfl, (labels, score), (labels, score.double())),
             (dfl, dfl_label, dfl_label.double())]
    for loss, target, target64 in cases:
        reference = loss(logits.double(), target64)
        half_target = (labels, score.half()) if loss is qfl else dfl_label.half()
        half = loss(logits.half(), half_target)
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
        torch.testing.assert_close(value.double(), loss(pred.double(), target64), rtol=1e-6, atol=0)
        value.backward()
        assert torch.isfinite(layer.weight.grad).all()


def test_qfl_bad_inputs_name_the_argument():
    loss = QualityFocalLoss()
    pred = torch.zeros(3, 4)
    labels, score = torch.tensor([0, 1, 4]), torch.tensor([0.5, 0.5, 0.5])
    with pytest.raises(TypeError, match='pred'):
        loss(pred.long(), (labels, score))
    with pytest.raises(TypeError, match='target'):
        loss(pred, 'labels')
    with pytest.raises(ValueError, match='target'):
        loss(pred, (labels, score, score))
    with pytest.raises(TypeError, match='target label'):
        loss(pred, (labels.float(), score))
    with pytest.raises(TypeError, match='target score'):
        loss(pred, (labels, score.long()))
    with pytest.raises(ValueError, match='target label'):
        loss(pred, (labels[:2], score))
    with pytest.raises(ValueError, match='target score'):
        loss(pred, (labels, score[:, None]))
    with pytest.raises(ValueError, match='target label'):
        loss(pred, (torch.tensor([0, 1, 5]), score))
    with pytest.raises(ValueError, match='target label'):
        loss(pred, (torch.tensor([0, -1, 2]), score))
    with pytest.raises(ValueError, match='target score'):
        loss(pred, (labels, torch.tensor([0.5, 1.5, 0.5])))
    with pytest.raises(ValueError, match='target score'):
        loss(pred, (labels, torch.tensor([0.5, float('nan'), 0.5])))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.zeros(3, 4, 2), (labels, score))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.zeros(3, 5))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.full((3, 4), 1.5))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.full((3, 4), float('nan')), (labels, score))
    with pytest.raises(ValueError, match='pred'):
        QualityFocalLoss(activated=True)(torch.full((3, 4), 1.5), (labels, score))
    for bad_weight in (torch.ones(3, 4), torch.ones(2), torch.ones(3, 1)):
        with pytest.raises(ValueError, match='weight'):
            loss(pred, (labels, score), bad_weight)
    with pytest.raises(ValueError, match='weight'):
        loss(pred, (labels, score), torch.tensor([1.0, float('inf'), 1.0]))
    with pytest.raises(ValueError, match='reduction_override'):
        loss(pred, (labels, score), reduction_override='avg')
    with pytest.raises(ValueError, match='beta'):
        QualityFocalLoss(beta=-1.0)
    with pytest.raises(NotImplementedError, match='sigmoid'):
        QualityFocalLoss(use_sigmoid=False)


def test_dfl_bad_inputs_name_the_argument():
    loss = DistributionFocalLoss()
    pred, label = torch.zeros(3, 5), torch.tensor([0.0, 1.5, 4.0])
    with pytest.raises(TypeError, match='pred'):
        loss(pred.long(), label)
    with pytest.raises(TypeError, match='target'):
        loss(pred, [0.0, 1.5, 4.0])
    with pytest.raises(TypeError, match='target'):
        loss(pred, label > 1)
    with pytest.raises(ValueError, match='target'):
        loss(pred, label[:2])
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.zeros(3, 5))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.zeros(3, 1), label)
    with pytest.raises(ValueError, match='pred'):
        loss(torch.zeros(()), torch.zeros(()))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0.0, 1.5, 4.01]))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0.0, -0.5, 1.0]))
    with pytest.raises(ValueError, match='target'):
        loss(pred, torch.tensor([0.0, float('nan'), 1.0]))
    with pytest.raises(ValueError, match='pred'):
        loss(torch.full((3, 5), float('inf')), label)
    with pytest.raises(ValueError, match='weight'):
        loss(pred, label, torch.ones(3, 1))
    with pytest.raises(ValueError, match='reduction_override'):
        loss(pred, label, reduction_override='avg')
    with pytest.raises(ValueError, match='reduction'):
        DistributionFocalLoss(reduction='avg')


def test_validation_switch_and_no_host_sync(monkeypatch):
    nan_pred = torch.tensor([[float('nan'), 0.0]])
    assert torch.isnan(QualityFocalLoss(validate=False)(nan_pred, (torch.tensor([0]),
                                                                  torch.tensor([0.5]))))
    with yolo_losses.validation(False):
        assert torch.isnan(DistributionFocalLoss()(nan_pred, torch.tensor([0.5])))
    logits, labels, score, weight = (torch.tensor(a) for a in qfl_inputs())
    dfl_logits, dfl_label, dfl_weight = (torch.tensor(a) for a in dfl_inputs())
    logits.requires_grad_(True)
    dfl_logits.requires_grad_(True)
    qfl, qfl_prob = QualityFocalLoss(validate=False), QualityFocalLoss(validate=False,
                                                                       activated=True)
    dfl = DistributionFocalLoss(validate=False)
    soft = F.one_hot(labels, 5)[:, :4] * score[:, None]

    def fail(*args, **kwargs):
        raise AssertionError('host-device synchronisation on the fast path')
    for name in ('item', 'tolist', '__bool__', 'nonzero', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, fail)
    total = (qfl(logits, (labels, score), weight, avg_factor=torch.tensor(2.0))
             + qfl(logits, soft) + qfl_prob(torch.sigmoid(logits), (labels, score))
             + dfl(dfl_logits, dfl_label, dfl_weight, avg_factor=torch.tensor(3.0)))
    total.backward()


def test_built_from_the_registry():
    qfl = build_loss(dict(type='QualityFocalLoss', beta=1.0, loss_weight=2.0, activated=True))
    assert isinstance(qfl, QualityFocalLoss)
    assert (qfl.beta, qfl.loss_weight, qfl.activated) == (1.0, 2.0, True)
    # a negative at p = 1/2: 2 * ln 2 * 0.5
    assert qfl(torch.tensor([[0.5]]), (torch.tensor([1]), torch.tensor([0.0]))).item() == \
        pytest.approx(math.log(2.0), rel=1e-6)
    dfl = build_loss(dict(type='DistributionFocalLoss', loss_weight=0.25, reduction='sum'))
    assert isinstance(dfl, DistributionFocalLoss)
    assert dfl(torch.zeros(2, 4), torch.tensor([0.5, 2.0])).item() == \
        pytest.approx(0.25 * 2 * math.log(4.0), rel=1e-6)

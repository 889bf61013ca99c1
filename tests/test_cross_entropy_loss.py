"""CrossEntropyLoss (softmax, sigmoid, mask) and its YOLO options."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.losses.cross_entropy_loss import (CrossEntropyLoss, binary_cross_entropy,
                                                   cross_entropy, mask_cross_entropy)

EPS32 = 1.1920928955078125e-07  # torch.finfo(torch.float32).eps, mmdet's avg_factor eps


def plain_bce(logits, target, pos_weight=1.0):
    """-(p * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x))), element-wise."""
    return -(pos_weight * target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits))


def plain_nll(logits, label):
    """-log softmax(logits)[label] per row."""
    return -torch.log_softmax(logits, dim=1)[torch.arange(len(label)), label]


# --- softmax ------------------------------------------------------------------

def test_softmax_hand_values():
    # row 0: equal logits -> ln 2; row 1: p(class 0) = 3 / (3 + 1) -> ln(4/3)
    pred = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    label = torch.tensor([1, 0])
    expected = [math.log(2.0), math.log(4.0 / 3.0)]
    assert CrossEntropyLoss(reduction='none')(pred, label).tolist() == pytest.approx(expected)
    assert CrossEntropyLoss()(pred, label).item() == pytest.approx(sum(expected) / 2)
    # class_weight scales each sample by its class's weight; mmdet's mean
    # still divides by the number of samples (not by the weight sum)
    weighted = CrossEntropyLoss(class_weight=[2.0, 0.5])(pred, label)
    assert weighted.item() == pytest.approx((0.5 * expected[0] + 2.0 * expected[1]) / 2)
    got = cross_entropy(pred, label, torch.tensor([1.0, 3.0]), reduction='sum')
    assert got.item() == pytest.approx(expected[0] + 3.0 * expected[1])


def test_softmax_ignore_index_and_avg_non_ignore():
    pred = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0], [0.3, 0.1, -0.2]])
    label = torch.tensor([0, 2, 255, 1])
    nll = plain_nll(pred, label.clamp(max=2))
    kept = torch.tensor([1.0, 1.0, 0.0, 1.0])
    with pytest.warns(UserWarning, match='avg_non_ignore'):
        mean_all = CrossEntropyLoss(ignore_index=255)
    assert mean_all(pred, label).item() == pytest.approx((nll * kept).sum().item() / 4)
    mean_kept = CrossEntropyLoss(ignore_index=255, avg_non_ignore=True, loss_weight=2.0)
    assert mean_kept(pred, label).item() == pytest.approx(
        2.0 * (nll * kept).sum().item() / (3 + EPS32))
    # the count is a tensor (no .item()); an explicit avg_factor still wins
    assert mean_kept(pred, label, avg_factor=8.0).item() == pytest.approx(
        2.0 * (nll * kept).sum().item() / (8.0 + EPS32))
    # ignore_index per call, like mmdet's forward(ignore_index=...)
    per_call = CrossEntropyLoss(avg_non_ignore=True)(pred, label.clamp(max=2), ignore_index=1)
    kept1 = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert per_call.item() == pytest.approx((nll * kept1).sum().item() / (3 + EPS32))
    # everything ignored: 0, not NaN
    all_ignored = torch.full((4,), 255)
    assert mean_kept(pred, all_ignored).item() == 0.0


def test_softmax_label_smoothing_and_probabilities():
    rng = np.random.default_rng(7)
    pred = torch.tensor(rng.normal(size=(5, 4)) * 2, dtype=torch.float32)
    label = torch.tensor([0, 3, 1, 1, 2])
    eps = 0.2
    log_p = torch.log_softmax(pred, dim=1)
    # PyTorch's smoothing: (1 - eps) * nll + eps * mean over classes of -log p
    expected = (1 - eps) * plain_nll(pred, label) + eps * (-log_p).mean(dim=1)
    got = CrossEntropyLoss(label_smoothing=eps, reduction='none')(pred, label)
    assert torch.allclose(got, expected, atol=1e-6)
    # class probabilities of the shape of pred: -sum q log p
    probs = torch.softmax(torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float32), dim=1)
    got = CrossEntropyLoss(reduction='none')(pred, probs)
    assert torch.allclose(got, -(probs * log_p).sum(dim=1), atol=1e-6)
    got = CrossEntropyLoss(avg_non_ignore=True)(pred, probs)  # nothing ignored: all 5 count
    assert got.item() == pytest.approx((-(probs * log_p).sum(dim=1)).sum().item() / (5 + EPS32))


def test_softmax_spatial_logits():
    pred = torch.randn(2, 3, 4, 5)
    label = torch.randint(0, 3, (2, 4, 5))
    got = CrossEntropyLoss(reduction='none')(pred, label)
    expected = -torch.log_softmax(pred, dim=1).gather(1, label[:, None]).squeeze(1)
    assert got.shape == (2, 4, 5) and torch.allclose(got, expected, atol=1e-6)


# --- sigmoid ------------------------------------------------------------------

def test_sigmoid_class_ids_expand_to_one_hot():
    pred = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.3],
                         [0.7, 0.7, 0.7], [1.0, -1.0, 0.0]])
    # 1: class 1; 3 == C: background; 7 > C: background too (mmdet); -100 and
    # -3: ignored (weight 0)
    label = torch.tensor([1, 3, 7, -100, -3])
    one_hot = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    valid = torch.tensor([[1.0], [1.0], [1.0], [0.0], [0.0]])
    element = plain_bce(pred, one_hot) * valid
    loss = CrossEntropyLoss(use_sigmoid=True, reduction='none', validate=False)
    assert torch.allclose(loss(pred, label), element, atol=1e-6)
    mean = CrossEntropyLoss(use_sigmoid=True, validate=False)(pred, label)
    assert mean.item() == pytest.approx(element.sum().item() / 15)
    non_ignore = CrossEntropyLoss(use_sigmoid=True, avg_non_ignore=True, validate=False)
    assert non_ignore(pred, label).item() == pytest.approx(
        element.sum().item() / (9 + EPS32))  # 3 valid rows x 3 classes
    # a per-sample weight [N] scales whole rows, as in mmdet
    sample_weight = torch.tensor([2.0, 1.0, 0.5, 4.0, 4.0])
    got = CrossEntropyLoss(use_sigmoid=True, reduction='sum', validate=False)(
        pred, label, sample_weight)
    assert got.item() == pytest.approx((element * sample_weight[:, None]).sum().item())
    # class_weight is BCE's pos_weight in sigmoid mode (mmdet's choice)
    cw = [2.0, 3.0, 0.5]
    got = CrossEntropyLoss(use_sigmoid=True, class_weight=cw, reduction='none',
                           validate=False)(pred, label)
    assert torch.allclose(got, plain_bce(pred, one_hot, torch.tensor(cw)) * valid, atol=1e-6)


def test_sigmoid_same_shape_targets_weights_avg_factor():
    # the composite YOLO losses' call: soft float targets, a weight mask, avg_factor
    rng = np.random.default_rng(11)
    pred = torch.tensor(rng.normal(size=(6, 4)) * 3, dtype=torch.float32)
    target = torch.tensor(rng.uniform(size=(6, 4)), dtype=torch.float32)
    mask = torch.tensor(rng.uniform(size=(6, 4)) > 0.3, dtype=torch.float32)
    loss = CrossEntropyLoss(use_sigmoid=True, loss_weight=0.5)
    got = loss(pred, target, mask, avg_factor=torch.tensor(7.0))
    expected = 0.5 * (plain_bce(pred, target) * mask).sum() / (7.0 + EPS32)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # pred [N] with targets [N] (binary), and [N, 1] objectness
    got = loss(pred[:, 0], target[:, 0], reduction_override='sum')
    assert got.item() == pytest.approx(0.5 * plain_bce(pred[:, 0], target[:, 0]).sum().item())
    # entries equal to ignore_index (-100 by default) get weight 0
    marked = target.clone()
    marked[0, 1] = -100.0
    keep = torch.ones(6, 4)
    keep[0, 1] = 0.0
    got = CrossEntropyLoss(use_sigmoid=True, reduction='sum')(pred, marked)
    assert got.item() == pytest.approx((plain_bce(pred, target) * keep).sum().item(), rel=1e-6)
    got = CrossEntropyLoss(use_sigmoid=True, avg_non_ignore=True)(pred, marked)
    assert got.item() == pytest.approx(
        (plain_bce(pred, target) * keep).sum().item() / (23 + EPS32), rel=1e-6)


def test_pos_weight_and_label_smoothing_match_yolov5():
    """yolov5 utils/loss.py: BCEWithLogitsLoss(pos_weight=cls_pw) on targets
    filled with cn = eps/2 and cp = 1 - eps/2 at the class (smooth_BCE)."""
    rng = np.random.default_rng(3)
    num, num_classes, eps, cls_pw = 7, 5, 0.1, 1.7
    logits = torch.tensor(rng.normal(size=(num, num_classes)) * 2, dtype=torch.float32)
    cls = torch.tensor(rng.integers(0, num_classes, size=num))
    cp, cn = 1.0 - 0.5 * eps, 0.5 * eps
    t = torch.full_like(logits, cn)
    t[torch.arange(num), cls] = cp
    expected = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([cls_pw]))(logits, t)
    written_out = -(cls_pw * t * F.logsigmoid(logits) + (1 - t) * F.logsigmoid(-logits)).mean()
    assert expected.item() == pytest.approx(written_out.item(), rel=1e-6)
    loss = build_loss(dict(type='CrossEntropyLoss', use_sigmoid=True, pos_weight=cls_pw,
                           label_smoothing=eps, reduction='mean', loss_weight=1.0))
    # class ids expand to one-hot, then smooth
    assert loss(logits, cls).item() == pytest.approx(expected.item(), rel=1e-6)
    # same-shape 0/1 targets, as the composite losses pass them
    one_hot = F.one_hot(cls, num_classes).float()
    assert loss(logits, one_hot).item() == pytest.approx(expected.item(), rel=1e-6)
    # a per-class pos_weight list
    per_class = [1.0, 2.0, 0.5, 1.5, 3.0]
    got = CrossEntropyLoss(use_sigmoid=True, pos_weight=per_class, reduction='none')(
        logits, one_hot)
    assert torch.allclose(got, plain_bce(logits, one_hot, torch.tensor(per_class)), atol=1e-6)
    # the functional form takes the same options
    got = binary_cross_entropy(logits, one_hot, pos_weight=cls_pw, label_smoothing=eps)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


# --- mask ---------------------------------------------------------------------

def test_mask_mode():
    rng = np.random.default_rng(4)
    pred = torch.tensor(rng.normal(size=(3, 4, 2, 5)), dtype=torch.float32)
    target = torch.tensor(rng.uniform(size=(3, 2, 5)) > 0.5, dtype=torch.float32)
    label = torch.tensor([2, 0, 3])
    own = torch.stack([pred[0, 2], pred[1, 0], pred[2, 3]])
    expected = plain_bce(own, target)
    loss = CrossEntropyLoss(use_mask=True, loss_weight=2.0)
    got = loss(pred, target, label)  # mmdet's call: the labels come third
    assert got.shape == (1,)  # mmdet's shape
    assert got.item() == pytest.approx(2.0 * expected.mean().item(), rel=1e-6)
    got = loss(pred, target, label, reduction_override='none')
    assert torch.allclose(got, 2.0 * expected, atol=1e-6)
    # mmdet hands class_weight to BCE as an element weight over [N, *]
    width_weight = [1.0, 2.0, 0.0, 0.5, 1.0]
    got = CrossEntropyLoss(use_mask=True, class_weight=width_weight)(pred, target, label)
    assert got.item() == pytest.approx(
        (expected * torch.tensor(width_weight)).mean().item(), rel=1e-6)
    got = mask_cross_entropy(pred, target, label, reduction='sum')
    assert got.item() == pytest.approx(expected.sum().item(), rel=1e-6)


# --- mmdet reference numbers -------------------------------------------------------

def _value_and_grad(loss, pred, *args):
    leaf = pred.clone().requires_grad_(True)
    out = loss(leaf, *args)
    out.sum().backward()
    return out.item(), leaf.grad.sum().item(), (leaf.grad ** 2).sum().item()


def test_mmdet_reference_values():
    # expected: mmdet 3.3.0 CrossEntropyLoss, computed in a scratch venv from
    # the same numpy draws; value, sum and sum of squares of the gradient
    rng = np.random.default_rng(2)
    logits = torch.tensor(rng.normal(size=(12, 6)) * 2, dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, 6, size=12))
    labels[[2, 7, 9]] = 255
    sample_weight = torch.tensor(rng.uniform(size=12), dtype=torch.float32)
    cw = [0.5, 1.0, 1.5, 2.0, 0.8, 1.2]
    cases = [
        (dict(avg_non_ignore=False), labels,
         (2.61311411857605, -2.5870122044580057e-08, 0.1416051002655)),
        (dict(avg_non_ignore=True), labels,
         (3.484152317047119, -3.885043042828329e-08, 0.25174243217426795)),
    ]
    labels_sig = torch.tensor(rng.integers(0, 7, size=12))
    labels_sig[[3, 8]] = 255
    labels_sig[5] = 6  # background
    cases += [
        (dict(use_sigmoid=True, avg_non_ignore=False), labels_sig,
         (0.4225039780139923, 0.10211138851445867, 0.002055064138050929)),
        (dict(use_sigmoid=True, avg_non_ignore=True), labels_sig,
         (0.5070047974586487, 0.12253365673859662, 0.0029592919559646358)),
    ]
    for kwargs, label, (value, grad_sum, grad_sumsq) in cases:
        loss = CrossEntropyLoss(class_weight=cw, ignore_index=255, loss_weight=1.5, **kwargs)
        got = _value_and_grad(loss, logits, label, sample_weight)
        assert got[0] == pytest.approx(value, rel=1e-6)
        assert got[1] == pytest.approx(grad_sum, abs=1e-6)
        assert got[2] == pytest.approx(grad_sumsq, rel=1e-5)
    soft = torch.tensor(rng.uniform(size=(12, 6)), dtype=torch.float32)
    element_weight = torch.tensor(rng.uniform(size=(12, 6)), dtype=torch.float32)
    got = _value_and_grad(
        lambda p, t, w: CrossEntropyLoss(use_sigmoid=True, loss_weight=0.5)(
            p, t, w, avg_factor=7.0), logits, soft, element_weight)
    assert got == pytest.approx((2.5697669982910156, 0.014836742469924502,
                                 0.022000822677205746), rel=1e-5)

    rng = np.random.default_rng(3)
    mask_pred = torch.tensor(rng.normal(size=(4, 3, 5, 5)) * 2, dtype=torch.float32)
    mask_target = torch.tensor(rng.uniform(size=(4, 5, 5)) > 0.5, dtype=torch.float32)
    mask_label = torch.tensor(rng.integers(0, 3, size=4))
    got = _value_and_grad(CrossEntropyLoss(use_mask=True), mask_pred, mask_target, mask_label)
    assert got == pytest.approx((1.2430506944656372, 0.08179946056770859,
                                 0.0038775111207762646), rel=1e-5)


# --- dtypes, empty input, gradients ------------------------------------------------

def test_gradcheck_float64():
    rng = np.random.default_rng(9)
    pred = torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([0, 3, 4, 1, -100])
    soft = torch.tensor(rng.uniform(size=(5, 4)), dtype=torch.float64)
    weight = torch.tensor(rng.uniform(size=5), dtype=torch.float64)
    softmax = CrossEntropyLoss(class_weight=[1.0, 2.0, 0.5, 1.5], label_smoothing=0.1)
    sigmoid = CrossEntropyLoss(use_sigmoid=True, pos_weight=[1.0, 2.0, 0.5, 1.5],
                               label_smoothing=0.1, avg_non_ignore=True)
    ids_softmax = ids.clamp(max=3)
    assert torch.autograd.gradcheck(lambda p: softmax(p, ids_softmax, weight), (pred,))
    assert torch.autograd.gradcheck(lambda p: sigmoid(p, ids, weight), (pred,))
    assert torch.autograd.gradcheck(lambda p: sigmoid(p, soft, avg_factor=3.0), (pred,))
    mask_pred = torch.tensor(rng.normal(size=(2, 3, 3)), dtype=torch.float64,
                             requires_grad=True)
    mask_target = torch.tensor(rng.uniform(size=(2, 3)), dtype=torch.float64)
    masked = CrossEntropyLoss(use_mask=True)
    assert torch.autograd.gradcheck(
        lambda p: masked(p, mask_target, torch.tensor([2, 0])), (mask_pred,))
    assert sigmoid(pred, ids).dtype == torch.float64


def test_empty_inputs_give_zero():
    cases = [
        (CrossEntropyLoss(avg_non_ignore=True), torch.zeros(0, 4),
         torch.zeros(0, dtype=torch.long)),
        (CrossEntropyLoss(use_sigmoid=True, avg_non_ignore=True), torch.zeros(0, 4),
         torch.zeros(0, dtype=torch.long)),
        (CrossEntropyLoss(use_sigmoid=True, pos_weight=2.0, label_smoothing=0.1),
         torch.zeros(0, 4), torch.zeros(0, 4)),
    ]
    for loss, pred, target in cases:
        for reduction in ('none', 'mean', 'sum'):
            leaf = pred.clone().requires_grad_(True)
            got = loss(leaf, target, reduction_override=reduction)
            assert got.sum().item() == 0.0 and got.requires_grad
            assert got.shape == (() if reduction != 'none' else
                                 (0,) if not loss.use_sigmoid else (0, 4))
            got.sum().backward()
        assert loss(pred, target, torch.zeros(target.shape), avg_factor=0.0).item() == 0.0
    got = CrossEntropyLoss(use_mask=True)(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, 4),
                                          torch.zeros(0, dtype=torch.long))
    assert got.shape == (1,) and got.item() == 0.0


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast_low_precision(dtype):
    rng = np.random.default_rng(12)
    # logits of +-40: exp overflows float16; the loss computes in float32
    logits = torch.tensor(rng.normal(size=(16, 5)) * 40, dtype=torch.float32)
    ids = torch.tensor(rng.integers(0, 6, size=16))
    soft = torch.tensor(rng.uniform(size=(16, 5)), dtype=torch.float32)
    cases = [
        (CrossEntropyLoss(), ids.clamp(max=4)),
        (CrossEntropyLoss(use_sigmoid=True, pos_weight=1.5, label_smoothing=0.1), ids),
        (CrossEntropyLoss(use_sigmoid=True), soft.to(dtype)),
    ]
    for loss, target in cases:
        low = logits.to(dtype).requires_grad_(True)
        with torch.autocast('cpu', dtype=dtype):
            got = loss(low, target)
        assert got.dtype == torch.float32 and torch.isfinite(got)
        target32 = target.float() if target.is_floating_point() else target
        same = loss(low.detach().float(), target32)
        assert got.item() == pytest.approx(same.item(), rel=1e-6)
        assert got.item() == pytest.approx(loss(logits, target32).item(), rel=2e-2)
        got.backward()
        assert torch.isfinite(low.grad.float()).all()


# --- construction, registry, bad input ------------------------------------------------

def test_registry_attributes_and_state_dict():
    loss = build_loss(dict(type='CrossEntropyLoss', use_sigmoid=True, pos_weight=[1.0, 2.0],
                           label_smoothing=0.05, reduction='sum', loss_weight=0.5))
    assert isinstance(loss, CrossEntropyLoss)
    assert (loss.use_sigmoid, loss.use_mask, loss.reduction, loss.loss_weight) == (
        True, False, 'sum', 0.5)
    assert loss.pos_weight == [1.0, 2.0] and loss.label_smoothing == 0.05
    # the class vectors are non-persistent buffers: checkpoints stay mmdet's
    assert loss.state_dict() == {}
    assert 'label_smoothing=0.05' in repr(loss)
    assert CrossEntropyLoss(class_weight=[1, 2]).class_weight == [1.0, 2.0]


def test_constructor_errors():
    with pytest.raises(ValueError, match='use_sigmoid and use_mask'):
        CrossEntropyLoss(use_sigmoid=True, use_mask=True)
    with pytest.raises(ValueError, match='reduction'):
        CrossEntropyLoss(reduction='avg')
    with pytest.raises(ValueError, match='pos_weight'):
        CrossEntropyLoss(pos_weight=2.0)  # softmax mode
    with pytest.raises(ValueError, match='pos_weight'):
        CrossEntropyLoss(use_sigmoid=True, pos_weight=2.0, class_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match='pos_weight'):
        CrossEntropyLoss(use_sigmoid=True, pos_weight=-1.0)
    with pytest.raises(TypeError, match='pos_weight'):
        CrossEntropyLoss(use_sigmoid=True, pos_weight='2')
    with pytest.raises(ValueError, match='label_smoothing'):
        CrossEntropyLoss(label_smoothing=1.0)
    with pytest.raises(ValueError, match='label_smoothing'):
        CrossEntropyLoss(use_mask=True, label_smoothing=0.1)
    with pytest.raises(ValueError, match='ignore_index'):
        CrossEntropyLoss(use_mask=True, ignore_index=255)
    with pytest.raises(TypeError, match='ignore_index'):
        CrossEntropyLoss(ignore_index=2.5, avg_non_ignore=True)
    with pytest.raises(TypeError, match='class_weight'):
        CrossEntropyLoss(class_weight=1.0)
    with pytest.raises(ValueError, match='class_weight'):
        CrossEntropyLoss(class_weight=[1.0, float('nan')])


def test_call_errors():
    pred = torch.randn(4, 3)
    ids = torch.tensor([0, 1, 2, 1])
    softmax, sigmoid = CrossEntropyLoss(), CrossEntropyLoss(use_sigmoid=True)
    with pytest.raises(ValueError, match='target'):
        softmax(pred, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='target'):
        sigmoid(pred, torch.zeros(4, 2))
    with pytest.raises(TypeError, match='target'):
        softmax(pred, ids.float())  # class ids must be integers
    with pytest.raises(TypeError, match='target'):
        sigmoid(pred, ids.float())
    with pytest.raises(ValueError, match='pred'):
        softmax(torch.randn(4), ids)
    with pytest.raises(ValueError, match='weight'):
        softmax(pred, ids, torch.ones(3))
    with pytest.raises(ValueError, match='weight'):
        sigmoid(pred, torch.rand(4, 3), torch.ones(4))  # [4] is not [*, 3]-broadcastable
    with pytest.raises(ValueError, match='class_weight'):
        CrossEntropyLoss(class_weight=[1.0, 2.0])(pred, ids)
    with pytest.raises(ValueError, match='pos_weight'):
        CrossEntropyLoss(use_sigmoid=True, pos_weight=[1.0, 2.0])(pred, ids)
    with pytest.raises(ValueError, match='reduction_override'):
        softmax(pred, ids, reduction_override='mean ')
    with pytest.raises(ValueError, match='avg_factor'):
        softmax(pred, ids, avg_factor=2.0, reduction_override='sum')
    with pytest.raises(TypeError, match='label'):
        softmax(pred, ids, label=ids)  # unexpected keyword
    with pytest.raises(ValueError, match='class_weight and pos_weight'):
        binary_cross_entropy(pred, ids, class_weight=[1.0] * 3, pos_weight=1.0)
    # mask mode: the labels are required, [N] integers
    masked = CrossEntropyLoss(use_mask=True)
    mask_pred, mask_target = torch.randn(2, 3, 4, 4), torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match='weight'):
        masked(mask_pred, mask_target)
    with pytest.raises(ValueError, match='weight'):
        masked(mask_pred, mask_target, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='target'):
        masked(mask_pred, torch.rand(2, 4, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='ignore_index'):
        masked(mask_pred, mask_target, torch.tensor([0, 1]), ignore_index=3)
    with pytest.raises(ValueError, match='class_weight'):
        CrossEntropyLoss(use_mask=True, class_weight=[1.0, 2.0, 3.0])(
            mask_pred, mask_target, torch.tensor([0, 1]))


def test_value_checks_only_when_validating():
    pred = torch.randn(4, 3)
    softmax, sigmoid = CrossEntropyLoss(), CrossEntropyLoss(use_sigmoid=True)
    with pytest.raises(ValueError, match=r'target has class ids outside \[0, 2\]'):
        softmax(pred, torch.tensor([0, 3, 1, 1]))  # 3 == C is out of range in softmax
    with pytest.raises(ValueError, match=r'target has class ids outside \[0, 3\]'):
        sigmoid(pred, torch.tensor([0, 4, 1, 1]))  # C is background, C + 1 is not
    with pytest.raises(ValueError, match='target has class ids'):
        sigmoid(pred, torch.tensor([0, -1, 1, 1]))  # negative and not ignore_index
    sigmoid(pred, torch.tensor([0, 3, -100, 1]))  # background and ignored: fine
    with pytest.raises(ValueError, match=r'target has targets outside \[0.0, 1.0\]'):
        sigmoid(pred, torch.full((4, 3), 1.5))
    with pytest.raises(ValueError, match='target contains NaN'):
        sigmoid(pred, torch.full((4, 3), float('nan')))
    bad = pred.clone()
    bad[0, 0] = float('inf')
    with pytest.raises(ValueError, match='pred contains infinite'):
        softmax(bad, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match='weight has class ids'):  # mask mode's labels
        CrossEntropyLoss(use_mask=True)(torch.randn(2, 3, 4), torch.rand(2, 4),
                                        torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='target has probabilities'):
        softmax(pred, torch.full((4, 3), -0.5))
    # validation off: the same inputs pass through (ids > C are background)
    quiet = CrossEntropyLoss(use_sigmoid=True, validate=False)
    assert torch.isfinite(quiet(pred, torch.tensor([0, 9, -5, 1])))
    with yolo_losses.validation(False):
        assert not torch.isfinite(CrossEntropyLoss()(bad, torch.tensor([0, 1, 2, 1])))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu_without_sync():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(32, 6)), dtype=torch.float32)
    ids = torch.tensor(rng.integers(0, 7, size=32))
    ids[[3, 5]] = 255
    weight = torch.tensor(rng.uniform(size=32), dtype=torch.float32)
    soft = torch.tensor(rng.uniform(size=(32, 6)), dtype=torch.float32)
    losses = [
        (CrossEntropyLoss(class_weight=[1.0] * 6, ignore_index=255, avg_non_ignore=True,
                          validate=False), ids.clamp(max=5).masked_fill(ids == 255, 255)),
        (CrossEntropyLoss(use_sigmoid=True, pos_weight=[1.5] * 6, label_smoothing=0.1,
                          ignore_index=255, avg_non_ignore=True, validate=False), ids),
        (CrossEntropyLoss(use_sigmoid=True, validate=False), soft),
    ]
    for loss, target in losses:
        expected = loss(logits, target, weight if target.dim() == 1 else None)
        loss.cuda()
        torch.cuda.set_sync_debug_mode('error')
        try:
            got = loss(logits.cuda(), target.cuda(),
                       weight.cuda() if target.dim() == 1 else None)
        finally:
            torch.cuda.set_sync_debug_mode('default')
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)

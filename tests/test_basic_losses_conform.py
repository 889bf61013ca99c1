"""Every built-in basic loss passes the conformance kit (mmdet conventions).

The kit checks the conventions against the loss's own ``reduction='none'``
output; the numbers of each loss against mmdet are in its own test file.
"""
import pytest
import torch

from yolo_losses.testing import CHECKS, check_loss_conventions

N, C, REG_MAX = 8, 5, 16


def regression_inputs(device, dtype):
    pred = torch.randn(N, 4, device=device, dtype=dtype)
    target = torch.randn(N, 4, device=device, dtype=dtype)
    return pred, target


def xyxy_boxes(device, dtype):
    """Positive-size xyxy boxes in a 20-pixel square, and a jittered copy as
    the prediction (some overlap, some not)."""
    corner = torch.rand(N, 2, device=device, dtype=dtype) * 16
    size = torch.rand(N, 2, device=device, dtype=dtype) * 6 + 2
    target = torch.cat([corner, corner + size], dim=1)
    jitter = torch.randn(N, 2, device=device, dtype=dtype) * 2
    grow = torch.rand(N, 2, device=device, dtype=dtype) * 1.5 + 0.5
    pred_corner = corner + jitter
    pred = torch.cat([pred_corner, pred_corner + size * grow], dim=1)
    return pred, target


def label_inputs(num_labels):
    """Logits [N, C] and class indices in [0, num_labels)."""

    def make(device, dtype):
        pred = torch.randn(N, C, device=device, dtype=dtype) * 2
        label = torch.randint(0, num_labels, (N,), device=device)
        label[0] = num_labels - 1  # at least one background row for sigmoid
        return pred, label

    return make


def soft_inputs(positive_fraction):
    """Logits [N, C] and float targets in [0, 1], zero outside positives."""

    def make(device, dtype):
        pred = torch.randn(N, C, device=device, dtype=dtype) * 2
        score = torch.rand(N, C, device=device, dtype=dtype)
        positive = torch.rand(N, C, device=device) < positive_fraction
        return pred, torch.where(positive, score, torch.zeros_like(score))

    return make


def qfl_label_score(device, dtype):
    """QFL's (label [N], score [N]) target, label C meaning background."""
    pred = torch.randn(N, C, device=device, dtype=dtype) * 2
    label = torch.randint(0, C + 1, (N,), device=device)
    label[0] = C
    score = torch.rand(N, device=device, dtype=dtype)
    return pred, (label, score)


def dfl_inputs(device, dtype):
    """Distribution logits [N, REG_MAX + 1] and float distances in
    [0, REG_MAX) (the right bin must exist)."""
    pred = torch.randn(N, REG_MAX + 1, device=device, dtype=dtype)
    label = torch.rand(N, device=device, dtype=dtype) * (REG_MAX - 0.01)
    return pred, label


PER_SAMPLE = dict(weight_shape=(N,))
PER_BOX = dict(elementwise_shape=(N,), weight_shape=(N,))

CASES = [
    pytest.param('SmoothL1Loss', dict(beta=0.5), regression_inputs, {},
                 id='SmoothL1Loss'),
    pytest.param('L1Loss', {}, regression_inputs, {}, id='L1Loss'),
    pytest.param('MSELoss', {}, regression_inputs, {}, id='MSELoss'),
    pytest.param('CrossEntropyLoss', {}, label_inputs(C),
                 dict(elementwise_shape=(N,)), id='CrossEntropyLoss-softmax'),
    pytest.param('CrossEntropyLoss',
                 dict(class_weight=[1.0, 2.0, 0.5, 1.0, 3.0]), label_inputs(C),
                 dict(elementwise_shape=(N,)),
                 id='CrossEntropyLoss-softmax-class_weight'),
    pytest.param('CrossEntropyLoss', dict(use_sigmoid=True),
                 label_inputs(C + 1), PER_SAMPLE,
                 id='CrossEntropyLoss-sigmoid-labels'),
    pytest.param('CrossEntropyLoss', dict(use_sigmoid=True), soft_inputs(0.5),
                 {}, id='CrossEntropyLoss-sigmoid-soft'),
    pytest.param('FocalLoss', {}, label_inputs(C + 1), PER_SAMPLE,
                 id='FocalLoss-labels'),
    pytest.param('FocalLoss', dict(gamma=1.5, alpha=0.4), soft_inputs(0.3), {},
                 id='FocalLoss-soft'),
    pytest.param('VarifocalLoss', {}, soft_inputs(0.3), {}, id='VarifocalLoss'),
    pytest.param('QualityFocalLoss', {}, qfl_label_score, PER_BOX,
                 id='QualityFocalLoss-label-score'),
    pytest.param('QualityFocalLoss', {}, soft_inputs(0.3), PER_BOX,
                 id='QualityFocalLoss-tensor'),
    pytest.param('DistributionFocalLoss', {}, dfl_inputs, PER_BOX,
                 id='DistributionFocalLoss'),
    pytest.param('IoULoss', {}, xyxy_boxes, PER_BOX, id='IoULoss-log'),
    pytest.param('IoULoss', dict(mode='linear'), xyxy_boxes, PER_BOX,
                 id='IoULoss-linear'),
    pytest.param('IoULoss', dict(mode='square'), xyxy_boxes, PER_BOX,
                 id='IoULoss-square'),
    pytest.param('GIoULoss', {}, xyxy_boxes, PER_BOX, id='GIoULoss'),
    pytest.param('DIoULoss', {}, xyxy_boxes, PER_BOX, id='DIoULoss'),
    pytest.param('CIoULoss', {}, xyxy_boxes, PER_BOX, id='CIoULoss'),
    pytest.param('EIoULoss', {}, xyxy_boxes, PER_BOX, id='EIoULoss'),
    pytest.param('SIoULoss', {}, xyxy_boxes, PER_BOX, id='SIoULoss'),
]


@pytest.mark.parametrize('loss_type, options, make_inputs, shapes', CASES)
def test_basic_loss_passes_the_kit(loss_type, options, make_inputs, shapes):
    report = check_loss_conventions(dict(type=loss_type, **options),
                                    make_inputs, **shapes)
    # every convention ran on CPU (and on CUDA when present), none skipped
    ran = {entry.split('[')[0] for entry in report.passed}
    assert ran == set(CHECKS) and not report.skipped, report
    assert 'autocast[cpu/bfloat16]' in report.passed


def test_every_required_basic_loss_is_covered():
    required = {'SmoothL1Loss', 'L1Loss', 'MSELoss', 'CrossEntropyLoss',
                'FocalLoss', 'VarifocalLoss', 'QualityFocalLoss',
                'DistributionFocalLoss', 'IoULoss', 'GIoULoss', 'DIoULoss',
                'CIoULoss', 'EIoULoss', 'SIoULoss'}
    assert {case.values[0] for case in CASES} == required

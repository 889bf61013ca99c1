"""The conformance kit passes a correct loss and names what a broken one breaks."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolo_losses.losses.base import BaseLoss
from yolo_losses.losses.utils import weight_reduce_loss, weighted_loss
from yolo_losses.testing import (CHECKS, ConformanceReport, ConventionError,
                                 check_loss_conventions)

REPO = Path(__file__).resolve().parents[1]
CPU = ['cpu']  # CUDA runs are covered by the kit's default devices on a GPU


@weighted_loss
def squared_error(pred, target):
    return (pred - target) ** 2


class ToySquaredLoss(BaseLoss):
    """Correct: squared error through the shared reduction code."""

    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        reduction = self.resolve_reduction(reduction_override)
        return self.loss_weight * squared_error(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor)


class IgnoresLossWeight(ToySquaredLoss):
    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        reduction = self.resolve_reduction(reduction_override)
        return squared_error(pred, target, weight, reduction=reduction,
                             avg_factor=avg_factor)


class IgnoresWeight(ToySquaredLoss):
    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        return super().forward(pred, target, None, avg_factor,
                               reduction_override)


class MeanOverCountMinusOne(ToySquaredLoss):
    """'mean' divides by n - 1 (a sample variance habit): sum != mean x n."""

    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        reduction = self.resolve_reduction(reduction_override)
        if reduction == 'mean' and avg_factor is None:
            loss = squared_error(pred, target, weight, reduction='none')
            return self.loss_weight * loss.sum() / (loss.numel() - 1)
        return super().forward(pred, target, weight, avg_factor,
                               reduction_override)


class IgnoresReductionOverride(ToySquaredLoss):
    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        return super().forward(pred, target, weight, avg_factor, None)


class IgnoresAvgFactor(ToySquaredLoss):
    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        return super().forward(pred, target, weight, None, reduction_override)


class NaNGradientUnderZeroWeight(ToySquaredLoss):
    """Multiplies by weight / weight behind a ``where``: the value is 0 where
    the weight is 0, but the gradient there is 0 * NaN."""

    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        reduction = self.resolve_reduction(reduction_override)
        loss = squared_error(pred, target, reduction='none')
        if weight is not None:
            loss = torch.where(weight > 0, loss * weight * (weight / weight),
                               torch.zeros_like(loss))
        return self.loss_weight * weight_reduce_loss(loss, None, reduction,
                                                     avg_factor)


class ModifiesTargetInPlace(ToySquaredLoss):
    def forward(self, pred, target, weight=None, avg_factor=None,
                reduction_override=None):
        target.clamp_(min=0.0)
        return super().forward(pred, target, weight, avg_factor,
                               reduction_override)


def make_inputs(device, dtype):
    pred = torch.randn(6, 3, device=device, dtype=dtype)
    target = torch.randn(6, 3, device=device, dtype=dtype)
    return pred, target


def test_correct_toy_loss_passes_every_check():
    report = check_loss_conventions(dict(type=ToySquaredLoss), make_inputs,
                                    devices=CPU)
    assert isinstance(report, ConformanceReport)
    assert report.loss == 'ToySquaredLoss' and report.devices == ['cpu']
    expected = [f'{check}[cpu/float32]' for check in CHECKS[:-2]] + [
        'float64[cpu/float64]', 'autocast[cpu/float16]',
        'autocast[cpu/bfloat16]']
    assert report.passed == expected
    assert report.skipped == {}
    assert report.as_dict()['passed'] == expected
    assert str(report) == 'ToySquaredLoss: 11 convention checks passed on cpu'


def test_sample_tensors_and_per_sample_weight():
    """Sample tensors instead of a maker; a per-sample weight [N] scales
    every element of row n (mmdet's alignment)."""

    class PerSampleWeight(ToySquaredLoss):
        def forward(self, pred, target, weight=None, **kwargs):
            if weight is not None and weight.dim() == 1:
                weight = weight[:, None]
            return super().forward(pred, target, weight, **kwargs)

    pred, target = make_inputs('cpu', torch.float32)
    report = check_loss_conventions(dict(type=PerSampleWeight), (pred, target),
                                    weight_shape=(6,), devices=CPU,
                                    skip=['autocast'])
    assert report.skipped == {'autocast': 'skipped by the caller'}
    assert 'weight[cpu/float32]' in report.passed
    # a loss that broadcasts a [N] weight over the last dimension instead is
    # caught (square inputs, so the wrong broadcast does not raise)
    square = (torch.randn(3, 3), torch.randn(3, 3))
    with pytest.raises(ConventionError) as info:
        check_loss_conventions(dict(type=ToySquaredLoss), square,
                               weight_shape=(3,), devices=CPU)
    assert info.value.check == 'weight'
    # a weight shape that cannot align is an error of the caller
    with pytest.raises(ValueError, match=r'weight_shape \(3,\) does not '
                       r'align with the element-wise shape \(6, 3\)'):
        check_loss_conventions(dict(type=ToySquaredLoss), (pred, target),
                               weight_shape=(3,), devices=CPU)


@pytest.mark.parametrize('broken, check, pattern', [
    (IgnoresLossWeight, 'loss_weight',
     r"loss_weight=2\.5 with reduction='none' against 2\.5 x the "
     r'loss_weight=1 result: got [-\d.e]+, expected [-\d.e]+ at flat index'),
    (IgnoresWeight, 'weight',
     r"weight of shape \(6, 3\) with reduction='none' against the "
     r'element-wise loss x weight: got [-\d.e]+, expected [-\d.e]+'),
    (MeanOverCountMinusOne, 'reduction',
     r"reduction='sum' against reduction='mean' x element count 18: "
     r'got [-\d.e]+, expected [-\d.e]+'),
    (IgnoresReductionOverride, 'reduction_override',
     r"built with reduction='none', called with reduction_override='mean', "
     r"against a loss built with reduction='mean': got shape \(6, 3\), "
     r'expected \(\)'),
    (IgnoresAvgFactor, 'avg_factor',
     r'avg_factor=3\.7 \(float\) with reduction=.mean. against weighted sum / '
     r'\(avg_factor \+ eps\): got [-\d.e]+, expected [-\d.e]+'),
    (NaNGradientUnderZeroWeight, 'zero_weight',
     r"all-zero weight, reduction='none': the gradient has 18 non-finite "
     r'entries of 18'),
    (ModifiesTargetInPlace, 'inputs_unchanged',
     r'the call modified target in place'),
])
def test_broken_losses_fail_with_a_clear_message(broken, check, pattern):
    with pytest.raises(ConventionError) as info:
        check_loss_conventions(dict(type=broken), make_inputs, devices=CPU)
    assert isinstance(info.value, AssertionError)
    assert info.value.check == check
    message = str(info.value)
    assert message.startswith(
        f"{broken.__name__} breaks the {check!r} convention on cpu/float32: ")
    assert re.search(pattern, message), message


def test_reported_numbers_are_the_disagreeing_values():
    """Loss ignoring loss_weight on hand-made inputs: the message quotes the
    unscaled element and 2.5 times it."""
    pred = torch.tensor([[3.0, 0.0]])
    target = torch.tensor([[1.0, 0.0]])
    # element-wise loss: (3 - 1)^2 = 4 and 0; with loss_weight 2.5 -> 10
    with pytest.raises(ConventionError, match=r'got 4, expected 10 at flat '
                       r'index 0 of shape \(1, 2\)'):
        check_loss_conventions(dict(type=IgnoresLossWeight), (pred, target),
                               devices=CPU, skip=['weight'])


def test_unknown_skip_name_and_bad_cfg():
    with pytest.raises(ValueError, match='autocasting'):
        check_loss_conventions(dict(type=ToySquaredLoss), make_inputs,
                               skip=['autocasting'])
    with pytest.raises(TypeError, match='type'):
        check_loss_conventions(dict(reduction='mean'), make_inputs)


def test_registered_name_is_built_from_the_registry():
    report = check_loss_conventions(dict(type='L1Loss'), make_inputs,
                                    devices=CPU, skip=['autocast', 'float64'])
    assert report.loss == 'L1Loss'
    assert 'reduction[cpu/float32]' in report.passed


def test_custom_loss_example_runs():
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, str(REPO / 'examples' / 'custom_loss.py')],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r'OK: LogCoshLoss: \d+ convention checks passed on '
                        r'cpu(, cuda)?', result.stdout.strip()), result.stdout

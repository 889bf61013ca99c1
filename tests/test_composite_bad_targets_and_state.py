"""Bad targets are rejected, and a call that raises leaves no trace.

- Normalised target centres and sizes outside [0, 1] (pixel coordinates
  passed where normalised ones are expected, a broken label file) raise a
  ``ValueError`` naming ``targets`` with validation on, in every composite
  loss (one shared check, ``yolo_losses.ops.targets.check_targets``).
- Stateful losses (DESIGN "Layering and state") change their buffers only
  after every check has passed: after a call that raises, ``state_dict()``
  is exactly what it was. ``STATEFUL`` below lists them; a new stateful
  loss is one more line there.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import yolo_losses
from yolo_losses import build_loss
from yolo_losses.ops.targets import NORMALISED_TOLERANCE

from composite_cases import random_preds, random_targets

NUM_CLASSES = 3
IMG = 64          # grids 8, 4, 2
COMPOSITES = ['YOLOv3Loss', 'YOLOv5Loss', 'YOLOv8Loss']


def composite_inputs(loss_type: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    preds = random_preds(loss_type, rng, 2, IMG, NUM_CLASSES)
    targets = random_targets(rng, (2, 3), NUM_CLASSES, (0.1, 0.5))
    return preds, targets


def with_box(targets: torch.Tensor, column: int, value: float) -> torch.Tensor:
    bad = targets.clone()
    bad[0, column] = value
    return bad


# --- normalised targets ---------------------------------------------------------

@pytest.mark.parametrize('loss_type', COMPOSITES)
@pytest.mark.parametrize('column, value', [(2, 1.7), (3, 320.0), (2, -0.4),
                                           (4, 1.5), (5, 200.0)])
def test_unnormalised_targets_raise_naming_targets(loss_type, column, value):
    loss = build_loss(dict(type=loss_type, num_classes=NUM_CLASSES))
    preds, targets = composite_inputs(loss_type)
    bad = with_box(targets, column, value)
    with pytest.raises(ValueError, match=r'targets.*normalised to the input size'):
        loss(preds, bad)
    with pytest.raises(ValueError, match=r'targets.*normalised to the input size'):
        loss(preds, bad, max_boxes=5)
    # validation off: no value check, no error (the data pipeline's job then)
    with yolo_losses.validation(False):
        out = loss(preds, bad, max_boxes=5)
    assert set(out) and all(torch.isfinite(v) for v in out.values())


@pytest.mark.parametrize('loss_type', COMPOSITES)
def test_boxes_touching_the_border_and_round_off_pass(loss_type):
    loss = build_loss(dict(type=loss_type, num_classes=NUM_CLASSES))
    preds, _ = composite_inputs(loss_type)
    tol = NORMALISED_TOLERANCE
    targets = torch.tensor([
        [0, 0, 1.0, 1.0, 1.0, 1.0],              # whole image, centre on the corner
        [0, 1, 0.0, 0.0, 0.2, 0.2],              # centre on the other corner
        [1, 2, 1.0 + 0.5 * tol, 0.5, 0.3, 1.0 + 0.5 * tol],   # round-off past 1
        [1, 0, -0.5 * tol, 0.5, 0.3, 0.3],       # round-off below 0
    ])
    out = loss(preds, targets)
    assert all(torch.isfinite(v) for v in out.values())
    with pytest.raises(ValueError, match='targets'):
        loss(preds, with_box(targets, 2, 1.0 + 2 * tol))


# --- state after a call that raises ---------------------------------------------

def anchor_or_point_case(loss_type: str):
    """A good call and a list of bad ones for a composite loss."""
    preds, targets = composite_inputs(loss_type, seed=1)
    nan_preds = [p.detach().clone() for p in preds]
    nan_preds[1][0, 0, 0, 0] = float('nan')
    # level 0 three rows short: an input of 40 rows, which the other levels'
    # grids (4, 2 rows at strides 16, 32) do not fit
    small_img = [preds[0][..., :-3, :]] + list(preds[1:])
    bad_calls = [
        ((nan_preds, targets), {}),                                   # NaN prediction
        ((preds, with_box(targets, 2, 1.7)), {}),                     # pixel centre
        ((preds, with_box(targets, 1, NUM_CLASSES)), {}),             # class id
        ((preds, with_box(targets, 0, 2)), {}),                       # batch index
        ((preds, with_box(targets, 4, -0.1)), {}),                    # negative size
        ((preds, targets), dict(max_boxes=1)),                        # max_boxes too small
        ((preds, targets), dict(img_size=(96, 64))),                  # wrong img_size
        ((preds[:2], targets), {}),                                   # a level missing
        ((small_img, targets), {}),                                   # grids disagree
        ((preds, targets[:, :5]), {}),                                # targets shape
    ]
    return (preds, targets), {}, bad_calls


def box_case():
    """A good call and bad ones for a basic box loss (xyxy ``[N, 4]``)."""
    xy = torch.rand(8, 2) * 50
    pred = torch.cat((xy, xy + 5 + torch.rand(8, 2) * 20), dim=-1).requires_grad_()
    target = torch.cat((xy + 2, xy + 8 + torch.rand(8, 2) * 20), dim=-1)
    nan_pred = pred.detach().clone()
    nan_pred[3, 1] = float('nan')
    bad_calls = [((nan_pred, target), {}),                          # NaN box
                 ((pred[:, :3], target[:, :3]), {}),                # not [N, 4]
                 ((pred, target[:5]), {}),                          # N differs
                 ((pred, target), dict(weight=torch.ones(3)))]      # weight shape
    return (pred, target), {}, bad_calls


#: name -> (config, case builder). A new stateful loss: one more line, e.g.
#: 'WIoULoss': (dict(type='WIoULoss'), box_case); an E2ELoss line needs a
#: case builder for its dict(one2many=..., one2one=...) preds.
STATEFUL = {
    'YOLOv5Loss-autobalance': (
        dict(type='YOLOv5Loss', num_classes=NUM_CLASSES, autobalance=True),
        lambda: anchor_or_point_case('YOLOv5Loss')),
    'WIoULoss': (dict(type='WIoULoss'), box_case),
}


def snapshot(module: torch.nn.Module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), name


@pytest.mark.parametrize('name', sorted(STATEFUL))
def test_a_call_that_raises_changes_no_state(name):
    cfg, case = STATEFUL[name]
    loss = build_loss(cfg).train()
    good_args, good_kwargs, bad_calls = case()
    loss(*good_args, **good_kwargs)             # state away from its initial value
    before = snapshot(loss)
    loss(*good_args, **good_kwargs)
    assert any(not torch.equal(before[k], v) for k, v in snapshot(loss).items()), \
        'a good call in training mode should change the state (else this test is void)'
    before = snapshot(loss)
    for args, kwargs in bad_calls:
        with pytest.raises((ValueError, TypeError, KeyError)):
            loss(*args, **kwargs)
        assert_same_state(before, snapshot(loss))


@pytest.mark.parametrize('name', sorted(STATEFUL))
def test_a_part_that_raises_mid_call_changes_no_state(name):
    """Even an error from inside the computation (a part raising after
    some levels ran) leaves the state alone: state changes come last."""
    cfg, case = STATEFUL[name]
    loss = build_loss(cfg).train()
    good_args, good_kwargs, _ = case()
    loss(*good_args, **good_kwargs)
    before = snapshot(loss)
    parts = [m for m in loss.children() if isinstance(m, torch.nn.Module)
             and hasattr(m, 'loss_weight')]
    if not parts:
        pytest.skip('a basic loss: no parts to fail mid-call')
    calls = {'n': 0}

    def fail_on_second_call(module, args):
        calls['n'] += 1
        if calls['n'] == 2:
            raise RuntimeError('part failed')

    handles = [part.register_forward_pre_hook(fail_on_second_call) for part in parts]
    try:
        with pytest.raises(RuntimeError, match='part failed'):
            loss(*good_args, **good_kwargs)
    finally:
        for handle in handles:
            handle.remove()
    assert_same_state(before, snapshot(loss))

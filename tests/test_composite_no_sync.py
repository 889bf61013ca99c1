"""The composite YOLO losses never synchronise with the device on the fast path.

"Fast path" is ``validate=False`` with ``max_boxes`` given (the contract's
"Performance principles"). On this CPU-only machine a host sync cannot be
observed directly, so forward + backward run inside :class:`NoHostSync`,
which makes every way Python code can pull a value off the device raise:

- the tensor methods and conversions that read values (``item``,
  ``tolist``, ``bool()``, ``int()``, ``float()``, ``operator.index()``,
  ``nonzero``, ``cpu``, ``numpy``, ``__array__``) and ``torch.nonzero``;
- ``torch.tensor`` / ``torch.as_tensor`` / ``Tensor.new_tensor`` from
  Python data onto the device of the call: on CUDA that is a blocking
  host-to-device copy (``cudaStreamSynchronize``), not allowed in a CUDA
  graph either;

and records, below Python, every ATen operator whose output size or result
depends on tensor values (``nonzero``, boolean-mask indexing in forward and
backward, ``masked_select``, ``unique``, ``repeat_interleave`` with tensor
repeats, ``bincount``, ``_local_scalar_dense`` ...), which is how PyTorch's
own C++ code would sync on CUDA. ``tests/test_composite_cuda.py`` checks the
same thing on a GPU with ``torch.cuda.set_sync_debug_mode('error')``.

Patching ``Tensor.__index__`` only affects tensors: Python ints have their
own ``__index__``, so shapes and sizes computed from ``tensor.shape`` stay
legal, while ``range(tensor)`` or ``list[tensor]`` (a sync) is caught.

Where the inputs make the expected values simple (no targets, or an image
without targets), the losses and gradients are also checked against the
formulas written out here.
"""
from __future__ import annotations

import contextlib
import math
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import yolo_losses
from composite_cases import CASES, random_preds, random_targets
from yolo_losses import build_loss

NUM_CLASSES = 3
BATCH = 2
IMG = 64                       # 64 x 64 input: grids 8, 4, 2
NUM_ANCHORS = 3
REG_MAX = 16
MAX_BOXES = 4

KEYS = {
    'YOLOv3Loss': {'loss_xy', 'loss_wh', 'loss_obj', 'loss_cls'},
    'YOLOv5Loss': {'loss_box', 'loss_obj', 'loss_cls'},
    'YOLOv8Loss': {'loss_box', 'loss_cls', 'loss_dfl'},
}
# Components that are 0 when no image has a target (contract: zero box
# terms; the YOLOv3/v5 class terms only see positives).
ZERO_WITHOUT_TARGETS = {
    'YOLOv3Loss': ('loss_xy', 'loss_wh', 'loss_cls'),
    'YOLOv5Loss': ('loss_box', 'loss_cls'),
    'YOLOv8Loss': ('loss_box', 'loss_dfl'),
}


# ----------------------------------------------------------------------------
# The guard
# ----------------------------------------------------------------------------

class HostSyncError(AssertionError):
    """A value was read from the device (or would be, on CUDA)."""


_aten = torch.ops.aten
# Operators whose output size or Python result needs the tensor values.
_VALUE_DEPENDENT_OPS = {
    _aten._local_scalar_dense, _aten.nonzero, _aten.argwhere,
    _aten.masked_select, _aten._unique, _aten._unique2, _aten.unique_dim,
    _aten.unique_consecutive, _aten.bincount, _aten.is_nonzero, _aten.equal,
}
# Operators that sync only for some arguments, see _needs_values().
_INDEX_OPS = {_aten.index, _aten.index_put, _aten.index_put_, _aten._index_put_impl_}


def _has_mask_index(indices) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
               for i in indices if i is not None)


def _needs_values(func, args, kwargs) -> bool:
    packet = func.overloadpacket
    if packet in _VALUE_DEPENDENT_OPS:
        return True
    if packet in _INDEX_OPS:         # x[mask] and its backward, x[mask] = v
        indices = args[1] if len(args) > 1 else kwargs.get('indices', ())
        return _has_mask_index(indices)
    if packet is _aten.repeat_interleave:   # tensor repeats without output_size
        repeats = args[1] if len(args) > 1 else kwargs.get('repeats')
        if not args or not isinstance(args[0], torch.Tensor):
            return False
        tensor_repeats = isinstance(repeats, torch.Tensor) or (
            len(args) == 1 and args[0].dtype in (torch.int32, torch.int64))
        return tensor_repeats and kwargs.get('output_size') is None
    return False


class _ValueDependentOps(TorchDispatchMode):
    """Records ATen calls that would read values on the device."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _needs_values(func, args, kwargs):
            self.seen.append(str(func))
        return func(*args, **kwargs)


_TENSOR_METHODS = ('item', 'tolist', '__bool__', '__int__', '__float__',
                   '__index__', 'nonzero', 'cpu', 'numpy', '__array__')


class NoHostSync(contextlib.AbstractContextManager):
    """Inside: a Python-level value read raises :class:`HostSyncError`;
    value-dependent ATen ops are recorded and raise on exit.

    ``device`` is the device of the computation: creating a tensor there
    from Python data counts as a sync (a blocking copy on CUDA).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self._saved: list = []
        self._ops = _ValueDependentOps()

    @staticmethod
    def _raiser(name: str):
        def refuse(*args, **kwargs):
            raise HostSyncError(f'{name} reads tensor values on the host (host sync)')
        return refuse

    def _creation_guard(self, name: str, original, device_of_self: bool = False):
        guard_device = self.device

        def create(*args, **kwargs):
            data = args[1] if device_of_self else (args[0] if args else kwargs.get('data'))
            if device_of_self:
                target = kwargs.get('device') or args[0].device
            else:
                target = kwargs.get('device')
            if target is not None and not isinstance(data, torch.Tensor) \
                    and torch.device(target).type == guard_device.type:
                raise HostSyncError(
                    f'{name}(<Python data>, device={target}) inside the loss: a '
                    'blocking host-to-device copy on CUDA; keep constants in '
                    'buffers or build them with torch.full/arange on the device')
            return original(*args, **kwargs)
        return create

    def _patch(self, owner, name: str, value) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    def __enter__(self) -> 'NoHostSync':
        for name in _TENSOR_METHODS:
            self._patch(torch.Tensor, name, self._raiser(f'Tensor.{name}'))
        self._patch(torch, 'nonzero', self._raiser('torch.nonzero'))
        self._patch(torch, 'tensor', self._creation_guard('torch.tensor', torch.tensor))
        self._patch(torch, 'as_tensor',
                    self._creation_guard('torch.as_tensor', torch.as_tensor))
        self._patch(torch.Tensor, 'new_tensor',
                    self._creation_guard('Tensor.new_tensor', torch.Tensor.new_tensor,
                                         device_of_self=True))
        self._ops.__enter__()
        return self

    def __exit__(self, *exc_info) -> Optional[bool]:
        self._ops.__exit__(*exc_info)
        for owner, name, original in reversed(self._saved):
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved.clear()
        if exc_info[0] is None and self._ops.seen:
            raise HostSyncError(
                'value-dependent ATen ops (a host sync on CUDA): '
                + ', '.join(sorted(set(self._ops.seen))))
        return None


_MISSING = object()


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------

def make_preds(loss_type: str, rng: np.random.Generator, batch: int = BATCH,
               scale: float = 1.0) -> List[torch.Tensor]:
    """Raw head outputs, one leaf per level, in the contract's layout."""
    return random_preds(loss_type, rng, batch, IMG, NUM_CLASSES, scale)


def make_targets(rng: np.random.Generator, boxes_per_image: List[int]) -> torch.Tensor:
    """``[N, 6]`` (batch_index, class_id, cx, cy, w, h), normalised, shuffled."""
    return random_targets(rng, boxes_per_image, NUM_CLASSES, sizes=(0.05, 0.7))


TARGET_KINDS = {
    'boxes': [3, 4],
    'no_targets': [0, 0],
    'one_image_empty': [4, 0],
}


def build(case: str, **overrides):
    loss_type, extra = CASES[case]
    cfg = dict(type=loss_type, num_classes=NUM_CLASSES, **extra)
    cfg.update(overrides)
    return build_loss(cfg)


def total(losses: Dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(losses.values())


def obj_logits(pred: torch.Tensor) -> torch.Tensor:
    """``[B, A, H, W]`` objectness channels of an anchor-based level."""
    batch, _, height, width = pred.shape
    return pred.view(batch, NUM_ANCHORS, 5 + NUM_CLASSES, height, width)[:, :, 4]


def non_obj_channels(grad: torch.Tensor) -> torch.Tensor:
    """Every channel of an anchor-based level except objectness."""
    batch, _, height, width = grad.shape
    per_anchor = grad.view(batch, NUM_ANCHORS, 5 + NUM_CLASSES, height, width)
    return torch.cat((per_anchor[:, :, :4], per_anchor[:, :, 5:]), dim=2)


# ----------------------------------------------------------------------------
# The guard itself works
# ----------------------------------------------------------------------------

@pytest.mark.parametrize('read', [
    lambda x: x.sum().item(),
    lambda x: bool(x.sum() > 0),
    lambda x: int(x.sum()),
    lambda x: float(x.sum()),
    lambda x: [0, 1, 2][x.long().sum()],
    lambda x: x.tolist(),
    lambda x: torch.nonzero(x > 0),
    lambda x: x.nonzero(),
    lambda x: x.cpu(),
    lambda x: x.detach().numpy(),
    lambda x: torch.tensor([1.0, 2.0], device=x.device),
])
def test_guard_refuses_python_value_reads(read):
    x = torch.tensor([0.5, -1.0, 2.0])
    with pytest.raises(HostSyncError):
        with NoHostSync(x.device):
            read(x)


@pytest.mark.parametrize('op', [
    lambda x: x[x > 0].sum(),                       # data-sized (forward + backward)
    lambda x: torch.where(x > 0),                   # one-argument where = nonzero
    lambda x: torch.masked_select(x, x > 0).sum(),
    lambda x: torch.unique(x),
    lambda x: torch.repeat_interleave(x, (x > 0).long()),
])
def test_guard_records_value_dependent_aten_ops(op):
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    with pytest.raises(HostSyncError, match='value-dependent'):
        with NoHostSync(x.device):
            out = op(x)
            if isinstance(out, torch.Tensor) and out.requires_grad and out.dim() == 0:
                out.backward()


def test_guard_allows_sync_free_code():
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    with NoHostSync(x.device):
        mask = x > 0
        y = torch.where(mask, x, torch.zeros_like(x)).sum() + x.shape[0]
        y = y + x[torch.arange(2)].sum() + torch.full((2,), 3.0).sum()
        y.backward()
    torch.testing.assert_close(x.grad, torch.tensor([2.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------
# The losses
# ----------------------------------------------------------------------------

@pytest.mark.parametrize('targets_kind', list(TARGET_KINDS))
@pytest.mark.parametrize('case', list(CASES))
def test_fast_path_has_no_host_sync(case, targets_kind):
    rng = np.random.default_rng([list(CASES).index(case), list(TARGET_KINDS).index(targets_kind)])
    loss_type = CASES[case][0]
    loss = build(case, validate=False)
    preds = make_preds(loss_type, rng)
    targets = make_targets(rng, TARGET_KINDS[targets_kind])

    with NoHostSync(preds[0].device):
        losses = loss(preds, targets, img_size=(IMG, IMG), max_boxes=MAX_BOXES)
        total(losses).backward()

    assert set(losses) == KEYS[loss_type]
    for name, value in losses.items():
        assert value.dim() == 0, name
        assert torch.isfinite(value), name
    for level, pred in enumerate(preds):
        assert pred.grad is not None and torch.isfinite(pred.grad).all(), level
    if targets_kind == 'no_targets':
        _check_without_targets(case, preds, losses)
    if targets_kind == 'one_image_empty':
        _check_empty_image(case, preds, image=1)


FOCAL = dict(type='FocalLoss', use_sigmoid=True, gamma=1.5, alpha=0.25, loss_weight=0.5)
SIOU = dict(type='SIoULoss', loss_weight=0.05)
VARIANTS = {
    'yolov5_focal_siou': dict(type='YOLOv5Loss', loss_cls=FOCAL, loss_bbox=SIOU),
    'yolov5_autobalance_smoothing': dict(type='YOLOv5Loss', autobalance=True,
                                         label_smoothing=0.1, cls_pw=2.0),
    'yolov8_varifocal_siou': dict(
        type='YOLOv8Loss', loss_bbox=dict(SIOU, loss_weight=7.5),
        loss_cls=dict(type='VarifocalLoss', use_sigmoid=True, loss_weight=0.5)),
    'yolov8_classic_assigner': dict(
        type='YOLOv8Loss', assigner=dict(type='TaskAlignedAssigner',
                                         enlarge_small_gt=False)),
    'yolov3_keras_focal': dict(type='YOLOv3Loss', loss_cls=FOCAL),
    'yolov3_pytorch_box_scale': dict(type='YOLOv3Loss', style='pytorch_yolov3',
                                     box_scale=True),
    'yolov5_class_weights': dict(type='YOLOv5Loss', class_weights=[0.5, 2.0, 1.0]),
    'yolov3_darknet_class_weights': dict(type='YOLOv3Loss', style='darknet',
                                         class_weights=[0.5, 2.0, 1.0]),
}


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_configured_variants_have_no_host_sync(variant):
    """Swapped parts and options stay on the fast path (training mode, so
    yolov5's autobalance update runs too)."""
    cfg = dict(VARIANTS[variant], num_classes=NUM_CLASSES, validate=False)
    loss = build_loss(cfg).train()
    rng = np.random.default_rng(list(VARIANTS).index(variant))
    preds = make_preds(cfg['type'], rng)
    targets = make_targets(rng, [3, 0])
    with NoHostSync(preds[0].device):
        losses = loss(preds, targets, max_boxes=MAX_BOXES)
        total(losses).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in preds)
    if cfg.get('autobalance'):       # the in-place update did run, sync-free
        assert not torch.equal(loss.balance, torch.tensor([4.0, 1.0, 0.4]))


def test_global_switch_off_is_the_fast_path_too():
    rng = np.random.default_rng(7)
    for case, (loss_type, _) in CASES.items():
        loss = build(case)                              # validate=None
        preds = make_preds(loss_type, rng)
        targets = make_targets(rng, [2, 3])
        with yolo_losses.validation(False), NoHostSync(preds[0].device):
            total(loss(preds, targets, max_boxes=MAX_BOXES)).backward()


@pytest.mark.parametrize('case', list(CASES))
def test_max_boxes_zero_without_targets(case):
    rng = np.random.default_rng(11)
    loss_type = CASES[case][0]
    loss = build(case, validate=False)
    preds = make_preds(loss_type, rng)
    with NoHostSync(preds[0].device):
        losses = loss(preds, torch.zeros(0, 6), max_boxes=0)
        total(losses).backward()
    _check_without_targets(case, preds, losses)


def _softplus_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of BCE-with-logits against target 0: log(1 + exp(x))."""
    return F.softplus(x.detach().double()).sum()


def _check_without_targets(case: str, preds, losses) -> None:
    """No targets anywhere: only the 'negative' terms remain, by formula."""
    loss_type, extra = CASES[case]
    for name in ZERO_WITHOUT_TARGETS[loss_type]:
        assert float(losses[name].detach()) == 0.0, name
    if loss_type == 'YOLOv8Loss':
        # sum of BCE(cls logits, 0) / max(sum of target scores, 1), gain 0.5
        cls = [p[:, 4 * REG_MAX:] for p in preds]
        expected = 0.5 * sum(_softplus_sum(c) for c in cls)
        torch.testing.assert_close(losses['loss_cls'].double(), expected,
                                   rtol=2e-6, atol=0)
        for pred, logits in zip(preds, cls):
            grad = pred.grad
            torch.testing.assert_close(grad[:, 4 * REG_MAX:],
                                       0.5 * torch.sigmoid(logits.detach()),
                                       rtol=2e-6, atol=1e-9)
            assert float(grad[:, :4 * REG_MAX].abs().max()) == 0.0
        return

    objs = [obj_logits(p) for p in preds]
    if loss_type == 'YOLOv5Loss':
        # balance * mean BCE(obj, 0) per level, obj gain 1.0
        balance = (4.0, 1.0, 0.4)
        scales = [b / o.numel() for b, o in zip(balance, objs)]
    elif extra['style'] == 'keras':
        scales = [1.0 / BATCH] * len(objs)          # sums / batch size
    elif extra['style'] == 'darknet':
        scales = [1.0] * len(objs)                  # plain sums (negated deltas)
    else:
        scales = [100.0 / o.numel() for o in objs]  # noobj_scale * mean
    expected = sum(s * _softplus_sum(o) for s, o in zip(scales, objs))
    torch.testing.assert_close(losses['loss_obj'].double(), expected, rtol=2e-6, atol=0)
    for pred, obj, scale in zip(preds, objs, scales):
        grad = pred.grad
        torch.testing.assert_close(obj_logits(grad), scale * torch.sigmoid(obj.detach()),
                                   rtol=2e-6, atol=1e-9)
        assert float(non_obj_channels(grad).abs().max()) == 0.0


def _check_empty_image(case: str, preds, image: int) -> None:
    """An image without targets gets negative terms only: no box or class
    gradient, and an objectness (YOLOv8: class) gradient proportional to
    sigmoid(logit) with one factor per level."""
    loss_type, extra = CASES[case]
    for pred in preds:
        grad = pred.grad[image]
        if loss_type == 'YOLOv8Loss':
            assert float(grad[:4 * REG_MAX].abs().max()) == 0.0
            logit_grad, logits = grad[4 * REG_MAX:], pred[image, 4 * REG_MAX:]
        else:
            assert float(non_obj_channels(grad[None]).abs().max()) == 0.0
            logit_grad, logits = obj_logits(grad[None]), obj_logits(pred[image:image + 1])
        ratio = logit_grad.double() / torch.sigmoid(logits.detach().double())
        torch.testing.assert_close(ratio, ratio.flatten()[0].expand_as(ratio),
                                   rtol=2e-6, atol=0)
        if loss_type == 'YOLOv5Loss':
            # mean over the whole level: balance / cells of the level
            balance = {8: 4.0, 16: 1.0, 32: 0.4}[IMG // pred.shape[-1]]
            assert math.isclose(float(ratio.flatten()[0]),
                                balance / obj_logits(pred).numel(), rel_tol=2e-6)
        elif loss_type == 'YOLOv3Loss' and extra['style'] == 'keras':
            assert math.isclose(float(ratio.flatten()[0]), 1.0 / BATCH, rel_tol=2e-6)
        elif loss_type == 'YOLOv3Loss' and extra['style'] == 'darknet':
            assert math.isclose(float(ratio.flatten()[0]), 1.0, rel_tol=2e-6)


# ----------------------------------------------------------------------------
# The switch matters
# ----------------------------------------------------------------------------

def _with_nan(case: str, preds: List[torch.Tensor]) -> List[torch.Tensor]:
    """NaN in a whole channel that every style reads at every cell, so no
    ignore rule can mask it out: objectness of anchor 0 (YOLOv3/v5) or the
    first class logit (YOLOv8), level 1, image 0."""
    poisoned = [p.detach().clone() for p in preds]
    channel = 4 * REG_MAX if CASES[case][0] == 'YOLOv8Loss' else 4
    poisoned[1][0, channel] = float('nan')
    return [p.requires_grad_() for p in poisoned]


@pytest.mark.parametrize('case', list(CASES))
def test_validation_on_rejects_nan_before_computing(case):
    rng = np.random.default_rng(21)
    loss = build(case, validate=True)
    preds = _with_nan(case, make_preds(CASES[case][0], rng))
    targets = make_targets(rng, [2, 1])
    with pytest.raises(ValueError, match=r'preds\[1\]'):
        loss(preds, targets, max_boxes=MAX_BOXES)
    bad_targets = targets.clone()
    bad_targets[0, 4] = float('nan')
    with pytest.raises(ValueError, match='targets'):
        loss(make_preds(CASES[case][0], rng), bad_targets, max_boxes=MAX_BOXES)


@pytest.mark.parametrize('case', list(CASES))
def test_validation_off_lets_nan_through_without_sync(case):
    rng = np.random.default_rng(21)
    loss = build(case, validate=False)
    preds = _with_nan(case, make_preds(CASES[case][0], rng))
    targets = make_targets(rng, [2, 1])
    with NoHostSync(preds[0].device):
        losses = loss(preds, targets, max_boxes=MAX_BOXES)
    assert not all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize('case', list(CASES))
def test_validation_on_is_seen_by_the_guard(case):
    """The value checks are the syncs the guard would report: with
    validation on it fires, so its silence above means something."""
    rng = np.random.default_rng(22)
    loss = build(case, validate=True)
    preds = make_preds(CASES[case][0], rng)
    targets = make_targets(rng, [2, 1])
    with pytest.raises(HostSyncError):
        with NoHostSync(preds[0].device):
            loss(preds, targets, max_boxes=MAX_BOXES)


@pytest.mark.parametrize('case', list(CASES))
def test_max_boxes_none_costs_the_documented_sync(case):
    rng = np.random.default_rng(23)
    loss = build(case, validate=False)
    preds = make_preds(CASES[case][0], rng)
    targets = make_targets(rng, [2, 1])
    with pytest.raises(HostSyncError):
        with NoHostSync(preds[0].device):
            loss(preds, targets)
    # The computed bound gives the same result as the given one.
    expected = loss(preds, targets, max_boxes=MAX_BOXES)
    computed = loss(preds, targets)
    for name in expected:
        torch.testing.assert_close(computed[name], expected[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('case', list(CASES))
def test_channels_last_head_outputs_give_the_same_losses(case):
    """A model fed channels-last images (``YOLODataPreprocessor(
    channels_last=True)``) hands the loss channels-last levels: same
    values and gradients as the contiguous layout (an invariance; the
    values themselves are checked against the references elsewhere)."""
    rng = np.random.default_rng(24)
    loss = build(case, validate=False)
    preds = make_preds(CASES[case][0], rng)
    targets = make_targets(rng, [3, 1])
    nhwc = [p.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
            for p in preds]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in nhwc)
    expected = loss(preds, targets, max_boxes=MAX_BOXES)
    got = loss(nhwc, targets, max_boxes=MAX_BOXES)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-6, atol=1e-7)
    total(expected).backward()
    total(got).backward()
    for plain, last in zip(preds, nhwc):
        torch.testing.assert_close(last.grad, plain.grad, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------
# End-to-end losses and reg_max 1 (YOLO26, YOLOv10)
# ----------------------------------------------------------------------------

def _point_levels(rng: np.random.Generator, reg_max: int) -> List[torch.Tensor]:
    channels = 4 * reg_max + NUM_CLASSES
    return [torch.from_numpy(rng.normal(0.0, 1.0, (BATCH, channels, IMG // s, IMG // s))
                             .astype(np.float32)).requires_grad_() for s in (8, 16, 32)]


def _e2e_cfg(reg_max: int, schedule: str) -> dict:
    one2one = dict(type='YOLOv8Loss', num_classes=NUM_CLASSES, reg_max=reg_max,
                   assigner=dict(type='TaskAlignedAssigner', topk=7, topk2=1))
    return dict(type='E2ELoss', schedule=schedule, num_epochs=10,
                one2many=dict(type='YOLOv8Loss', num_classes=NUM_CLASSES, reg_max=reg_max),
                one2one=one2one)


E2E_VARIANTS = {
    'yolo26': (_e2e_cfg(1, 'progressive'), 1),
    'yolov10': (_e2e_cfg(16, 'constant'), 16),
}


@pytest.mark.parametrize('targets_kind', list(TARGET_KINDS))
@pytest.mark.parametrize('variant', list(E2E_VARIANTS))
def test_e2e_fast_path_has_no_host_sync(variant, targets_kind):
    cfg, reg_max = E2E_VARIANTS[variant]
    loss = build_loss(dict(cfg, validate=False))
    loss.set_epoch(4)                       # host-side, before the step
    loss.set_class_weights([0.5, 1.0, 2.0])
    rng = np.random.default_rng(list(E2E_VARIANTS).index(variant))
    preds = dict(one2many=_point_levels(rng, reg_max), one2one=_point_levels(rng, reg_max))
    targets = make_targets(rng, TARGET_KINDS[targets_kind])
    with NoHostSync(targets.device):
        losses = loss(preds, targets, img_size=(IMG, IMG), max_boxes=MAX_BOXES)
        total(losses).backward()
    distance = 'loss_l1' if reg_max == 1 else 'loss_dfl'
    assert set(losses) == {f'{k}_{b}' for k in ('loss_box', 'loss_cls', distance)
                           for b in ('o2m', 'o2o')}
    assert all(torch.isfinite(v) for v in losses.values())
    for branch in preds.values():
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in branch)


def test_reg_max_1_and_class_weights_have_no_host_sync():
    loss = build_loss(dict(type='YOLOv8Loss', num_classes=NUM_CLASSES, reg_max=1,
                           class_weights=[2.0, 0.5, 1.0], validate=False,
                           assigner=dict(type='TaskAlignedAssigner', topk=7, topk2=2)))
    rng = np.random.default_rng(31)
    preds = _point_levels(rng, 1)
    targets = make_targets(rng, [3, 4])
    with NoHostSync(targets.device):
        losses = loss(preds, targets, max_boxes=MAX_BOXES)
        total(losses).backward()
    assert set(losses) == {'loss_box', 'loss_cls', 'loss_l1'}
    assert all(torch.isfinite(p.grad).all() for p in preds)


def test_e2e_validation_on_is_seen_by_the_guard():
    cfg, reg_max = E2E_VARIANTS['yolo26']
    loss = build_loss(dict(cfg, validate=True))
    rng = np.random.default_rng(32)
    preds = dict(one2many=_point_levels(rng, reg_max), one2one=_point_levels(rng, reg_max))
    targets = make_targets(rng, [2, 1])
    with pytest.raises(HostSyncError):
        with NoHostSync(targets.device):
            loss(preds, targets, max_boxes=MAX_BOXES)

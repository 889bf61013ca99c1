"""End-to-end (NMS-free) detection loss: YOLO26's ``E2ELoss``, YOLOv10's pair.

An end-to-end head has two branches on the same points: a one-to-many branch
(several positives per box, as YOLOv8) that helps training, and a one-to-one
branch (one positive per box) whose top-k scores are the detections, with no
NMS. ``E2ELoss`` runs one composite loss per branch and weights them:

- ``schedule='progressive'`` (YOLO26's ProgLoss, ultralytics 8.4.190
  ``E2ELoss``): after ``k`` completed epochs of ``E``,
  ``w_o2m = max(1 - k / max(E - 1, 1), 0) * (start - end) + end`` and
  ``w_o2o = max(1 - w_o2m, 0)``, with ``(start, end) = o2m_weights``
  (0.8, 0.1): the one-to-many weight falls linearly from 0.8 to 0.1 over the
  epochs;
- ``schedule='constant'`` (YOLOv10 as published; ultralytics'
  ``E2EDetectLoss``): both weights 1.

Configs (the detectors' configs hold them; these are the defaults a user
copies)::

    # YOLO26: reg_max 1, one-to-one assigner topk 7 then topk2 1
    dict(type='E2ELoss',
         one2many=dict(type='YOLOv8Loss', num_classes=80, reg_max=1),
         one2one=dict(type='YOLOv8Loss', num_classes=80, reg_max=1,
                      assigner=dict(type='TaskAlignedAssigner', topk=7, topk2=1,
                                    alpha=0.5, beta=6.0)),
         schedule='progressive', num_epochs=300)
    # YOLOv10 as published: reg_max 16, one-to-one topk 1, both weights 1
    dict(type='E2ELoss',
         one2many=dict(type='YOLOv8Loss', num_classes=80),
         one2one=dict(type='YOLOv8Loss', num_classes=80,
                      assigner=dict(type='TaskAlignedAssigner', topk=1,
                                    alpha=0.5, beta=6.0)),
         schedule='constant')

(:data:`YOLO26_LOSS` and :data:`YOLOV10_LOSS` build these for any class
count.) The one-to-one head runs on detached neck features: a model matter,
not the loss's.

What is returned differs from ultralytics' logged items on purpose: the dict
holds every weighted term of both branches (``loss_box_o2m``, ...,
``loss_l1_o2o``); ultralytics logs only the one-to-one branch, unweighted.
Its total times the batch size equals ``sum(dict.values()) * B`` here. The
position ``k`` is set, never incremented (``set_epoch``), so re-running an
epoch (ultralytics' NaN recovery calls ``update()`` again, moving its
schedule one epoch ahead per recovery) cannot move it.
"""
from __future__ import annotations

import copy
import math
import operator
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..registry import MODELS
from ..validation import check_finite
from .class_weights import ClassWeights, check_class_weights
from .yolov8_loss import YOLOv8Loss

__all__ = ['E2ELoss', 'YOLO26_LOSS', 'YOLOV10_LOSS', 'yolo26_loss', 'yolov10_loss']

BRANCHES = ('one2many', 'one2one')
SUFFIX = {'one2many': '_o2m', 'one2one': '_o2o'}
SCHEDULES = ('progressive', 'constant')


def yolo26_loss(num_classes: int, num_epochs: Optional[int] = None, **kwargs) -> dict:
    """The YOLO26 (ultralytics 8.4.190) ``E2ELoss`` config for ``num_classes``."""
    return dict(type='E2ELoss',
                one2many=dict(type='YOLOv8Loss', num_classes=num_classes, reg_max=1),
                one2one=dict(type='YOLOv8Loss', num_classes=num_classes, reg_max=1,
                             assigner=dict(type='TaskAlignedAssigner', topk=7, topk2=1,
                                           alpha=0.5, beta=6.0)),
                schedule='progressive', num_epochs=num_epochs, **kwargs)


def yolov10_loss(num_classes: int, reg_max: int = 16, **kwargs) -> dict:
    """YOLOv10 as published (THU-MIG yolov10, ultralytics ``E2EDetectLoss``)."""
    return dict(type='E2ELoss',
                one2many=dict(type='YOLOv8Loss', num_classes=num_classes, reg_max=reg_max),
                one2one=dict(type='YOLOv8Loss', num_classes=num_classes, reg_max=reg_max,
                             assigner=dict(type='TaskAlignedAssigner', topk=1,
                                           alpha=0.5, beta=6.0)),
                schedule='constant', **kwargs)


#: The 80-class configs (COCO); see :func:`yolo26_loss`, :func:`yolov10_loss`.
YOLO26_LOSS = yolo26_loss(80)
YOLOV10_LOSS = yolov10_loss(80)


def _epoch_count(name: str, value, minimum: int) -> int:
    """``value`` as a Python int >= ``minimum`` (ints and numpy ints; no
    bools, floats or tensors: reading a tensor would be a host sync)."""
    if isinstance(value, (bool, float, Tensor)):
        raise TypeError(f'{name} must be an int, got {value!r}')
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f'{name} must be an int, got {value!r}') from None
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return value


@MODELS.register_module()
class E2ELoss(nn.Module):
    """End-to-end loss: a one-to-many and a one-to-one composite loss, weighted
    by an epoch schedule (YOLO26's ProgLoss or YOLOv10's constant weights).

    Call: ``loss(dict(one2many=[levels], one2one=[levels]), targets,
    img_size=None, max_boxes=None)`` -> the branches' keys suffixed ``_o2m``
    and ``_o2o`` (e.g. ``loss_box_o2m``, ``loss_cls_o2m``, ``loss_l1_o2m``,
    ``loss_box_o2o``, ...), each multiplied by its branch weight; no other
    keys. ``targets``, ``img_size`` and ``max_boxes`` are those of the
    branches' call (one ``[N, 6]`` target table for both; with ``max_boxes``
    given and validation off nothing synchronises with the device).

    The branches share targets, their padding and the point geometry: with
    two ``YOLOv8Loss`` branches these are checked and computed once. Both
    branches must then see the same grid sizes, batch, device and dtype.
    Other composite losses work as branches too (each then computes its own).

    Args:
        one2many: config of the one-to-many composite loss.
        one2one: config of the one-to-one composite loss (same
            ``num_classes`` and strides).
        schedule: ``'progressive'`` or ``'constant'`` (both weights 1).
        o2m_weights: ``(start, end)`` one-to-many weight of the progressive
            schedule at epoch 0 and from epoch ``E - 1`` on.
        num_epochs: ``E``, the training length of the progressive schedule;
            may also be given (or changed) by :meth:`set_epoch`. Needed once
            ``k > 0``.
        validate: if not None, the branches' ``validate`` (unless their
            configs set it).

    State: buffers ``epoch`` (k, epochs completed, ultralytics' ``updates``)
    and ``num_epochs`` (E; -1 while unknown), both int64 and persistent, so
    they checkpoint and resume; only :meth:`set_epoch` changes them.
    """

    def __init__(self, one2many: dict, one2one: dict, schedule: str = 'progressive',
                 o2m_weights: Sequence[float] = (0.8, 0.1),
                 num_epochs: Optional[int] = None,
                 validate: Optional[bool] = None) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f'schedule must be one of {SCHEDULES}, got {schedule!r}')
        if isinstance(o2m_weights, (str, bytes)) or not isinstance(o2m_weights, Sequence) \
                or len(o2m_weights) != 2 or any(
                    isinstance(w, bool) or not isinstance(w, (int, float))
                    or not math.isfinite(w) for w in o2m_weights):
            raise ValueError(f'o2m_weights must be two finite numbers (start, end), '
                             f'got {o2m_weights!r}')
        if num_epochs is not None:
            num_epochs = _epoch_count('num_epochs', num_epochs, 1)
        if validate is not None and not isinstance(validate, bool):
            raise TypeError(f'validate must be a bool or None, got {validate!r}')
        branches = {}
        for name, cfg in (('one2many', one2many), ('one2one', one2one)):
            if not hasattr(cfg, 'get') or 'type' not in cfg:
                raise TypeError(f'{name} must be a config dict with a "type" key, '
                                f'got {cfg!r}')
            cfg = copy.deepcopy(dict(cfg))
            if validate is not None:
                cfg.setdefault('validate', validate)
            # Built as losses of their own (not parts): they validate their
            # inputs by default.
            branches[name] = MODELS.build(cfg)
            if not callable(getattr(branches[name], 'forward', None)):
                raise TypeError(f'{name} must build a loss module, got '
                                f'{type(branches[name]).__name__}')
        for attr in ('num_classes', 'strides'):
            first = getattr(branches['one2many'], attr, None)
            second = getattr(branches['one2one'], attr, None)
            if first != second:
                raise ValueError(f'one2many and one2one must have the same {attr}, got '
                                 f'{first!r} and {second!r}')
        self.one2many = branches['one2many']
        self.one2one = branches['one2one']
        self.schedule = schedule
        self.o2m_weights = (float(o2m_weights[0]), float(o2m_weights[1]))
        self.validate = validate
        self.register_buffer('epoch', torch.zeros((), dtype=torch.long))
        self.register_buffer('num_epochs',
                             torch.tensor(-1 if num_epochs is None else num_epochs,
                                          dtype=torch.long))
        # Python mirror of the buffers for the host-side checks of set_epoch
        # (refreshed by set_epoch and load_state_dict, never read in forward).
        self._num_epochs_known = num_epochs is not None

    def extra_repr(self) -> str:
        return f'schedule={self.schedule!r}, o2m_weights={self.o2m_weights}'

    @property
    def num_classes(self) -> int:
        return self.one2many.num_classes

    @property
    def strides(self):
        return self.one2many.strides

    # --------------------------------------------------------------- schedule
    def set_epoch(self, epoch: int, num_epochs: Optional[int] = None) -> None:
        """Set the schedule's position: ``epoch`` = epochs completed (k, 0 at
        the start of training; ultralytics' ``updates``), and, if given, the
        horizon ``num_epochs`` (E). Stateless: the same call gives the same
        weights whatever came before, so a resumed or re-run epoch gets the
        weights of an uninterrupted run. Checked before anything changes.
        """
        epoch = _epoch_count('epoch', epoch, 0)
        if num_epochs is not None:
            num_epochs = _epoch_count('num_epochs', num_epochs, 1)
        elif self.schedule == 'progressive' and epoch > 0 and not self._num_epochs_known:
            raise ValueError('num_epochs is unknown: give it to E2ELoss(num_epochs=...) or '
                             'set_epoch(epoch, num_epochs) for the progressive schedule')
        with torch.no_grad():
            self.epoch.fill_(epoch)
            if num_epochs is not None:
                self.num_epochs.fill_(num_epochs)
                self._num_epochs_known = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._num_epochs_known = bool(self.num_epochs >= 1)

    def branch_weights(self) -> Tuple[Tensor, Tensor]:
        """``(w_o2m, w_o2o)`` as float64 scalars on the buffers' device,
        computed from the buffers (no host sync)."""
        if self.schedule == 'constant':
            one = torch.ones((), dtype=torch.float64, device=self.epoch.device)
            return one, one.clone()
        start, end = self.o2m_weights
        k = self.epoch.double()
        horizon = (self.num_epochs.double() - 1).clamp(min=1)
        o2m = (1 - k / horizon).clamp(min=0) * (start - end) + end
        o2o = (1 - o2m).clamp(min=0)
        return o2m, o2o

    # ------------------------------------------------------------ class weights
    def set_class_weights(self, weights: ClassWeights) -> None:
        """Both branches' ``set_class_weights`` (checked by both first)."""
        for name in BRANCHES:
            if not hasattr(getattr(self, name), 'set_class_weights'):
                raise TypeError(f'{name} ({type(getattr(self, name)).__name__}) has no '
                                f'class weights')
        check_class_weights(weights, self.one2many.num_classes)
        check_class_weights(weights, self.one2one.num_classes)
        self.one2many.set_class_weights(weights)
        self.one2one.set_class_weights(weights)

    # ----------------------------------------------------------------- forward
    def _check_preds(self, preds) -> Dict[str, Sequence[Tensor]]:
        if not isinstance(preds, Mapping):
            raise TypeError(f'preds must be a dict with keys {BRANCHES} (one list of '
                            f'levels per branch), got {type(preds).__name__}')
        missing = [name for name in BRANCHES if name not in preds]
        if missing:
            raise KeyError(f'preds is missing the branch key(s) {missing}; expected '
                           f'dict(one2many=[levels], one2one=[levels])')
        unknown = sorted(str(name) for name in preds if name not in BRANCHES)
        if unknown:
            raise KeyError(f'preds has unknown key(s) {unknown}; expected only {BRANCHES}')
        return {name: preds[name] for name in BRANCHES}

    def _shares_targets(self) -> bool:
        return isinstance(self.one2many, YOLOv8Loss) and isinstance(self.one2one, YOLOv8Loss)

    def forward(self, preds: Mapping[str, Sequence[Tensor]], targets: Tensor,
                img_size: Optional[Sequence[int]] = None,
                max_boxes: Optional[int] = None) -> Dict[str, Tensor]:
        """See the class docstring; every check runs before any work."""
        preds = self._check_preds(preds)
        if not self._shares_targets():
            parts = {name: getattr(self, name)(preds[name], targets, img_size, max_boxes)
                     for name in BRANCHES}
        else:
            parts = self._shared_forward(preds, targets, img_size, max_boxes)
        o2m_weight, o2o_weight = self.branch_weights()
        losses = {}
        for name, weight in (('one2many', o2m_weight), ('one2one', o2o_weight)):
            for key, value in parts[name].items():
                losses[key + SUFFIX[name]] = value * weight.to(value.dtype)
        return losses

    def _check_shared(self, preds: Dict[str, Sequence[Tensor]], targets: Tensor,
                      img_size, max_boxes):
        """Checks of both branches; the targets are checked (and
        ``max_boxes`` resolved: one sync if None) once."""
        o2m, o2o = self.one2many, self.one2one
        _, size, max_boxes = o2m.check_inputs(preds['one2many'], targets, img_size,
                                              max_boxes)
        try:
            o2o.check_preds(preds['one2one'])
        except (TypeError, ValueError) as err:
            raise type(err)(f"preds['one2one']: {err}") from None
        first, second = preds['one2many'], preds['one2one']
        for level, (a, b) in enumerate(zip(first, second)):
            if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
                raise ValueError(
                    f"preds['one2one'][{level}] must have the batch size and grid of "
                    f"preds['one2many'][{level}] (the branches share the points): got "
                    f"{tuple(b.shape)} and {tuple(a.shape)}")
            if a.device != b.device:
                raise ValueError(f"preds['one2one'][{level}] is on {b.device}, "
                                 f"preds['one2many'][{level}] on {a.device}")
        if o2m.compute_dtype(first) != o2o.compute_dtype(second):
            raise ValueError("preds['one2many'] and preds['one2one'] must both be float64 "
                             "or both not (the branches share the targets)")
        if o2o.validating:
            for level, pred in enumerate(second):
                check_finite(f"preds['one2one'][{level}]", pred)
        return size, max_boxes

    def _shared_forward(self, preds, targets, img_size, max_boxes):
        size, max_boxes = self._check_shared(preds, targets, img_size, max_boxes)
        first = preds['one2many']
        with torch.autocast(device_type=first[0].device.type, enabled=False):
            shared = self.one2many.shared_targets(first, targets, size, max_boxes)
            return {name: getattr(self, name)._losses(
                        getattr(self, name)._prepare(preds[name], shared))
                    for name in BRANCHES}

    def assign(self, preds: Mapping[str, Sequence[Tensor]], targets: Tensor,
               img_size: Optional[Sequence[int]] = None,
               max_boxes: Optional[int] = None) -> dict:
        """Each branch's decoded predictions and assignment, as
        ``dict(one2many=..., one2one=...)`` (``YOLOv8Loss.assign``'s result),
        for inspection."""
        preds = self._check_preds(preds)
        if not self._shares_targets():
            return {name: getattr(self, name).assign(preds[name], targets, img_size,
                                                     max_boxes) for name in BRANCHES}
        size, max_boxes = self._check_shared(preds, targets, img_size, max_boxes)
        with torch.autocast(device_type=preds['one2many'][0].device.type, enabled=False):
            shared = self.one2many.shared_targets(preds['one2many'], targets, size, max_boxes)
            return {name: getattr(self, name)._prepare(preds[name], shared)
                    for name in BRANCHES}

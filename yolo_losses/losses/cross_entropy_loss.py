"""Cross-entropy losses with mmdet 3.3's semantics, plus YOLO's BCE options.

``CrossEntropyLoss`` has mmdet's three modes:

- softmax (default): logits ``[N, C, *]`` against class ids ``[N, *]``
  (``ignore_index`` entries give 0) or class probabilities ``[N, C, *]``;
- ``use_sigmoid=True``: binary cross-entropy with logits per class. Class ids
  ``[*]`` for logits ``[*, C]`` become one-hot rows; an id >= C (mmdet uses C)
  is background (an all-zero row), ``ignore_index`` and negative ids give the
  row weight 0. Targets of the shape of ``pred`` are used as they are (one-hot
  or soft, e.g. IoU-valued objectness), entries equal to ``ignore_index`` or
  negative weighted 0. mmdet passes ``class_weight`` to PyTorch's BCE as
  ``pos_weight`` here, and so does this module;
- ``use_mask=True``: mmdet's ``mask_cross_entropy``, BCE between the mask
  logits of each RoI's own class and its mask target.

YOLO extras, as options (never new classes): ``pos_weight`` (yolov5's
``cls_pw``/``obj_pw``: a positive-class weight in BCE, sigmoid mode only) and
``label_smoothing`` (sigmoid: targets ``t * (1 - eps) + eps / 2``, i.e.
yolov5's ``smooth_BCE`` positives ``1 - eps/2`` and negatives ``eps/2``;
softmax: PyTorch's ``F.cross_entropy(label_smoothing=eps)``).

Nothing here synchronises with the device unless validation is on: one-hot
rows come from ``F.one_hot`` of clamped ids times a validity mask (no
``nonzero``), and ``avg_non_ignore`` counts with a tensor where mmdet calls
``.item()``. An empty input gives an empty element-wise loss on ``pred``'s
graph with ``'none'`` and 0 with ``'mean'`` (mmdet gives NaN for ``'mean'``
of nothing).
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..kernels import check_fused_option, resolve_fused
from ..registry import MODELS
from ..validation import check_finite, check_range, check_tensor, resolve_validate
from . import fused_path
from .base import BaseLoss
from ..validation import check_no_extra_kwargs, check_weight_broadcast
from .utils import weighted_loss

#: The id that mmdet (like ``F.cross_entropy``) ignores when none is given.
DEFAULT_IGNORE_INDEX = -100

AvgFactor = Optional[Union[float, Tensor]]
ClassVector = Optional[Union[Sequence[float], Tensor]]


# --- argument checks ---------------------------------------------------------

def _compute_dtype(pred: Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if pred.dtype == torch.float64 else torch.float32


def _check_ignore_index(ignore_index) -> Optional[int]:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f'ignore_index must be an int or None, got {ignore_index!r}')
    return int(ignore_index)


def _check_label_smoothing(label_smoothing) -> float:
    if (isinstance(label_smoothing, bool)
            or not isinstance(label_smoothing, numbers.Real)
            or not 0.0 <= float(label_smoothing) < 1.0):
        raise ValueError(f'label_smoothing must be a number in [0, 1), got {label_smoothing!r}')
    return float(label_smoothing)


def _number_or_list(name: str, values, *, scalar_ok: bool,
                    non_negative: bool = False) -> Optional[Union[float, Tuple[float, ...]]]:
    """A constructor's per-class list (or, where ``scalar_ok``, one number)
    as finite floats: a float or a tuple."""
    if values is None:
        return None
    if isinstance(values, Tensor):
        values = values.detach().cpu().tolist()  # constructor time, not a hot path

    def is_number(value) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    if is_number(values):
        if not scalar_ok:
            raise TypeError(f'{name} must be a list of per-class numbers, got {values!r}')
        floats: Tuple[float, ...] = (float(values),)
    elif (isinstance(values, (list, tuple)) and values
          and all(is_number(v) for v in values)):
        floats = tuple(float(v) for v in values)
    else:
        what = 'a number or a non-empty list of numbers' if scalar_ok else \
            'a non-empty list of per-class numbers'
        raise TypeError(f'{name} must be {what}, got {values!r}')
    if not all(math.isfinite(v) for v in floats):
        raise ValueError(f'{name} must be finite, got {values!r}')
    if non_negative and any(v < 0 for v in floats):
        raise ValueError(f'{name} must be >= 0, got {values!r}')
    return floats[0] if is_number(values) else floats


def _on(values: Optional[Tensor], pred: Tensor) -> Optional[Tensor]:
    """A constructor vector (a buffer, so it follows ``.to(device)``) in the
    compute dtype on ``pred``'s device; a device cast only, no sync."""
    if values is None:
        return None
    return values.to(device=pred.device, dtype=_compute_dtype(pred))


def _as_vector(name: str, values, pred: Tensor, shape: Sequence[int]) -> Optional[Tensor]:
    """A per-class vector given to a function (list, float or tensor) as a
    tensor in the compute dtype that broadcasts to ``shape``."""
    if values is None:
        return None
    values = torch.as_tensor(values, dtype=_compute_dtype(pred), device=pred.device)
    check_weight_broadcast(values, shape, name)
    return values


def _check_softmax_class_weight(class_weight: Optional[Tensor], pred: Tensor) -> None:
    if class_weight is not None and class_weight.shape != pred.shape[1:2]:
        raise ValueError(f'class_weight must hold one weight per class ({pred.shape[1]}), '
                         f'got shape {tuple(class_weight.shape)}')


def _check_integer_ids(name: str, label: Tensor) -> None:
    if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
        raise TypeError(f'{name} holds class ids here and must be an integer tensor, '
                        f'got {label.dtype}')


def _check_class_ids(name: str, label: Tensor, high: int, ignore_index: Optional[int]) -> None:
    """Validation only (one sync): ids in [0, high], ``ignore_index`` aside."""
    if ignore_index is not None:
        label = torch.where(label == ignore_index, torch.zeros_like(label), label)
    check_range(name, label, 0, high, what='class ids')


def _check_softmax_inputs(pred: Tensor, label: Tensor, weight: Optional[Tensor],
                          ignore_index: int, validate: bool,
                          label_name: str) -> bool:
    """Shapes (always) and values (when ``validate``) of the softmax mode.
    Returns whether ``label`` holds class probabilities (else class ids)."""
    check_tensor('pred', pred, floating=True)
    check_tensor(label_name, label)
    if pred.dim() < 2:
        raise ValueError(f'pred must be logits [N, C, *], got shape {tuple(pred.shape)}')
    id_shape = pred.shape[:1] + pred.shape[2:]
    if label.shape == id_shape:
        _check_integer_ids(label_name, label)
        probabilities = False
    elif label.shape == pred.shape:
        if not label.is_floating_point():
            raise TypeError(f'{label_name} of the shape of pred holds class probabilities '
                            f'and must be floating point, got {label.dtype}')
        probabilities = True
    else:
        raise ValueError(
            f'{label_name} must be class ids of shape {tuple(id_shape)} or class '
            f'probabilities of shape {tuple(pred.shape)}, got {tuple(label.shape)}')
    check_weight_broadcast(weight, id_shape)
    if validate:
        check_finite('pred', pred)
        check_finite('weight', weight)
        if probabilities:
            check_finite(label_name, label)
            check_range(label_name, label, 0.0, 1.0, what='probabilities')
        else:
            _check_class_ids(label_name, label, pred.shape[1] - 1, ignore_index)
    return probabilities


def _check_sigmoid_inputs(pred: Tensor, label: Tensor, weight: Optional[Tensor],
                          ignore_index: int, validate: bool,
                          label_name: str) -> bool:
    """Shapes (always) and values (when ``validate``) of the sigmoid mode.
    Returns whether ``label`` holds class ids (else per-class targets)."""
    check_tensor('pred', pred, floating=True)
    check_tensor(label_name, label)
    if pred.dim() >= 1 and label.shape == pred.shape[:-1]:
        _check_integer_ids(label_name, label)
        if weight is None or weight.shape != label.shape:  # else per sample
            check_weight_broadcast(weight, pred.shape)
        class_ids = True
    elif label.shape == pred.shape:
        check_weight_broadcast(weight, pred.shape)
        class_ids = False
    else:
        raise ValueError(
            f'{label_name} must be class ids of shape {tuple(pred.shape[:-1])} or '
            f'per-class targets of shape {tuple(pred.shape)}, got {tuple(label.shape)}')
    if validate:
        check_finite('pred', pred)
        check_finite('weight', weight)
        if class_ids:
            # C itself is background (mmdet's convention)
            _check_class_ids(label_name, label, pred.shape[-1], ignore_index)
        else:
            check_finite(label_name, label)
            soft = label if label.is_floating_point() else label.float()
            soft = torch.where(soft == ignore_index, torch.zeros_like(soft), soft)
            check_range(label_name, soft, 0.0, 1.0, what='targets')
    return class_ids


def _check_mask_inputs(pred: Tensor, target: Tensor, label: Tensor, validate: bool,
                       label_name: str) -> None:
    check_tensor('pred', pred, floating=True)
    check_tensor('target', target, floating=True)
    check_tensor(label_name, label)
    if pred.dim() < 2:
        raise ValueError(f'pred must be mask logits [N, C, *], got shape {tuple(pred.shape)}')
    mask_shape = pred.shape[:1] + pred.shape[2:]
    if target.shape != mask_shape:
        raise ValueError(f'target must be masks of shape {tuple(mask_shape)}, '
                         f'got {tuple(target.shape)}')
    _check_integer_ids(label_name, label)
    if label.shape != pred.shape[:1]:
        raise ValueError(f'{label_name} must be the class id of each mask, shape '
                         f'{tuple(pred.shape[:1])}, got {tuple(label.shape)}')
    if validate:
        check_finite('pred', pred)
        check_finite('target', target)
        check_range('target', target, 0.0, 1.0, what='targets')
        _check_class_ids(label_name, label, pred.shape[1] - 1, None)


# --- element-wise losses (the decorator reduces, in float32 for half inputs) ---

@weighted_loss
def _softmax_cross_entropy(pred: Tensor, label: Tensor, class_weight: Optional[Tensor] = None,
                           ignore_index: int = DEFAULT_IGNORE_INDEX,
                           label_smoothing: float = 0.0) -> Tensor:
    """``-log softmax(pred)[label]`` per sample ``[N, *]`` (in nats)."""
    return F.cross_entropy(pred, label, weight=class_weight, reduction='none',
                           ignore_index=ignore_index, label_smoothing=label_smoothing)


@weighted_loss
def _binary_cross_entropy_with_logits(pred: Tensor, target: Tensor,
                                      pos_weight: Optional[Tensor] = None,
                                      keep: Optional[Tensor] = None) -> Tensor:
    """``-(p * t * log s(x) + (1 - t) * log(1 - s(x)))`` per element (nats),
    ``p`` the positive-class weight; 0 where the bool mask ``keep`` is False
    (a finite target gives a finite loss there, and its gradient is 0)."""
    loss = F.binary_cross_entropy_with_logits(pred, target, pos_weight=pos_weight,
                                              reduction='none')
    if keep is not None:
        loss = torch.where(keep, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    return loss


# --- the three modes, on checked inputs ----------------------------------------

def _softmax_loss(pred: Tensor, label: Tensor, weight: Optional[Tensor], reduction: str,
                  avg_factor: AvgFactor, class_weight: Optional[Tensor], ignore_index: int,
                  avg_non_ignore: bool, label_smoothing: float, probabilities: bool) -> Tensor:
    dtype = _compute_dtype(pred)
    if probabilities:
        label = label.to(dtype)
    else:
        label = label.long()
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        if probabilities:  # nothing is ignored: every sample counts
            avg_factor = math.prod(pred.shape[:1] + pred.shape[2:])
        else:
            avg_factor = (label != ignore_index).sum()
    if weight is not None:
        weight = weight.to(dtype)
    return _softmax_cross_entropy(pred, label, weight, reduction=reduction,
                                  avg_factor=avg_factor, class_weight=class_weight,
                                  ignore_index=ignore_index, label_smoothing=label_smoothing)


def _sigmoid_loss(pred: Tensor, label: Tensor, weight: Optional[Tensor], reduction: str,
                  avg_factor: AvgFactor, pos_weight: Optional[Tensor], ignore_index: int,
                  avg_non_ignore: bool, label_smoothing: float, class_ids: bool) -> Tensor:
    dtype = _compute_dtype(pred)
    keep = None
    if class_ids:
        valid = (label >= 0) & (label != ignore_index)
        num_classes = pred.shape[-1]
        # ids >= C land in the extra column C, which is dropped: background
        one_hot = F.one_hot(label.long().clamp(0, num_classes), num_classes + 1)
        valid = valid.unsqueeze(-1)
        target = one_hot[..., :num_classes].to(dtype) * valid
        if weight is not None and weight.shape == label.shape:
            weight = weight.unsqueeze(-1)  # one weight per sample, as mmdet
        element_weight = valid.to(dtype) if weight is None else weight.to(dtype) * valid
    elif ignore_index < 0:
        # label >= 0 already excludes a negative ignore_index. The masked
        # entries are zeroed after the element-wise loss, which a finite
        # target keeps finite: two passes over the per-class targets (the
        # mask, the select) instead of five (hot in YOLO: [B, N, C]).
        # (NaN targets stay out of the loss here; validation rejects them.)
        valid = keep = label >= 0
        target = label.to(dtype)
        element_weight = None if weight is None else weight.to(dtype)
    else:
        valid = (label >= 0) & (label != ignore_index)
        # ignored entries would enter the logit product; zero them
        target = torch.where(valid, label.to(dtype),
                             torch.zeros((), dtype=dtype, device=pred.device))
        element_weight = valid.to(dtype) if weight is None else weight.to(dtype) * valid
    if label_smoothing > 0:
        target = target * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        avg_factor = valid.sum() * (pred.shape[-1] if class_ids else 1)
    return _binary_cross_entropy_with_logits(pred, target, element_weight, reduction=reduction,
                                             avg_factor=avg_factor, pos_weight=pos_weight,
                                             keep=keep)


def _mask_loss(pred: Tensor, target: Tensor, label: Tensor, reduction: str,
               avg_factor: AvgFactor, class_weight: Optional[Tensor]) -> Tensor:
    dtype = _compute_dtype(pred)
    # gather (backward: scatter-add) picks each RoI's own class channel
    index = label.long().reshape((-1, 1) + (1,) * (pred.dim() - 2))
    index = index.expand(pred.shape[:1] + (1,) + pred.shape[2:])
    own_class_logits = pred.gather(1, index).squeeze(1)  # [N, *]
    element_weight = class_weight
    loss = _binary_cross_entropy_with_logits(own_class_logits, target.to(dtype), element_weight,
                                             reduction=reduction, avg_factor=avg_factor)
    # mmdet returns the reduced mask loss with shape (1,)
    return loss if reduction == 'none' else loss.reshape(1)


# --- public functions (mmdet's names and arguments) ------------------------------

def cross_entropy(pred: Tensor, label: Tensor, weight: Optional[Tensor] = None,
                  reduction: str = 'mean', avg_factor: AvgFactor = None,
                  class_weight: ClassVector = None,
                  ignore_index: Optional[int] = DEFAULT_IGNORE_INDEX,
                  avg_non_ignore: bool = False, label_smoothing: float = 0.0,
                  validate: Optional[bool] = None) -> Tensor:
    """Softmax cross-entropy, mmdet 3.3's ``cross_entropy``.

    Args:
        pred: logits ``[N, C, *]``.
        label: class ids ``[N, *]`` (integer) or class probabilities
            ``[N, C, *]`` (float).
        weight: per-sample weight broadcastable to ``[N, *]``.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor: replaces the sample count of ``'mean'``.
        class_weight: per-class weight ``[C]`` (``F.cross_entropy``'s
            ``weight``; the mean still divides by the sample count, as mmdet).
        ignore_index: id whose samples give 0 (None: -100).
        avg_non_ignore: ``'mean'`` over the samples not ignored.
        label_smoothing: PyTorch's softmax label smoothing, in [0, 1).
        validate: value checks (one sync); None follows the global switch.

    Returns:
        ``[N, *]`` (in nats) for ``'none'``, else a scalar.
    """
    ignore_index = DEFAULT_IGNORE_INDEX if ignore_index is None else _check_ignore_index(
        ignore_index)
    label_smoothing = _check_label_smoothing(label_smoothing)
    probabilities = _check_softmax_inputs(pred, label, weight, ignore_index,
                                          resolve_validate(validate), 'label')
    if class_weight is not None:
        class_weight = torch.as_tensor(class_weight, dtype=_compute_dtype(pred),
                                       device=pred.device)
    _check_softmax_class_weight(class_weight, pred)
    return _softmax_loss(pred, label, weight, reduction, avg_factor, class_weight,
                         ignore_index, avg_non_ignore, label_smoothing, probabilities)


def binary_cross_entropy(pred: Tensor, label: Tensor, weight: Optional[Tensor] = None,
                         reduction: str = 'mean', avg_factor: AvgFactor = None,
                         class_weight: ClassVector = None,
                         ignore_index: Optional[int] = DEFAULT_IGNORE_INDEX,
                         avg_non_ignore: bool = False,
                         pos_weight: Optional[Union[float, Sequence[float], Tensor]] = None,
                         label_smoothing: float = 0.0,
                         validate: Optional[bool] = None) -> Tensor:
    """Binary cross-entropy with logits, mmdet 3.3's ``binary_cross_entropy``.

    Args:
        pred: logits ``[*, C]`` (or any shape with same-shape targets).
        label: class ids ``[*]`` (integer; id >= C is background, negative or
            ``ignore_index`` ids get weight 0), or targets of the shape of
            ``pred`` (0/1 or soft in [0, 1]; ``ignore_index`` entries get
            weight 0).
        weight: per-sample ``[*]`` with class ids, else broadcastable to
            ``pred``.
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        avg_factor: replaces the element count of ``'mean'``.
        class_weight: per-class ``[C]``, used as BCE ``pos_weight`` (mmdet).
        ignore_index: id to ignore (None: -100).
        avg_non_ignore: ``'mean'`` over the elements not ignored.
        pos_weight: BCE positive-class weight, a number or ``[C]`` (yolov5's
            ``cls_pw``/``obj_pw``); not together with ``class_weight``.
        label_smoothing: targets ``t * (1 - eps) + eps / 2``, in [0, 1).
        validate: value checks (one sync); None follows the global switch.

    Returns:
        ``pred``-shaped loss (nats) for ``'none'``, else a scalar.
    """
    ignore_index = DEFAULT_IGNORE_INDEX if ignore_index is None else _check_ignore_index(
        ignore_index)
    label_smoothing = _check_label_smoothing(label_smoothing)
    if class_weight is not None and pos_weight is not None:
        raise ValueError('class_weight and pos_weight are both the BCE positive-class '
                         'weight in sigmoid mode; give one of them')
    class_ids = _check_sigmoid_inputs(pred, label, weight, ignore_index,
                                      resolve_validate(validate), 'label')
    positive_weight = _as_vector('class_weight', class_weight, pred, pred.shape)
    if pos_weight is not None:
        positive_weight = _as_vector('pos_weight', pos_weight, pred, pred.shape)
    return _sigmoid_loss(pred, label, weight, reduction, avg_factor, positive_weight,
                         ignore_index, avg_non_ignore, label_smoothing, class_ids)


def mask_cross_entropy(pred: Tensor, target: Tensor, label: Tensor, reduction: str = 'mean',
                       avg_factor: AvgFactor = None, class_weight: ClassVector = None,
                       ignore_index: Optional[int] = None, avg_non_ignore: bool = False,
                       validate: Optional[bool] = None) -> Tensor:
    """Mask BCE, mmdet 3.3's ``mask_cross_entropy``.

    Args:
        pred: mask logits ``[N, C, *]`` (``C`` = 1 for class-agnostic masks).
        target: mask targets ``[N, *]`` in [0, 1].
        label: class id of each mask ``[N]``; selects ``pred[n, label[n]]``.
        reduction: mmdet supports only ``'mean'``; ``'sum'`` and ``'none'``
            work here too.
        avg_factor: replaces the element count of ``'mean'`` (an extension).
        class_weight: BCE element weight broadcast against ``[N, *]`` from
            the right, exactly as mmdet passes it (so a per-class list only
            lines up when its length is 1 or the mask width).
        ignore_index: must be None (mmdet asserts the same).
        avg_non_ignore: accepted for mmdet's call; nothing is ignored here.
        validate: value checks (one sync); None follows the global switch.

    Returns:
        Shape ``(1,)`` (mmdet's) for ``'mean'`` and ``'sum'``, ``[N, *]``
        for ``'none'``.
    """
    if ignore_index is not None:
        raise ValueError(f'mask_cross_entropy does not support ignore_index, got {ignore_index!r}')
    _check_mask_inputs(pred, target, label, resolve_validate(validate), 'label')
    mask_shape = pred.shape[:1] + pred.shape[2:]
    class_weight = _as_vector('class_weight', class_weight, pred, mask_shape)
    return _mask_loss(pred, target, label, reduction, avg_factor, class_weight)


# --- the module ------------------------------------------------------------------

@MODELS.register_module()
class CrossEntropyLoss(BaseLoss):
    """Cross-entropy loss, mmdet 3.3's ``CrossEntropyLoss`` with YOLO options.

    Args:
        use_sigmoid: binary cross-entropy with logits per class.
        use_mask: mmdet's mask BCE (the call's third argument is then the
            class id ``[N]`` of each mask, as in mmdet's mask heads).
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        class_weight: per-class weights ``[C]``: ``F.cross_entropy``'s
            ``weight`` (softmax), BCE ``pos_weight`` (sigmoid; mmdet's
            choice), BCE element weight (mask).
        ignore_index: class id to ignore (None: -100 in the softmax and
            sigmoid modes); a call may override it.
        loss_weight: multiplies the reduced loss.
        avg_non_ignore: ``'mean'`` divides by the number of elements not
            ignored instead of all.
        pos_weight: BCE positive-class weight, a number or a per-class list
            (yolov5's ``cls_pw``/``obj_pw``); sigmoid mode only, not with
            ``class_weight``.
        label_smoothing: in [0, 1); sigmoid: targets ``t * (1 - eps) +
            eps / 2`` (yolov5's ``smooth_BCE``); softmax: PyTorch's.
        validate: value checks (NaN/inf, id and target ranges; one host sync);
            None follows the global switch.
        fused: sigmoid mode on the fused Triton kernel
            (:mod:`yolo_losses.kernels`): ``None`` uses it on CUDA when
            Triton imports and the call is supported (float32/16/bf16
            logits), ``True`` requires it, ``False`` keeps PyTorch. Same
            numbers to float32 round-off. Softmax and mask modes: PyTorch.
    """

    def __init__(self, use_sigmoid: bool = False, use_mask: bool = False,
                 reduction: str = 'mean', class_weight: ClassVector = None,
                 ignore_index: Optional[int] = None, loss_weight: float = 1.0,
                 avg_non_ignore: bool = False,
                 pos_weight: Optional[Union[float, Sequence[float]]] = None,
                 label_smoothing: float = 0.0, validate: Optional[bool] = None,
                 fused: Optional[bool] = None) -> None:
        if use_sigmoid and use_mask:
            raise ValueError('use_sigmoid and use_mask cannot both be True')
        class_weight_values = _number_or_list('class_weight', class_weight, scalar_ok=False)
        pos_weight_values = _number_or_list('pos_weight', pos_weight, scalar_ok=True,
                                            non_negative=True)
        if pos_weight_values is not None and not use_sigmoid:
            raise ValueError('pos_weight is a BCE option: it needs use_sigmoid=True')
        if pos_weight_values is not None and class_weight_values is not None:
            raise ValueError('class_weight and pos_weight are both the BCE positive-class '
                             'weight in sigmoid mode; give one of them')
        ignore_index = _check_ignore_index(ignore_index)
        if use_mask and ignore_index is not None:
            raise ValueError('use_mask=True does not support ignore_index (as in mmdet)')
        label_smoothing = _check_label_smoothing(label_smoothing)
        if use_mask and label_smoothing > 0:
            raise ValueError('label_smoothing is not supported with use_mask=True')
        super().__init__(reduction, loss_weight, validate)
        if ignore_index is not None and not avg_non_ignore and self.reduction == 'mean':
            warnings.warn(
                'CrossEntropyLoss with ignore_index averages over all elements, ignored '
                'ones included (avg_non_ignore=False, mmdet\'s default); set '
                'avg_non_ignore=True to average over the others like F.cross_entropy.',
                UserWarning, stacklevel=2)
        self.use_sigmoid = bool(use_sigmoid)
        self.use_mask = bool(use_mask)
        self.class_weight = None if class_weight is None else list(class_weight_values)
        self.ignore_index = ignore_index
        self.avg_non_ignore = bool(avg_non_ignore)
        self.pos_weight = (list(pos_weight_values) if isinstance(pos_weight_values, tuple)
                           else pos_weight_values)
        self.label_smoothing = label_smoothing
        self.fused = check_fused_option(fused)
        if self.fused and not self.use_sigmoid:
            raise ValueError('fused=True needs use_sigmoid=True (the kernel is the sigmoid '
                             'BCE; softmax and mask modes run on PyTorch)')
        # Buffers follow the module to its device, so a call only casts them
        # (mmdet builds a tensor from a list each call: a host-to-device copy).
        self.register_buffer(
            'class_weight_tensor', None if class_weight_values is None else
            torch.tensor(class_weight_values, dtype=torch.float32), persistent=False)
        self.register_buffer(
            'pos_weight_tensor', None if pos_weight_values is None else
            torch.tensor(pos_weight_values, dtype=torch.float32), persistent=False)

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: AvgFactor = None, reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = None, **kwargs) -> Tensor:
        """Args:
            pred: logits: ``[N, C, *]`` (softmax), ``[*, C]`` or any shape
                with same-shape targets (sigmoid), ``[N, C, *]`` masks (mask).
            target: class ids ``[N, *]`` or probabilities ``[N, C, *]``
                (softmax); class ids ``[*]`` or per-class targets of
                ``pred``'s shape (sigmoid); masks ``[N, *]`` (mask).
            weight: per-sample weights (element-wise where targets have the
                shape of ``pred``); with ``use_mask`` the class ids ``[N]``.
            avg_factor: replaces the element count of ``'mean'``.
            reduction_override: replaces the constructor's ``reduction``.
            ignore_index: overrides the constructor's for this call.

        Returns:
            The element-wise loss (nats) for ``'none'``, else a scalar
            (shape ``(1,)`` in mask mode, as mmdet), times ``loss_weight``.
        """
        check_no_extra_kwargs(type(self).__name__, kwargs)
        check_tensor('pred', pred, floating=True)
        reduction = self.resolve_reduction(reduction_override)
        ignore_index = self.ignore_index if ignore_index is None else _check_ignore_index(
            ignore_index)
        validate = self.validating
        class_weight = _on(self.class_weight_tensor, pred)
        if self.use_mask:
            if ignore_index is not None:
                raise ValueError('use_mask=True does not support ignore_index (as in mmdet)')
            if weight is None:
                raise ValueError('with use_mask=True the third argument (weight) must be the '
                                 'class id [N] of each mask, as in mmdet\'s mask heads')
            _check_mask_inputs(pred, target, weight, validate, 'weight')
            # mmdet hands class_weight to BCE as its element weight, broadcast
            # against the [N, *] mask loss; kept for equal numbers
            check_weight_broadcast(class_weight, pred.shape[:1] + pred.shape[2:], 'class_weight')
            loss = _mask_loss(pred, target, weight, reduction, avg_factor, class_weight)
        elif self.use_sigmoid:
            ignore_index = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
            class_ids = _check_sigmoid_inputs(pred, target, weight, ignore_index, validate,
                                              'target')
            positive_weight = (class_weight if class_weight is not None
                               else _on(self.pos_weight_tensor, pred))
            name = 'class_weight' if class_weight is not None else 'pos_weight'
            check_weight_broadcast(positive_weight, pred.shape, name)
            if resolve_fused(self.fused, 'CrossEntropyLoss', pred.device,
                             fused_path.bce_unsupported(pred, target, weight, positive_weight)):
                return self.loss_weight * fused_path.fused_binary_cross_entropy(
                    pred, target, weight, reduction, avg_factor, positive_weight,
                    ignore_index, self.avg_non_ignore, self.label_smoothing, class_ids)
            loss = _sigmoid_loss(pred, target, weight, reduction, avg_factor, positive_weight,
                                 ignore_index, self.avg_non_ignore, self.label_smoothing,
                                 class_ids)
        else:
            ignore_index = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
            probabilities = _check_softmax_inputs(pred, target, weight, ignore_index, validate,
                                                  'target')
            _check_softmax_class_weight(class_weight, pred)
            loss = _softmax_loss(pred, target, weight, reduction, avg_factor, class_weight,
                                 ignore_index, self.avg_non_ignore, self.label_smoothing,
                                 probabilities)
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        mode = 'mask' if self.use_mask else 'sigmoid' if self.use_sigmoid else 'softmax'
        text = f'mode={mode}, {super().extra_repr()}, avg_non_ignore={self.avg_non_ignore}'
        if self.class_weight is not None:
            text += f', class_weight={self.class_weight}'
        if self.ignore_index is not None:
            text += f', ignore_index={self.ignore_index}'
        if self.pos_weight is not None:
            text += f', pos_weight={self.pos_weight}'
        if self.label_smoothing:
            text += f', label_smoothing={self.label_smoothing}'
        return text

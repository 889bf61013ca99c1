"""Conformance kit: check that a loss follows the package's conventions.

A researcher who writes a new loss calls :func:`check_loss_conventions` with
its config and a function that makes sample inputs::

    from yolo_losses.testing import check_loss_conventions

    def make_inputs(device, dtype):
        pred = torch.randn(8, 4, device=device, dtype=dtype)
        target = torch.randn(8, 4, device=device, dtype=dtype)
        return pred, target

    report = check_loss_conventions(dict(type='MyLoss', beta=0.5), make_inputs)
    print(report)

The loss is built from the registry (``type`` may also be the class itself)
and called as ``loss(pred, target, weight=None, avg_factor=None,
reduction_override=None)``. Each convention (mmdet 3.3, see
``yolo_losses/losses/utils.py``) that fails raises a :class:`ConventionError`
(an ``AssertionError``, so pytest shows it as a failure) whose message names
the convention, the device and dtype, and the numbers that disagree. The
conventions:

``reduction``
    ``'none'`` gives the element-wise loss of shape ``elementwise_shape``
    (default: ``pred.shape``) on ``pred``'s device, ``'sum'`` equals its sum and
    ``'mean'`` equals ``sum / element count``.
``weight``
    ``weight`` multiplies the element-wise loss. A weight with fewer
    dimensions than the element-wise loss is aligned with its leading
    dimensions (a per-sample weight ``[N]`` scales every element of row n),
    as mmdet's losses do.
``avg_factor``
    with ``'mean'`` the result is ``weighted sum / (avg_factor + eps)``
    (``eps`` = float32 machine epsilon), with ``'sum'`` it raises
    ``ValueError``, with ``'none'`` it is ignored.
``reduction_override``
    wins over the constructor's ``reduction``, for every pair of modes; an
    invalid mode raises ``ValueError``.
``loss_weight``
    scales the result linearly (also ``loss_weight=0``).
``zero_weight``
    an all-zero ``weight`` gives a zero loss and a zero, finite gradient.
``gradients``
    the loss is differentiable with respect to ``pred`` and the gradient is
    finite.
``inputs_unchanged``
    the call does not modify ``pred`` or ``target`` in place.
``float64``
    float64 inputs give a float64 result close to float32 on the same values.
``autocast``
    under ``torch.autocast`` (float16 and bfloat16; on CPU, and on CUDA when
    present) a low-precision ``pred`` (what an autocast head outputs) gives a
    finite value close to the float32 loss on the same (rounded) values, and a
    finite gradient.

Inputs: ``make_inputs(device, dtype)`` returns ``(pred, target)`` or
``(pred, target, weight_shape)``; ``target`` may be a tensor or a tuple of
tensors (e.g. QFL's ``(label, score)``); integer tensors are labels and keep
their dtype. Instead of a function, sample tensors ``(pred, target)`` may be
passed; they are moved to each device and floating tensors cast to each
dtype. The kit seeds torch's generator before every ``make_inputs`` call (and
restores the caller's state afterwards), so a maker that draws random
numbers gives the same inputs each time.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from typing import (Any, Callable, Dict, Iterable, List, NoReturn, Optional,
                    Sequence, Tuple, Union)

import torch
from torch import Tensor, nn

from .losses.utils import AVG_FACTOR_EPS

__all__ = ['ConventionError', 'ConformanceReport', 'check_loss_conventions',
           'CHECKS']

#: Names of the conventions checked, in the order they run.
CHECKS: Tuple[str, ...] = (
    'reduction', 'weight', 'avg_factor', 'reduction_override', 'loss_weight',
    'zero_weight', 'gradients', 'inputs_unchanged', 'float64', 'autocast')

_REDUCTIONS = ('none', 'mean', 'sum')
_LOSS_WEIGHT_SCALE = 2.5
_AVG_FACTOR = 3.7
_LOW_PRECISION = (torch.float16, torch.bfloat16)

InputMaker = Callable[[torch.device, torch.dtype], Sequence[Any]]


class ConventionError(AssertionError):
    """A loss broke one of the conventions; ``check`` names which one."""

    def __init__(self, message: str, check: str = '') -> None:
        super().__init__(message)
        self.check = check


@dataclasses.dataclass
class ConformanceReport:
    """What :func:`check_loss_conventions` verified.

    ``passed`` lists ``'check[device/dtype]'`` entries, ``skipped`` maps a
    check (or ``'autocast[cuda/float16]'``) to the reason it did not run.
    """

    loss: str
    devices: List[str]
    passed: List[str] = dataclasses.field(default_factory=list)
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        text = (f'{self.loss}: {len(self.passed)} convention checks passed '
                f'on {", ".join(self.devices)}')
        if self.skipped:
            text += f' (skipped: {", ".join(sorted(self.skipped))})'
        return text


# --- helpers ----------------------------------------------------------------

def _map_tensors(value: Any, func: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(value, Tensor):
        return func(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_map_tensors(v, func) for v in value)
    return value


def _cast_floating(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    return _map_tensors(
        value, lambda t: t.to(device=device, dtype=dtype)
        if t.is_floating_point() else t.to(device=device))


def _clone(value: Any) -> Any:
    return _map_tensors(value, lambda t: t.detach().clone())


def _same_tensors(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor):
        if not (isinstance(b, Tensor) and a.shape == b.shape
                and a.dtype == b.dtype):
            return False
        same = a == b
        if a.is_floating_point():
            same = same | (a.isnan() & b.isnan())
        return bool(same.all())
    if isinstance(a, (tuple, list)):
        return (isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same_tensors(x, y) for x, y in zip(a, b)))
    return a == b


def _fmt(value: Tensor) -> str:
    if value.numel() == 1:
        return f'{value.item():.8g}'
    flat = value.detach().flatten()[:6].tolist()
    more = ', ...' if value.numel() > 6 else ''
    return '[' + ', '.join(f'{v:.6g}' for v in flat) + more + ']'


def _type_name(cfg: dict) -> str:
    obj_type = cfg.get('type')
    return obj_type if isinstance(obj_type, str) else getattr(
        obj_type, '__name__', repr(obj_type))


def _expand_weight(weight: Tensor, ndim: int) -> Tensor:
    """Align ``weight`` with the leading dimensions of a loss of ``ndim``."""
    extra = ndim - weight.dim()
    return weight.reshape(weight.shape + (1,) * extra) if extra > 0 else weight


def _random_weight(shape: Sequence[int], device: torch.device,
                   dtype: torch.dtype, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    # strictly positive and uneven, so a loss that ignores weight shows it
    weight = torch.rand(tuple(shape), generator=generator,
                        dtype=torch.float64) * 1.75 + 0.25
    return weight.to(device=device, dtype=dtype)


@dataclasses.dataclass
class _Case:
    """Inputs of one device: float32 ``pred`` / ``target`` and a weight."""

    device: torch.device
    pred: Tensor
    target: Any
    weight: Tensor
    elementwise_shape: Tuple[int, ...]
    weight_shape: Tuple[int, ...]

    @property
    def tag(self) -> str:
        return f'[{self.device.type}/float32]'


class _Checker:
    """The conventions, one method each, for one loss config."""

    def __init__(self, cfg: dict, registry, rtol: float, atol: float,
                 float64_rtol: float, autocast_rtol: float,
                 autocast_atol: float) -> None:
        self.cfg = cfg
        self.registry = registry
        self.name = _type_name(cfg)
        self.rtol, self.atol = rtol, atol
        self.float64_rtol = float64_rtol
        self.autocast_rtol, self.autocast_atol = autocast_rtol, autocast_atol
        self.where = ''
        self.modules = {r: self.build(r) for r in _REDUCTIONS}
        self.scaled = {r: self.build(r, _LOSS_WEIGHT_SCALE) for r in _REDUCTIONS}
        self.muted = self.build('mean', 0.0)

    # building, calling, failing --------------------------------------------
    def build(self, reduction: str, loss_weight: float = 1.0) -> nn.Module:
        cfg = copy.deepcopy(self.cfg)
        cfg.update(reduction=reduction, loss_weight=loss_weight)
        loss = self.registry.build(cfg)
        if not isinstance(loss, nn.Module):
            raise TypeError(f'{self.name} built a {type(loss).__name__}, '
                            'not a torch.nn.Module')
        return loss

    def to(self, device: torch.device) -> None:
        for module in (*self.modules.values(), *self.scaled.values(),
                       self.muted):
            module.to(device)

    def fail(self, check: str, detail: str) -> NoReturn:
        raise ConventionError(
            f'{self.name} breaks the {check!r} convention{self.where}: '
            f'{detail}', check)

    def call(self, check: str, what: str, module: nn.Module, pred: Tensor,
             target: Any, **kwargs: Any) -> Tensor:
        """``module(pred, target, **kwargs)``; an exception or a result that is
        not a tensor is a failure of ``check``."""
        try:
            result = module(pred, target, **kwargs)
        except Exception as err:  # the loss under test may raise anything
            raise ConventionError(
                f'{self.name} breaks the {check!r} convention{self.where}: '
                f'{what}: the call raised {type(err).__name__}: {err}',
                check) from err
        if not isinstance(result, Tensor):
            self.fail(check, f'{what}: the loss returned a '
                      f'{type(result).__name__}, not a tensor')
        return result

    def assert_close(self, check: str, what: str, got: Tensor,
                     expected: Tensor, rtol: Optional[float] = None,
                     atol: Optional[float] = None) -> None:
        rtol = self.rtol if rtol is None else rtol
        atol = self.atol if atol is None else atol
        got64 = got.detach().to('cpu', torch.float64)
        expected64 = expected.detach().to('cpu', torch.float64)
        if got64.shape != expected64.shape:
            self.fail(check, f'{what}: got shape {tuple(got64.shape)}, '
                      f'expected {tuple(expected64.shape)}')
        if not bool(torch.isfinite(got64).all()):
            self.fail(check, f'{what}: got non-finite values {_fmt(got64)}')
        diff = (got64 - expected64).abs()
        tolerance = atol + rtol * expected64.abs()
        if bool((diff > tolerance).any()):
            worst = int(torch.argmax(diff - tolerance))
            g = got64.flatten()[worst].item()
            e = expected64.flatten()[worst].item()
            at = ('' if got64.numel() == 1 else
                  f' at flat index {worst} of shape {tuple(got64.shape)}')
            self.fail(check, f'{what}: got {g:.8g}, expected {e:.8g}{at} '
                      f'(abs diff {abs(g - e):.3g} > tolerance '
                      f'{atol:.1g} + {rtol:.1g} * |expected|)')

    def assert_zero(self, check: str, what: str, got: Tensor) -> None:
        self.assert_close(check, what, got, torch.zeros_like(got), 0.0, 0.0)

    def assert_finite_grad(self, check: str, what: str, leaf: Tensor) -> Tensor:
        if leaf.grad is None:
            self.fail(check, f'{what}: pred got no gradient (is the loss '
                      'detached from pred?)')
        grad = leaf.grad.detach()
        if not bool(torch.isfinite(grad).all()):
            n_bad = int((~torch.isfinite(grad)).sum())
            self.fail(check, f'{what}: the gradient has {n_bad} non-finite '
                      f'entries of {grad.numel()}, e.g. {_fmt(grad)}')
        return grad

    def expected_weighted(self, case: _Case, unweighted: Tensor) -> Tensor:
        return unweighted.detach() * _expand_weight(case.weight,
                                                    unweighted.dim())

    # the conventions ---------------------------------------------------------
    def check_reduction(self, case: _Case) -> None:
        check = 'reduction'
        none = self.call(check, "reduction='none'", self.modules['none'],
                         case.pred, case.target)
        if tuple(none.shape) != case.elementwise_shape:
            self.fail(check, f"reduction='none' gave shape "
                      f'{tuple(none.shape)}, expected the element-wise shape '
                      f'{case.elementwise_shape}')
        if none.device != case.pred.device:
            self.fail(check, f'the loss is on {none.device}, pred on '
                      f'{case.pred.device}')
        reduced = {}
        for mode in ('sum', 'mean'):
            reduced[mode] = self.call(check, f'reduction={mode!r}',
                                      self.modules[mode], case.pred,
                                      case.target)
            if reduced[mode].dim() != 0:
                self.fail(check, f'reduction={mode!r} gave shape '
                          f'{tuple(reduced[mode].shape)}, expected a scalar')
        count = math.prod(case.elementwise_shape)
        self.assert_close(check, "reduction='sum' against the sum of "
                          "reduction='none'", reduced['sum'], none.sum())
        self.assert_close(check, "reduction='sum' against reduction='mean' "
                          f'x element count {count}', reduced['sum'],
                          reduced['mean'] * count)

    def check_weight(self, case: _Case) -> None:
        check = 'weight'
        what = f'weight of shape {case.weight_shape}'
        none = self.call(check, "reduction='none'", self.modules['none'],
                         case.pred, case.target)
        expected_none = self.expected_weighted(case, none)
        expected = {'none': expected_none, 'sum': expected_none.sum(),
                    'mean': expected_none.mean()}
        for mode in _REDUCTIONS:
            got = self.call(check, f'{what}, reduction={mode!r}',
                            self.modules[mode], case.pred, case.target,
                            weight=case.weight)
            self.assert_close(check, f'{what} with reduction={mode!r} against '
                              'the element-wise loss x weight', got,
                              expected[mode])

    def check_avg_factor(self, case: _Case) -> None:
        check = 'avg_factor'
        none = self.call(check, "reduction='none'", self.modules['none'],
                         case.pred, case.target)
        expected_none = self.expected_weighted(case, none)
        expected = expected_none.sum() / (_AVG_FACTOR + AVG_FACTOR_EPS)
        for avg_factor in (_AVG_FACTOR,
                           torch.tensor(_AVG_FACTOR, device=case.device)):
            what = (f'avg_factor={_AVG_FACTOR} ({type(avg_factor).__name__}) '
                    "with reduction='mean'")
            got = self.call(check, what, self.modules['mean'], case.pred,
                            case.target, weight=case.weight,
                            avg_factor=avg_factor)
            self.assert_close(check, what + ' against weighted sum / '
                              '(avg_factor + eps)', got, expected)
        what = "avg_factor with reduction='none'"
        got = self.call(check, what, self.modules['none'], case.pred,
                        case.target, weight=case.weight, avg_factor=_AVG_FACTOR)
        self.assert_close(check, what + ' must be ignored: against the '
                          'element-wise loss x weight', got, expected_none)
        try:
            got = self.modules['sum'](case.pred, case.target,
                                      weight=case.weight,
                                      avg_factor=_AVG_FACTOR)
        except ValueError:
            return
        except Exception as err:  # the loss under test may raise anything
            self.fail(check, "avg_factor with reduction='sum' must raise "
                      f'ValueError, it raised {type(err).__name__}: {err}')
        self.fail(check, "avg_factor with reduction='sum' must raise "
                  f'ValueError, it returned {_fmt(got)}')

    def check_reduction_override(self, case: _Case) -> None:
        check = 'reduction_override'
        reference = {
            mode: self.call(check, f'reduction={mode!r}', self.modules[mode],
                            case.pred, case.target, weight=case.weight)
            for mode in _REDUCTIONS}
        for built in _REDUCTIONS:
            for override in _REDUCTIONS:
                what = (f'built with reduction={built!r}, called with '
                        f'reduction_override={override!r}')
                got = self.call(check, what, self.modules[built], case.pred,
                                case.target, weight=case.weight,
                                reduction_override=override)
                self.assert_close(check, what + ', against a loss built with '
                                  f'reduction={override!r}', got,
                                  reference[override])
        try:
            self.modules['mean'](case.pred, case.target,
                                 reduction_override='average')
        except ValueError:
            return
        except Exception as err:  # the loss under test may raise anything
            self.fail(check, "reduction_override='average' must raise "
                      f'ValueError, it raised {type(err).__name__}: {err}')
        self.fail(check, "reduction_override='average' must raise ValueError")

    def check_loss_weight(self, case: _Case) -> None:
        check = 'loss_weight'
        for mode in _REDUCTIONS:
            what = f'loss_weight={_LOSS_WEIGHT_SCALE} with reduction={mode!r}'
            got = self.call(check, what, self.scaled[mode], case.pred,
                            case.target)
            unit = self.call(check, f'reduction={mode!r}', self.modules[mode],
                             case.pred, case.target)
            self.assert_close(check, f'{what} against {_LOSS_WEIGHT_SCALE} x '
                              'the loss_weight=1 result', got,
                              _LOSS_WEIGHT_SCALE * unit)
        got = self.call(check, 'loss_weight=0', self.muted, case.pred,
                        case.target, weight=case.weight)
        self.assert_zero(check, 'loss_weight=0', got)

    def check_zero_weight(self, case: _Case) -> None:
        check = 'zero_weight'
        zeros = torch.zeros(case.weight_shape, device=case.device)
        for mode, kwargs in (('none', {}), ('sum', {}), ('mean', {}),
                             ('mean', {'avg_factor': _AVG_FACTOR})):
            what = f'all-zero weight, reduction={mode!r}' + (
                ' with avg_factor' if kwargs else '')
            leaf = case.pred.clone().requires_grad_(True)
            got = self.call(check, what, self.modules[mode], leaf,
                            case.target, weight=zeros, **kwargs)
            self.assert_zero(check, what + ': the loss', got)
            if not got.requires_grad:
                self.fail(check, f'{what}: the loss does not require grad '
                          'although pred does')
            got.sum().backward()
            grad = self.assert_finite_grad(check, what, leaf)
            self.assert_zero(check, what + ': the gradient', grad)

    def check_gradients(self, case: _Case) -> None:
        check = 'gradients'
        for mode in ('mean', 'sum'):
            what = f'reduction={mode!r}'
            leaf = case.pred.clone().requires_grad_(True)
            got = self.call(check, what, self.modules[mode], leaf, case.target,
                            weight=case.weight)
            if not got.requires_grad:
                self.fail(check, f'{what}: the loss does not require grad '
                          'although pred does')
            got.backward()
            self.assert_finite_grad(check, what, leaf)

    def check_inputs_unchanged(self, case: _Case, pristine: Tuple[Tensor, Any]
                               ) -> None:
        check = 'inputs_unchanged'
        for mode in _REDUCTIONS:
            self.call(check, f'reduction={mode!r}', self.modules[mode],
                      case.pred, case.target, weight=case.weight)
        self.assert_unchanged(case, pristine)

    def assert_unchanged(self, case: _Case, pristine: Tuple[Tensor, Any]
                         ) -> None:
        for name, now, before in (('pred', case.pred, pristine[0]),
                                  ('target', case.target, pristine[1])):
            if not _same_tensors(now, before):
                self.fail('inputs_unchanged',
                          f'the call modified {name} in place')

    def check_float64(self, case: _Case, pred64: Tensor, target64: Any
                      ) -> None:
        check = 'float64'
        pred32 = pred64.float()
        target32 = _cast_floating(target64, case.device, torch.float32)
        weight64 = case.weight.double()
        for mode in _REDUCTIONS:
            what = f'reduction={mode!r}'
            leaf = pred64.clone().requires_grad_(True)
            got = self.call(check, what, self.modules[mode], leaf, target64,
                            weight=weight64)
            if got.dtype != torch.float64:
                self.fail(check, f'{what}: float64 inputs gave a {got.dtype} '
                          'result')
            expected = self.call(check, what + ' in float32',
                                 self.modules[mode], pred32, target32,
                                 weight=case.weight)
            self.assert_close(check, f'{what} against float32 on the same '
                              'values', got, expected, rtol=self.float64_rtol)
            got.sum().backward()
            self.assert_finite_grad(check, what, leaf)

    def check_autocast(self, case: _Case, low: torch.dtype) -> None:
        check = 'autocast'
        # a head run under autocast hands the loss a low-precision pred; the
        # float32 reference sees the same rounded values
        pred_low = case.pred.to(low)
        for mode in ('mean', 'sum'):
            what = f'reduction={mode!r} with a {low} pred'
            leaf = pred_low.clone().requires_grad_(True)
            with torch.autocast(device_type=case.device.type, dtype=low):
                got = self.call(check, what, self.modules[mode], leaf,
                                case.target, weight=case.weight)
            expected = self.call(check, f'reduction={mode!r} in float32',
                                 self.modules[mode], pred_low.float(),
                                 case.target, weight=case.weight)
            self.assert_close(check, what + ' against float32 on the same '
                              'values', got, expected, rtol=self.autocast_rtol,
                              atol=self.autocast_atol)
            got.float().backward()
            self.assert_finite_grad(check, what, leaf)


def _autocast_unsupported(device: torch.device, dtype: torch.dtype
                          ) -> Optional[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            with torch.autocast(device_type=device.type, dtype=dtype):
                pass
    except (RuntimeError, ValueError, UserWarning) as err:
        return str(err)
    return None


# --- the kit ------------------------------------------------------------------

def check_loss_conventions(
        cfg: dict,
        make_inputs: Union[InputMaker, Sequence[Any]],
        *,
        elementwise_shape: Optional[Sequence[int]] = None,
        weight_shape: Optional[Sequence[int]] = None,
        devices: Optional[Iterable[Union[str, torch.device]]] = None,
        skip: Iterable[str] = (),
        registry=None,
        rtol: float = 1e-5,
        atol: float = 1e-6,
        float64_rtol: float = 1e-4,
        autocast_rtol: float = 1e-2,
        autocast_atol: float = 1e-4,
        seed: int = 0) -> ConformanceReport:
    """Build ``cfg`` and check every convention of the package's losses.

    Args:
        cfg: loss config, e.g. ``dict(type='FocalLoss', gamma=2.0)``;
            ``reduction`` and ``loss_weight`` in it are replaced by the values
            each check needs. ``type`` may be a registered name or a class.
        make_inputs: ``make_inputs(device, dtype) -> (pred, target)`` or
            ``(pred, target, weight_shape)``, or sample tensors
            ``(pred, target)``. ``pred`` is a floating tensor; ``target`` a
            tensor or a tuple of tensors.
        elementwise_shape: shape of the ``reduction='none'`` result; default
            ``pred.shape``. Losses that reduce a dimension (QFL, DFL, the IoU
            family) give it, e.g. ``(N,)``.
        weight_shape: shape of the ``weight`` to try; default the element-wise
            shape (a shape returned by ``make_inputs`` wins). Fewer
            dimensions than the element-wise loss align with its leading ones.
        devices: devices to run on; default CPU, plus CUDA when available.
        skip: names from :data:`CHECKS` not to run (recorded in the report).
        registry: registry to build from; default ``yolo_losses.MODELS``.
        rtol, atol: float32 tolerances of the exact conventions.
        float64_rtol: relative tolerance of float64 against float32.
        autocast_rtol, autocast_atol: tolerances of autocast against float32.
        seed: seed of ``make_inputs`` and of the weights the kit draws.

    Returns:
        A :class:`ConformanceReport` of the checks run.

    Raises:
        ConventionError: a convention is broken; the message says which one,
            where, and the numbers.
        TypeError, ValueError: bad arguments to the kit itself (``cfg``
            without ``type``, an unknown name in ``skip``, a ``weight_shape``
            that does not align with the element-wise shape, inputs that are
            not ``(pred, target)``).
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'cfg must be a dict with a "type" key, got {cfg!r}')
    skip = set(skip)
    unknown = skip - set(CHECKS)
    if unknown:
        raise ValueError(f'skip has unknown check names {sorted(unknown)}; '
                         f'known: {", ".join(CHECKS)}')
    if registry is None:
        from .registry import MODELS as registry
    if devices is None:
        devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    devices = [torch.device(d) for d in devices]

    checker = _Checker(cfg, registry, rtol, atol, float64_rtol, autocast_rtol,
                       autocast_atol)
    report = ConformanceReport(loss=checker.name,
                               devices=[str(d) for d in devices])
    for check in sorted(skip):
        report.skipped[check] = 'skipped by the caller'

    def inputs_for(device: torch.device, dtype: torch.dtype):
        if callable(make_inputs):
            with torch.random.fork_rng(
                    devices=[device] if device.type == 'cuda' else []):
                torch.manual_seed(seed)
                made = make_inputs(device, dtype)
        else:
            made = _cast_floating(tuple(make_inputs), device, dtype)
        if not isinstance(made, (tuple, list)) or len(made) not in (2, 3):
            raise TypeError('make_inputs must give (pred, target) or '
                            f'(pred, target, weight_shape), got {made!r}')
        pred, target = made[0], made[1]
        if not isinstance(pred, Tensor) or not pred.is_floating_point():
            raise TypeError('make_inputs must give a floating-point pred '
                            f'tensor, got {pred!r}')
        made_weight_shape = tuple(made[2]) if len(made) == 3 else None
        return pred.detach(), _clone(target), made_weight_shape

    for device in devices:
        checker.to(device)
        checker.where = f' on {device}/float32'
        pred, target, made_weight_shape = inputs_for(device, torch.float32)
        el_shape = (tuple(elementwise_shape) if elementwise_shape is not None
                    else tuple(pred.shape))
        w_shape = made_weight_shape or (tuple(weight_shape) if weight_shape
                                        is not None else el_shape)
        aligned = (tuple(w_shape)
                   + (1,) * max(len(el_shape) - len(w_shape), 0))
        try:
            aligns = torch.broadcast_shapes(aligned, el_shape) == el_shape
        except RuntimeError:
            aligns = False
        if not aligns:
            raise ValueError(f'weight_shape {w_shape} does not align with the '
                             f'element-wise shape {el_shape}')
        case = _Case(device, pred, target,
                     _random_weight(w_shape, device, torch.float32, seed + 1),
                     el_shape, w_shape)
        pristine = (_clone(pred), _clone(target))

        for check in CHECKS:
            if check in skip:
                continue
            if check == 'float64':
                checker.where = f' on {device}/float64'
                pred64, target64, _ = inputs_for(device, torch.float64)
                checker.check_float64(case, pred64, target64)
                report.passed.append(f'float64[{device.type}/float64]')
            elif check == 'autocast':
                for low in _LOW_PRECISION:
                    low_name = str(low).replace('torch.', '')
                    tag = f'autocast[{device.type}/{low_name}]'
                    reason = _autocast_unsupported(device, low)
                    if reason is not None:
                        report.skipped[tag] = reason
                        continue
                    checker.where = f' on {device} under autocast({low_name})'
                    checker.check_autocast(case, low)
                    report.passed.append(tag)
            elif check == 'inputs_unchanged':
                checker.check_inputs_unchanged(case, pristine)
                report.passed.append(check + case.tag)
            else:
                getattr(checker, f'check_{check}')(case)
                # a loss that edits its inputs would skew every later check
                checker.assert_unchanged(case, pristine)
                report.passed.append(check + case.tag)
        checker.where = ''
    return report

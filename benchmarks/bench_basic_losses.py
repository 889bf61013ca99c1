"""Forward + backward time of the basic losses against plain PyTorch and peers.

Side by side in one run, on the same inputs, for each loss:

- ``ours``: the registered loss built with ``yolo_losses.build_loss`` and
  ``validate=False`` (the fast path); ``ours+validate``: the same with the
  value checks on (one host sync each);
- ``eager``: the textbook formula written out in this file with plain
  PyTorch ops (no fusion, no checks), the baseline a user would write;
- ``torch``: ``F.binary_cross_entropy_with_logits`` for the sigmoid BCE;
- ``torchvision``: ``torchvision.ops`` ``sigmoid_focal_loss``,
  ``generalized_box_iou_loss``, ``distance_box_iou_loss``,
  ``complete_box_iou_loss``, when torchvision imports (otherwise one line
  says ``skipped: torchvision not importable``).

Element-wise classification losses (sigmoid ``CrossEntropyLoss``,
``FocalLoss``, ``VarifocalLoss``, ``QualityFocalLoss``) get ``[B, A, C]``
logits (a YOLOv8 head: 8 x 8400 x 80 by default) flattened to ``[B*A, C]``,
with soft targets on ~5% of the priors; the IoU family gets ``N`` pairs of
xyxy boxes (100k by default). Every loss uses ``reduction='mean'``.

A third group (``--only modern``) times the modern box losses (Wise-IoU,
MPDIoU, Inner-/Focaler-IoU, Shape-IoU, NWD, Alpha-IoU, Efficient-IoU,
PIoU) side by side with ``CIoULoss`` on the same box pairs (1M by default),
in one run: its own table, with each loss's time over ``CIoULoss``'s
(``style='yolo'``, the YOLO default) and, for the record, mmdet's CIoU;
the calls are interleaved across losses so that load changes on a shared
machine hit all of them alike.

Columns: loss, impl, shape, dtype, ms fwd+bwd (median over ``--repeat``
timed calls after ``--warmup`` untimed ones; CUDA is synchronised around each
call), ratio to ours (impl ms / ours ms: above 1 is slower than ours). On
CUDA a column adds the peak memory of one call above what was allocated
before it. After the table, any implementation whose value differs from
ours by more than 1e-3 relative is listed (the peers' eps choices differ
from mmdet's by less than that).

Usage::

    python benchmarks/bench_basic_losses.py                   # CPU, default sizes
    python benchmarks/bench_basic_losses.py --size tiny --repeat 1
    python benchmarks/bench_basic_losses.py --device cuda --size large --dtype float16
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

if __package__ in (None, ''):
    # Run as a script from a checkout: make the package importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from yolo_losses import build_loss  # noqa: E402

# (logits [B, A, C], number of box pairs)
SIZES: Dict[str, Tuple[Tuple[int, int, int], int]] = {
    'tiny': ((2, 64, 8), 256),
    'small': ((2, 8400, 80), 10_000),
    'default': ((8, 8400, 80), 100_000),
    'large': ((32, 8400, 80), 1_000_000),
}
# box pairs of the modern box-loss group, per --size
MODERN_BOXES: Dict[str, int] = {'tiny': 256, 'small': 100_000, 'default': 1_000_000,
                                'large': 1_000_000}
# (row name, config); the first is the baseline of the "x CIoU" column
MODERN_BOX_LOSSES: List[Tuple[str, dict]] = [
    ("CIoULoss(style='yolo')", dict(type='CIoULoss', style='yolo')),
    ('CIoULoss', dict(type='CIoULoss')),
    ('WIoULoss(v3)', dict(type='WIoULoss')),
    ('WIoULoss(v1)', dict(type='WIoULoss', version='v1')),
    ('MPDIoULoss', dict(type='MPDIoULoss', img_size=(640, 640))),
    ('InnerIoULoss(CIoU)', dict(type='InnerIoULoss', loss=dict(type='CIoULoss', style='yolo'))),
    ('FocalerIoULoss(CIoU)', dict(type='FocalerIoULoss',
                                  loss=dict(type='CIoULoss', style='yolo'))),
    ('ShapeIoULoss', dict(type='ShapeIoULoss')),
    ('NWDLoss', dict(type='NWDLoss')),
    ('AlphaIoULoss(ciou)', dict(type='AlphaIoULoss')),
    ('EfficientIoULoss', dict(type='EfficientIoULoss')),
    ('EfficientIoULoss(gamma=0.5)', dict(type='EfficientIoULoss', gamma=0.5)),
    ('PIoULoss(v1)', dict(type='PIoULoss')),
    ('PIoULoss(v2)', dict(type='PIoULoss', version=2)),
]
DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16,
          'float64': torch.float64}
POSITIVE_FRACTION = 0.05
VALUE_RTOL = 1e-3

# --- the formulas written out in plain PyTorch --------------------------------


def eager_bce(logits: Tensor, target: Tensor) -> Tensor:
    """Element-wise BCE on logits: max(x, 0) - x t + log(1 + exp(-|x|))."""
    return logits.clamp(min=0) - logits * target + torch.log1p(torch.exp(-logits.abs()))


def eager_sigmoid_ce(logits: Tensor, target: Tensor) -> Tensor:
    return eager_bce(logits, target).mean()


def eager_focal(logits: Tensor, target: Tensor, gamma: float = 2.0,
                alpha: float = 0.25) -> Tensor:
    prob = logits.sigmoid()
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (eager_bce(logits, target) * alpha_t * (1 - p_t) ** gamma).mean()


def eager_varifocal(logits: Tensor, target: Tensor, alpha: float = 0.75,
                    gamma: float = 2.0) -> Tensor:
    prob = logits.sigmoid()
    positive = (target > 0).to(logits.dtype)
    focal_weight = target * positive + alpha * (prob - target).abs() ** gamma * (1 - positive)
    return (eager_bce(logits, target) * focal_weight).mean()


def eager_quality_focal(logits: Tensor, label: Tensor, score: Tensor,
                        beta: float = 2.0) -> Tensor:
    num_classes = logits.shape[1]
    # label == num_classes is the background: its one-hot row is all zero
    one_hot = F.one_hot(label, num_classes + 1)[:, :num_classes].bool()
    soft = one_hot.to(logits.dtype) * score[:, None]
    prob = logits.sigmoid()
    negative = eager_bce(logits, torch.zeros_like(logits)) * prob ** beta
    positive = eager_bce(logits, soft) * (soft - prob).abs() ** beta
    return torch.where(one_hot, positive, negative).sum(dim=1).mean()


def _box_terms(pred: Tensor, target: Tensor, eps: float):
    """Overlap, union (+eps), IoU, enclosing width/height, centre offsets."""
    overlap_wh = (torch.min(pred[:, 2:], target[:, 2:])
                  - torch.max(pred[:, :2], target[:, :2])).clamp(min=0)
    overlap = overlap_wh[:, 0] * overlap_wh[:, 1]
    pred_wh = pred[:, 2:] - pred[:, :2]
    target_wh = target[:, 2:] - target[:, :2]
    union = pred_wh[:, 0] * pred_wh[:, 1] + target_wh[:, 0] * target_wh[:, 1] - overlap + eps
    enclose_wh = (torch.max(pred[:, 2:], target[:, 2:])
                  - torch.min(pred[:, :2], target[:, :2])).clamp(min=0)
    offset = (target[:, :2] + target[:, 2:] - pred[:, :2] - pred[:, 2:]) / 2
    return overlap, union, overlap / union, enclose_wh, offset, pred_wh, target_wh


def eager_iou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    _, _, iou, *_ = _box_terms(pred, target, eps)
    return -iou.clamp(min=eps).log().mean()


def eager_giou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    _, union, iou, enclose_wh, *_ = _box_terms(pred, target, eps)
    enclose = enclose_wh[:, 0] * enclose_wh[:, 1] + eps
    return (1 - (iou - (enclose - union) / enclose)).mean()


def _eager_diou_terms(pred: Tensor, target: Tensor, eps: float):
    _, _, iou, enclose_wh, offset, pred_wh, target_wh = _box_terms(pred, target, eps)
    distance = (offset ** 2).sum(1) / ((enclose_wh ** 2).sum(1) + eps)
    return iou, distance, pred_wh, target_wh


def eager_diou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    iou, distance, *_ = _eager_diou_terms(pred, target, eps)
    return (1 - iou + distance).mean()


def eager_ciou(pred: Tensor, target: Tensor, eps: float = 1e-6,
               gated: bool = True) -> Tensor:
    """``gated``: mmdet's alpha (IoU > 0.5 only); else ultralytics'."""
    iou, distance, pred_wh, target_wh = _eager_diou_terms(pred, target, eps)
    v = (4 / math.pi ** 2) * (torch.atan(target_wh[:, 0] / (target_wh[:, 1] + eps))
                              - torch.atan(pred_wh[:, 0] / (pred_wh[:, 1] + eps))) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
        if gated:
            alpha = alpha * (iou > 0.5)
    return (1 - (iou - distance - alpha * v)).mean()


def eager_eiou(pred: Tensor, target: Tensor, eps: float = 1e-6,
               smooth_point: float = 0.1) -> Tensor:
    """mmdet's smooth extended-IoU loss, case by case on the overlap sign."""
    overlap_wh = (torch.min(pred[:, 2:], target[:, 2:])
                  - torch.max(pred[:, :2], target[:, :2]))
    left_top = torch.min(pred[:, :2], target[:, :2])
    low = torch.max(pred[:, :2], target[:, :2]) - left_top     # a, c
    high = torch.min(pred[:, 2:], target[:, 2:]) - left_top    # b, d
    apart = overlap_wh < 0
    # an axis where the boxes are apart contributes (low + high) to the
    # other axis' factor; both apart: 2 (b d - a c)
    factor_x = torch.where(apart[:, 1], low[:, 0] + high[:, 0], overlap_wh[:, 0])
    factor_y = torch.where(apart[:, 0], low[:, 1] + high[:, 1], overlap_wh[:, 1])
    both = 2 * (high[:, 0] * high[:, 1] - low[:, 0] * low[:, 1])
    inter = torch.where(apart[:, 0] & apart[:, 1], both,
                        torch.where(apart[:, 0], overlap_wh[:, 0] * factor_y,
                                    factor_x * overlap_wh[:, 1]))
    pred_wh = pred[:, 2:] - pred[:, :2]
    target_wh = target[:, 2:] - target[:, :2]
    union = pred_wh.prod(1) + target_wh.prod(1) - inter + eps
    distance = 1 - inter / union
    loss = torch.where(distance < smooth_point, 0.5 * distance ** 2 / smooth_point,
                       distance - 0.5 * smooth_point)
    return loss.mean()


def eager_siou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    _, _, iou, enclose_wh, offset, pred_wh, target_wh = _box_terms(pred, target, eps)
    offset = offset + eps
    enclose_wh = enclose_wh.clamp(min=eps)
    sin = offset.abs() / offset.norm(dim=1, keepdim=True)
    sin_alpha = torch.where(sin[:, 0] > math.sqrt(0.5), sin[:, 1], sin[:, 0])
    angle = torch.cos(2 * torch.asin(sin_alpha) - math.pi / 2)
    rho = (offset / enclose_wh) ** 2
    distance = 2 - torch.exp((2 - angle)[:, None] * rho).sum(1)
    pred_wh = pred_wh + torch.tensor([0.0, eps], device=pred.device)
    target_wh = target_wh + torch.tensor([0.0, eps], device=pred.device)
    omega = (pred_wh - target_wh).abs() / torch.max(pred_wh, target_wh)
    shape = ((1 - torch.exp(-omega)) ** 4).sum(1)
    return (1 - (iou - 0.5 * (distance + shape)).clamp(-1, 1)).mean()


# --- cases -----------------------------------------------------------------------

@dataclass
class Impl:
    name: str
    call: Optional[Callable[[], Tensor]]  # None: skipped
    note: str = ''


@dataclass
class Case:
    loss: str
    shape: str
    leaf: Tensor                  # the input the gradient flows to
    impls: List[Impl]


def _ours(cfg: dict, make_call: Callable[[torch.nn.Module], Callable[[], Tensor]]) -> List[Impl]:
    impls = []
    for name, validate in (('ours', False), ('ours+validate', True)):
        try:
            loss = build_loss(dict(cfg, validate=validate))
        except Exception as err:  # a loss another engineer has not landed yet
            impls.append(Impl(name, None, f'skipped: {cfg["type"]} not buildable '
                                          f'({type(err).__name__}: {err})'))
            continue
        impls.append(Impl(name, make_call(loss)))
    return impls


def _torchvision_ops():
    try:
        import torchvision.ops as tv_ops
    except Exception:  # not installed, or built for another torch
        return None
    return tv_ops


def classification_cases(logits_shape: Sequence[int], device: torch.device,
                         dtype: torch.dtype, tv_ops) -> List[Case]:
    generator = torch.Generator(device='cpu').manual_seed(0)
    batch, priors, num_classes = logits_shape
    rows = batch * priors
    logits = (torch.randn(rows, num_classes, generator=generator) * 2).to(device, dtype)
    positive = torch.rand(rows, generator=generator) < POSITIVE_FRACTION
    label = torch.randint(0, num_classes, (rows,), generator=generator)
    label = torch.where(positive, label, torch.full_like(label, num_classes)).to(device)
    score = (torch.rand(rows, generator=generator) * positive).to(device, dtype)
    soft = torch.zeros(rows, num_classes + 1, dtype=dtype, device=device)
    soft.scatter_(1, label[:, None], score[:, None])
    soft = soft[:, :num_classes].contiguous()
    leaf = logits.clone().requires_grad_()
    shape = 'x'.join(str(s) for s in logits_shape)

    def with_target(target):
        return lambda loss: (lambda: loss(leaf, target))

    cases = [
        Case('CrossEntropyLoss(use_sigmoid)', shape, leaf,
             _ours(dict(type='CrossEntropyLoss', use_sigmoid=True), with_target(soft))
             + [Impl('eager', lambda: eager_sigmoid_ce(leaf, soft)),
                Impl('torch', lambda: F.binary_cross_entropy_with_logits(leaf, soft))]),
        Case('FocalLoss', shape, leaf,
             _ours(dict(type='FocalLoss'), with_target(soft))
             + [Impl('eager', lambda: eager_focal(leaf, soft))]
             + ([Impl('torchvision', lambda: tv_ops.sigmoid_focal_loss(
                 leaf, soft, alpha=0.25, gamma=2.0, reduction='mean'))] if tv_ops else [])),
        Case('VarifocalLoss', shape, leaf,
             _ours(dict(type='VarifocalLoss'), with_target(soft))
             + [Impl('eager', lambda: eager_varifocal(leaf, soft))]),
        Case('QualityFocalLoss', shape, leaf,
             _ours(dict(type='QualityFocalLoss'), with_target((label, score)))
             + [Impl('eager', lambda: eager_quality_focal(leaf, label, score))]),
    ]
    return cases


def _box_pairs(num_boxes: int, device: torch.device, dtype: torch.dtype):
    """``num_boxes`` xyxy targets in a 640-pixel image and jittered
    predictions of positive size."""
    generator = torch.Generator(device='cpu').manual_seed(1)
    xy = torch.rand(num_boxes, 2, generator=generator) * 600
    wh = torch.rand(num_boxes, 2, generator=generator) * 100 + 4
    target = torch.cat([xy, xy + wh], 1)
    jitter = torch.randn(num_boxes, 4, generator=generator) * 6
    pred = target + jitter
    pred = torch.cat([pred[:, :2], torch.max(pred[:, 2:], pred[:, :2] + 1)], 1)
    return pred.to(device, dtype), target.to(device, dtype)


def box_cases(num_boxes: int, device: torch.device, dtype: torch.dtype, tv_ops) -> List[Case]:
    pred, target = _box_pairs(num_boxes, device, dtype)
    leaf = pred.clone().requires_grad_()
    shape = f'{num_boxes}x4'

    def boxes(loss):
        return lambda: loss(leaf, target)

    def tv(name):
        if tv_ops is None:
            return []
        function = getattr(tv_ops, name)
        return [Impl('torchvision', lambda: function(leaf, target, reduction='mean'))]

    return [
        Case('IoULoss', shape, leaf, _ours(dict(type='IoULoss'), boxes)
             + [Impl('eager', lambda: eager_iou(leaf, target))]),
        Case('GIoULoss', shape, leaf, _ours(dict(type='GIoULoss'), boxes)
             + [Impl('eager', lambda: eager_giou(leaf, target))] + tv('generalized_box_iou_loss')),
        Case('DIoULoss', shape, leaf, _ours(dict(type='DIoULoss'), boxes)
             + [Impl('eager', lambda: eager_diou(leaf, target))] + tv('distance_box_iou_loss')),
        Case('CIoULoss', shape, leaf, _ours(dict(type='CIoULoss'), boxes)
             + [Impl('eager', lambda: eager_ciou(leaf, target))]),
        Case("CIoULoss(style='yolo')", shape, leaf,
             _ours(dict(type='CIoULoss', style='yolo'), boxes)
             + [Impl('eager', lambda: eager_ciou(leaf, target, eps=1e-7, gated=False))]
             + tv('complete_box_iou_loss')),
        Case('EIoULoss', shape, leaf, _ours(dict(type='EIoULoss'), boxes)
             + [Impl('eager', lambda: eager_eiou(leaf, target))]),
        Case('SIoULoss', shape, leaf, _ours(dict(type='SIoULoss'), boxes)
             + [Impl('eager', lambda: eager_siou(leaf, target))]),
    ]


# --- timing ----------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(call: Callable[[], Tensor], leaf: Tensor, device: torch.device,
              warmup: int, repeat: int) -> Tuple[float, float, Optional[float]]:
    """Median ms of forward + backward, the loss value, CUDA peak MiB."""
    value = None
    for _ in range(warmup):
        leaf.grad = None
        out = call()
        out.backward()
    times = []
    peak = None
    for index in range(repeat):
        leaf.grad = None
        if device.type == 'cuda' and index == 0:
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        _sync(device)
        start = time.perf_counter()
        out = call()
        out.backward()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
        if device.type == 'cuda' and index == 0:
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
        value = float(out.detach().double())
    leaf.grad = None
    return statistics.median(times), value, peak


def run(cases: List[Case], device: torch.device, dtype: torch.dtype, warmup: int,
        repeat: int) -> Tuple[List[List[str]], List[str]]:
    rows, notes = [], []
    cuda = device.type == 'cuda'
    for case in cases:
        results = {}
        for impl in case.impls:
            if impl.call is None:
                rows.append([case.loss, impl.name, case.shape, str(dtype).replace('torch.', ''),
                             impl.note, '-'] + (['-'] if cuda else []))
                continue
            results[impl.name] = time_call(impl.call, case.leaf, device, warmup, repeat)
        ours = results.get('ours')
        for impl in case.impls:
            if impl.name not in results:
                continue
            ms, value, peak = results[impl.name]
            ratio = f'{ms / ours[0]:.2f}' if ours else '-'
            row = [case.loss, impl.name, case.shape, str(dtype).replace('torch.', ''),
                   f'{ms:.3f}', ratio]
            if cuda:
                row.append(f'{peak:.1f}' if peak is not None else '-')
            rows.append(row)
            if ours and impl.name != 'ours':
                reference = ours[1]
                difference = abs(value - reference) / max(abs(reference), 1e-12)
                if not math.isfinite(difference) or difference > VALUE_RTOL:
                    notes.append(f'{case.loss} {impl.name}: value {value:.6g} vs ours '
                                 f'{reference:.6g} (relative difference {difference:.2e})')
    return rows, notes


def modern_box_rows(num_boxes: int, device: torch.device, dtype: torch.dtype,
                    warmup: int, repeat: int) -> List[List[str]]:
    """The modern box losses and CIoU on the same pairs: ms with validation
    off and on, and the ratio of each (off) to ``CIoULoss(style='yolo')``
    (off). Losses are in training mode (WIoU's running-mean update runs).

    The calls are interleaved (round ``r`` times every loss once, then round
    ``r + 1``), so a change of machine load during the run hits every loss
    alike instead of skewing the ratios; each time is a median over rounds.
    """
    pred, target = _box_pairs(num_boxes, device, dtype)
    leaf = pred.clone().requires_grad_()
    dtype_name = str(dtype).replace('torch.', '')
    rows: Dict[str, List[str]] = {}
    calls: List[Tuple[str, int, Callable[[], Tensor]]] = []
    for name, cfg in MODERN_BOX_LOSSES:
        for index, validate in enumerate((False, True)):
            try:
                loss = build_loss(dict(cfg, validate=validate)).to(device).train()
            except Exception as err:  # not on this branch
                rows[name] = [name, f'{num_boxes}x4', dtype_name,
                              f'skipped: {type(err).__name__}: {err}', '-', '-']
                break
            calls.append((name, index, lambda loss=loss: loss(leaf, target)))
    for _, _, call in calls:
        time_call(call, leaf, device, warmup, 1)
    times: Dict[Tuple[str, int], List[float]] = {}
    for _ in range(repeat):
        for name, index, call in calls:
            if name in rows:
                continue
            times.setdefault((name, index), []).append(
                time_call(call, leaf, device, 0, 1)[0])
    baseline = None
    for name, _ in MODERN_BOX_LOSSES:
        if name in rows:
            continue
        off = statistics.median(times[(name, 0)])
        on = statistics.median(times[(name, 1)])
        if baseline is None:
            baseline = off
        rows[name] = [name, f'{num_boxes}x4', dtype_name, f'{off:.3f}', f'{on:.3f}',
                      f'{off / baseline:.2f}']
    return [rows[name] for name, _ in MODERN_BOX_LOSSES]


def render_modern(rows: List[List[str]]) -> str:
    header = ['loss', 'shape', 'dtype', 'ms fwd+bwd', 'ms +validate', "x CIoU(yolo)"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths)),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return '\n'.join(lines)


def render(rows: List[List[str]], cuda: bool) -> str:
    header = ['loss', 'impl', 'shape', 'dtype', 'ms fwd+bwd', 'ratio to ours']
    if cuda:
        header.append('peak MiB')
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths)),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument('--size', default='default', choices=sorted(SIZES),
                        help='logits [B, A, C] and box count: ' + ', '.join(
                            f'{k}={"x".join(map(str, v[0]))}/{v[1]}' for k, v in SIZES.items()))
    parser.add_argument('--dtype', default='float32', choices=sorted(DTYPES),
                        help='dtype of the inputs (ours computes half types in float32)')
    parser.add_argument('--repeat', type=int, default=10, help='timed calls (median)')
    parser.add_argument('--warmup', type=int, default=None,
                        help='untimed calls first (default: 2, 1 when --repeat is 1)')
    parser.add_argument('--only', choices=('classification', 'boxes', 'modern'), default=None,
                        help='run one group only')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error('--repeat must be >= 1')
    if args.warmup is None:
        args.warmup = 1 if args.repeat == 1 else 2
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda but CUDA is not available', file=sys.stderr)
        return 2
    dtype = DTYPES[args.dtype]
    logits_shape, num_boxes = SIZES[args.size]
    tv_ops = _torchvision_ops()
    print(f'torch {torch.__version__}, device {device}'
          + (f' ({torch.cuda.get_device_name(device)})' if device.type == 'cuda' else
             f', {torch.get_num_threads()} threads')
          + f', size {args.size}, dtype {args.dtype}, median of {args.repeat} after '
            f'{args.warmup} warm-up')
    if tv_ops is None:
        print('skipped: torchvision not importable')
    cases = []
    if args.only in (None, 'classification'):
        cases += classification_cases(logits_shape, device, dtype, tv_ops)
    if args.only in (None, 'boxes'):
        cases += box_cases(num_boxes, device, dtype, tv_ops)
    if cases:
        rows, notes = run(cases, device, dtype, args.warmup, args.repeat)
        print(render(rows, device.type == 'cuda'))
        if notes:
            print(f'\nvalues differing from ours by more than {VALUE_RTOL:g} relative:')
            print('\n'.join('  ' + n for n in notes))
        else:
            print(f'\nall values agree with ours within {VALUE_RTOL:g} relative')
    if args.only in (None, 'modern'):
        print(f'\nmodern box losses vs CIoULoss, {MODERN_BOXES[args.size]} box pairs, '
              'training mode:')
        print(render_modern(modern_box_rows(MODERN_BOXES[args.size], device, dtype,
                                            args.warmup, args.repeat)))
    return 0


if __name__ == '__main__':
    sys.exit(main())

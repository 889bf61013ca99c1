"""Forward + backward of the composite YOLO losses against their peers.

Side by side in one run, on the same inputs:

- ours: ``YOLOv3Loss`` (each ``style``), ``YOLOv5Loss``, ``YOLOv8Loss``,
  each with validation on and off (``max_boxes`` given in both), and with
  ``--compile`` also under ``torch.compile(fullgraph=True)``;
- peers, when importable: ultralytics ``v8DetectionLoss`` (8.4.190) and
  yolov5 ``ComputeLoss`` (7.0.14), built with a stand-in model object that
  exposes only what their constructors read. They are never project
  requirements: see ``benchmarks/README.md`` for a separate venv.

Columns: case, implementation, validate, ms (median of ``--repeats`` calls
after ``--warmup``), ratio to the peer of the same family, ATen operators
per call (forward + backward, views and allocations left out: a
device-independent count of kernel launches), host syncs per
call (CUDA: warnings of ``torch.cuda.set_sync_debug_mode('warn')`` during
one call; CPU: n/a), peak memory of one call (CUDA:
``torch.cuda.max_memory_allocated`` above what was allocated before the
call; CPU: growth of the process's peak resident set, Linux ``VmHWM`` after
resetting it through ``/proc/self/clear_refs``, n/a elsewhere), and for the
peers the largest relative difference of their loss components from ours
on the same inputs (a check that the race is fair).

Usage::

    python benchmarks/bench_composite_losses.py                  # full matrix
    python benchmarks/bench_composite_losses.py --quick          # tiny sizes
    python benchmarks/bench_composite_losses.py --batch-sizes 16 --boxes 8 \
        --impl ours-v8 ultralytics-v8 --markdown benchmarks/results/x.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

if __package__ in (None, ''):
    # Run as a script from a checkout: make the package importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yolo_losses  # noqa: E402
from yolo_losses import build_loss  # noqa: E402

STRIDES = (8, 16, 32)
ANCHORS_PX = ((10, 13), (16, 30), (33, 23)), ((30, 61), (62, 45), (59, 119)), \
    ((116, 90), (156, 198), (373, 326))
NUM_ANCHORS = 3
REG_MAX = 16
V3_STYLES = ('keras', 'darknet', 'pytorch_yolov3')
IMPLEMENTATIONS = ('ours-v3', 'ours-v5', 'ours-v8', 'ultralytics-v8', 'yolov5')
FAMILY = {'ours-v3': 'v3', 'ours-v5': 'v5', 'ours-v8': 'v8',
          'ultralytics-v8': 'v8', 'yolov5': 'v5'}
PEER_OF = {'v5': 'yolov5', 'v8': 'ultralytics-v8'}


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------

@dataclass
class Case:
    batch: int
    img: int
    num_classes: int
    boxes: int            # per image

    @property
    def name(self) -> str:
        return (f'B={self.batch} {self.img}x{self.img} C={self.num_classes} '
                f'boxes/img={self.boxes}')


@dataclass
class Inputs:
    anchor_preds: List[torch.Tensor]     # [B, A*(5+C), H, W] per level
    point_preds: List[torch.Tensor]      # [B, 4*reg_max + C, H, W] per level
    targets: torch.Tensor                # [N, 6]


def make_inputs(case: Case, device: torch.device, seed: int = 0) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    anchor_preds, point_preds = [], []
    for stride in STRIDES:
        cells = case.img // stride
        shape = (case.batch, NUM_ANCHORS * (5 + case.num_classes), cells, cells)
        anchor_preds.append(torch.randn(shape, generator=gen).to(device))
        shape = (case.batch, 4 * REG_MAX + case.num_classes, cells, cells)
        point_preds.append(torch.randn(shape, generator=gen).to(device))
    count = case.batch * case.boxes
    sizes = torch.rand(count, 2, generator=gen) * 0.45 + 0.02
    centres = sizes / 2 + torch.rand(count, 2, generator=gen) * (1 - sizes)
    image = torch.arange(case.batch).repeat_interleave(case.boxes).float()
    label = torch.randint(case.num_classes, (count,), generator=gen).float()
    targets = torch.cat((image[:, None], label[:, None], centres, sizes), dim=1)
    targets = targets[torch.randperm(count, generator=gen)]
    return Inputs(anchor_preds, point_preds, targets.to(device))


def leaves(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in tensors]


# ----------------------------------------------------------------------------
# Implementations: each gives (prepare, call); call(state) -> components
# ----------------------------------------------------------------------------

@dataclass
class Runner:
    label: str
    family: str
    validate: str                                  # 'on', 'off' or '-'
    # Returns the leaves (whose .grad is reset) and a closure running one
    # forward, giving the named components (not summed).
    setup: Callable[[Inputs], Tuple[List[torch.Tensor], Callable[[], Dict[str, torch.Tensor]]]]
    compiled: bool = False      # under torch.compile: its kernels are not ATen calls


def ours(loss_type: str, case: Case, device, validate: bool, compiled: bool = False,
         **extra) -> Runner:
    loss = build_loss(dict(type=loss_type, num_classes=case.num_classes,
                           validate=validate, **extra)).to(device)
    if compiled:
        # The whole loss as one graph (tests/test_composite_compile.py); the
        # first warm-up call pays for the compilation.
        loss = torch.compile(loss, fullgraph=True)
    anchor_based = loss_type != 'YOLOv8Loss'

    def setup(inputs: Inputs):
        preds = leaves(inputs.anchor_preds if anchor_based else inputs.point_preds)
        targets = inputs.targets
        return preds, lambda: loss(preds, targets, img_size=(case.img, case.img),
                                   max_boxes=case.boxes)

    style = f'[{extra["style"]}]' if 'style' in extra else ''
    family = {'YOLOv3Loss': 'v3', 'YOLOv5Loss': 'v5', 'YOLOv8Loss': 'v8'}[loss_type]
    return Runner(f'yolo_losses {loss_type}{style}{" torch.compile" if compiled else ""}',
                  family, 'on' if validate else 'off', setup, compiled)


class _FakeUltralyticsModel:
    """What ``v8DetectionLoss.__init__`` reads from a DetectionModel."""

    def __init__(self, num_classes: int, device) -> None:
        self.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
        self.model = [SimpleNamespace(stride=torch.tensor(STRIDES, dtype=torch.float32),
                                      nc=num_classes, reg_max=REG_MAX)]
        self._weight = torch.nn.Parameter(torch.zeros(1, device=device))

    def parameters(self):
        yield self._weight


def ultralytics_v8(case: Case, device) -> Runner:
    from ultralytics.utils.loss import v8DetectionLoss

    criterion = v8DetectionLoss(_FakeUltralyticsModel(case.num_classes, device))
    criterion.stride = criterion.stride.to(device)

    def setup(inputs: Inputs):
        # Detect's training output: per-level maps flattened and
        # concatenated, boxes and scores apart ("feats" only gives shapes).
        flat = torch.cat([p.flatten(2) for p in inputs.point_preds], dim=2)
        boxes, scores = leaves(flat.split((4 * REG_MAX, case.num_classes), dim=1))
        preds = {'boxes': boxes, 'scores': scores, 'feats': inputs.point_preds}
        # ultralytics needs the rows grouped by image (its data loader
        # collates them so); ours take any order.
        t = inputs.targets[torch.argsort(inputs.targets[:, 0], stable=True)]
        batch = {'batch_idx': t[:, 0], 'cls': t[:, 1:2], 'bboxes': t[:, 2:6]}

        def call():
            _, items = criterion(preds, batch)
            return {'loss_box': items['box_loss'], 'loss_cls': items['cls_loss'],
                    'loss_dfl': items['dfl_loss'], '_total': _}
        return [boxes, scores], call

    return Runner('ultralytics v8DetectionLoss', 'v8', '-', setup)


class _FakeYolov5Model:
    """What yolov5 ``ComputeLoss.__init__`` reads from a DetectionModel."""

    def __init__(self, num_classes: int, device) -> None:
        self.hyp = dict(box=0.05, obj=1.0, cls=0.5, cls_pw=1.0, obj_pw=1.0,
                        fl_gamma=0.0, anchor_t=4.0, label_smoothing=0.0)
        strides = torch.tensor(STRIDES, dtype=torch.float32, device=device)
        anchors = torch.tensor(ANCHORS_PX, dtype=torch.float32, device=device)
        # Detect keeps its anchors in grid units (pixels / stride).
        self.model = [SimpleNamespace(nl=len(STRIDES), na=NUM_ANCHORS, nc=num_classes,
                                      stride=strides,
                                      anchors=anchors / strides.view(-1, 1, 1))]
        self._weight = torch.nn.Parameter(torch.zeros(1, device=device))

    def parameters(self):
        yield self._weight


def yolov5_compute_loss(case: Case, device) -> Runner:
    from yolov5.utils.loss import ComputeLoss

    criterion = ComputeLoss(_FakeYolov5Model(case.num_classes, device))

    def setup(inputs: Inputs):
        # Detect's training output: [B, A, H, W, 5+C] per level.
        preds = leaves([p.view(p.shape[0], NUM_ANCHORS, 5 + case.num_classes,
                               *p.shape[-2:]).permute(0, 1, 3, 4, 2).contiguous()
                        for p in inputs.anchor_preds])
        targets = inputs.targets

        def call():
            total, items = criterion(preds, targets)
            return {'loss_box': items[0], 'loss_obj': items[1], 'loss_cls': items[2],
                    '_total': total}
        return preds, call

    return Runner('yolov5 ComputeLoss', 'v5', '-', setup)


PEERS = {'ultralytics-v8': (ultralytics_v8, 'ultralytics'),
         'yolov5': (yolov5_compute_loss, 'yolov5')}


def runners_for(impls: Sequence[str], styles: Sequence[str], validates: Sequence[str],
                case: Case, device, notes: List[str],
                compiled: bool = False) -> List[Runner]:
    """Runners of ``impls``; ours once per validation setting, plus (with
    ``compiled``) once more under ``torch.compile`` with validation off
    (validation reads values on the host, which a whole graph cannot)."""
    runners = []
    settings = [(validate == 'on', False) for validate in validates]
    if compiled:
        settings.append((False, True))
    for impl in impls:
        if impl in PEERS:
            factory, module = PEERS[impl]
            try:
                runners.append(factory(case, device))
            except ImportError as err:
                note = f'{impl}: skipped, {module} is not importable ({err})'
                if note not in notes:
                    notes.append(note)
            continue
        for on, compile_it in settings:
            if impl == 'ours-v3':
                runners.extend(ours('YOLOv3Loss', case, device, on, compile_it, style=s)
                               for s in styles)
            elif impl == 'ours-v5':
                runners.append(ours('YOLOv5Loss', case, device, on, compile_it))
            elif impl == 'ours-v8':
                runners.append(ours('YOLOv8Loss', case, device, on, compile_it))
    return runners


# ----------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------

def _read_status_kib(key: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as clear:
            clear.write('5')
        return True
    except OSError:
        return False


@dataclass
class Row:
    case: str
    label: str
    family: str
    validate: str
    ms: Optional[float] = None
    syncs: str = 'n/a'
    ops: str = ''
    peak_mib: str = 'n/a'
    ratio: str = ''
    agrees: str = ''
    error: str = ''
    components: Dict[str, float] = field(default_factory=dict)


def _step(preds: List[torch.Tensor], call) -> Dict[str, torch.Tensor]:
    for pred in preds:
        pred.grad = None
    out = call()
    parts = {k: v for k, v in out.items() if not k.startswith('_')}
    total = out.get('_total')
    if total is None:
        total = sum(parts.values())
    total.sum().backward()
    return parts


# ATen operators that allocate or re-label memory without a kernel launch.
_NO_KERNEL_OPS = frozenset({'empty', 'empty_strided', 'empty_like', 'detach', 'alias',
                            'lift_fresh', 'set_', 'resize_', '_local_scalar_dense'})


class OperatorCount(TorchDispatchMode):
    """Counts the ATen operators that run (forward and backward) except
    views and allocations: each is at least one kernel launch on a GPU, so
    the count is a device-independent measure of launch overhead. Triton
    kernels launched from Python (our fused path) are not ATen operators and
    are not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.overloadpacket.__name__ not in _NO_KERNEL_OPS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def measure(runner: Runner, inputs: Inputs, case: Case, device: torch.device,
            warmup: int, repeats: int) -> Row:
    row = Row(case.name, runner.label, runner.family, runner.validate)
    try:
        preds, call = runner.setup(inputs)
        cuda = device.type == 'cuda'
        parts = None
        for _ in range(warmup):
            parts = _step(preds, call)
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            parts = _step(preds, call)
            if cuda:
                torch.cuda.synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
        row.ms = statistics.median(times)
        row.components = {k: float(v.detach()) for k, v in parts.items()}

        # More calls for operators, syncs and memory, apart from the timed ones.
        if runner.compiled:
            row.ops = 'n/a'
        else:
            with OperatorCount() as counter:
                _step(preds, call)
            row.ops = str(counter.count)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            previous = torch.cuda.get_sync_debug_mode()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                torch.cuda.set_sync_debug_mode('warn')
                try:
                    _step(preds, call)
                finally:
                    torch.cuda.set_sync_debug_mode(previous)
            torch.cuda.synchronize(device)
            row.syncs = str(sum('synchroniz' in str(w.message) for w in caught))
            peak = torch.cuda.max_memory_allocated(device) - before
            row.peak_mib = f'{peak / 2 ** 20:.1f}'
        else:
            base = _read_status_kib('VmRSS')
            if base is not None and _reset_peak_rss():
                _step(preds, call)
                peak = _read_status_kib('VmHWM')
                row.peak_mib = f'{max(peak - base, 0) / 1024:.1f}'
    except Exception as err:  # a failing implementation gets a row, not a crash
        row.error = f'{type(err).__name__}: {str(err).splitlines()[0][:120]}'
    return row


def compare_with_peers(rows: List[Row]) -> None:
    """Ratios to the peer of the same family, and agreement of components."""
    by_case: Dict[str, List[Row]] = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    for case_rows in by_case.values():
        for row in case_rows:
            peer_label = {'v5': 'yolov5 ComputeLoss',
                          'v8': 'ultralytics v8DetectionLoss'}.get(row.family)
            peer = next((r for r in case_rows if r.label == peer_label and r.ms), None)
            if peer is None or row.ms is None:
                continue
            row.ratio = f'{row.ms / peer.ms:.2f}'
            if row is peer:
                reference = next((r for r in case_rows if r.family == row.family
                                  and r is not peer and r.components and r.validate == 'off'),
                                 None)
                if reference is not None:
                    worst = max(abs(row.components[k] - reference.components[k])
                                / max(abs(reference.components[k]), 1e-12)
                                for k in reference.components)
                    row.agrees = f'{worst:.1e}'


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------

COLUMNS = ('case', 'implementation', 'validate', 'ms', 'x peer', 'ops/call', 'syncs/call',
           'peak MiB', 'rel. diff')


def _cells(row: Row) -> List[str]:
    ms = f'{row.ms:.2f}' if row.ms is not None else 'failed'
    cells = [row.case, row.label, row.validate, ms, row.ratio, row.ops, row.syncs,
             row.peak_mib,
             row.agrees]
    if row.error:
        cells[-1] = row.error
    return cells


def environment(device: torch.device) -> List[str]:
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open('/proc/cpuinfo') as info:
                name = next(line.split(':', 1)[1].strip() for line in info
                            if line.startswith('model name'))
        except (OSError, StopIteration):
            pass
        name += f', {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}'
    versions = [f'torch {torch.__version__}', f'yolo_losses {yolo_losses.__version__}']
    for module in ('ultralytics', 'yolov5'):
        try:
            from importlib.metadata import version
            versions.append(f'{module} {version(module)}')
        except Exception:
            versions.append(f'{module} absent')
    load = ' '.join(f'{x:.2f}' for x in os.getloadavg()) if hasattr(os, 'getloadavg') else 'n/a'
    return [f'date: {datetime.datetime.now().isoformat(timespec="seconds")}',
            f'device: {device.type} ({name})',
            f'python {platform.python_version()}, ' + ', '.join(versions),
            f'load average at start (1, 5, 15 min): {load}']


def render_text(rows: List[Row]) -> str:
    table = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ['  '.join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
             for line in table]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def render_markdown(rows: List[Row]) -> str:
    lines = ['| ' + ' | '.join(COLUMNS) + ' |',
             '|' + '|'.join('---' for _ in COLUMNS) + '|']
    lines += ['| ' + ' | '.join(c.replace('|', '/') for c in _cells(r)) + ' |' for r in rows]
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[16, 64])
    parser.add_argument('--boxes', type=int, nargs='+', default=[8, 64],
                        help='boxes per image')
    parser.add_argument('--img-size', type=int, default=640)
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--impl', nargs='+', choices=IMPLEMENTATIONS,
                        default=list(IMPLEMENTATIONS))
    parser.add_argument('--v3-styles', nargs='+', choices=V3_STYLES, default=list(V3_STYLES))
    parser.add_argument('--validate', nargs='+', choices=('on', 'off'), default=['on', 'off'],
                        help='validation settings of our losses')
    parser.add_argument('--compile', action='store_true',
                        help='also time our losses under torch.compile(fullgraph=True), '
                             'validation off (the first warm-up call compiles: give '
                             '--warmup >= 1)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes: B=2, 64x64, 4 classes, 2 boxes/img, 1 warm-up, '
                             '2 repeats (a smoke run)')
    parser.add_argument('--markdown', help='also write the table and environment here')
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.boxes, args.img_size, args.num_classes = [2], [2], 64, 4
        args.repeats, args.warmup = 2, 1
    if args.compile and args.warmup < 1:
        parser.error('--compile needs --warmup >= 1 (the first call compiles)')
    if args.img_size % max(STRIDES):
        parser.error(f'--img-size must be a multiple of {max(STRIDES)}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[Row]:
    args = parse_args(argv)
    device = torch.device(args.device)
    header = environment(device)
    print('\n'.join(header), flush=True)
    notes: List[str] = []
    rows: List[Row] = []
    for batch in args.batch_sizes:
        for boxes in args.boxes:
            case = Case(batch, args.img_size, args.num_classes, boxes)
            inputs = make_inputs(case, device)
            for runner in runners_for(args.impl, args.v3_styles, args.validate, case,
                                      device, notes, args.compile):
                row = measure(runner, inputs, case, device, args.warmup, args.repeats)
                rows.append(row)
                print(f'  {case.name}  {row.label}  validate={row.validate}  '
                      f'{row.ms if row.ms is None else round(row.ms, 2)} ms'
                      f'{"  " + row.error if row.error else ""}', file=sys.stderr, flush=True)
            del inputs
    compare_with_peers(rows)
    footer = notes + [
        'ms: median of %d calls after %d warm-up; forward + backward of the summed '
        'components.' % (args.repeats, args.warmup),
        'x peer: time over the peer of the same family (v5: yolov5 ComputeLoss, '
        'v8: ultralytics v8DetectionLoss).',
        'ops/call: ATen operators run by one forward + backward, views and '
        'allocations left out; each is at least one kernel launch on a GPU (our '
        'fused Triton kernels are not counted). Same on every device but for code '
        'paths chosen by device.',
        'syncs/call: CUDA sync-debug warnings in one call; n/a on CPU.',
        'peak MiB: ' + ('torch.cuda.max_memory_allocated above the memory allocated '
                        'before the call.' if device.type == 'cuda' else
                        'growth of the peak resident set (VmHWM) over one call, Linux '
                        'only; includes allocator effects, a rough figure.'),
        'rel. diff: largest relative difference of the peer\'s components from ours '
        '(validate off) on the same inputs.',
        f'load average at end (1, 5, 15 min): '
        + (' '.join(f'{x:.2f}' for x in os.getloadavg()) if hasattr(os, 'getloadavg')
           else 'n/a'),
    ]
    print()
    print(render_text(rows))
    print()
    print('\n'.join(footer))
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as out:
            out.write('# Composite YOLO losses: forward + backward\n\n')
            out.write('\n'.join(f'- {line}' for line in header) + '\n')
            out.write(f'- command: `{" ".join([os.path.basename(sys.argv[0])] + list(argv if argv is not None else sys.argv[1:]))}`\n\n')
            out.write(render_markdown(rows) + '\n\n')
            out.write('\n'.join(f'- {line}' for line in footer) + '\n')
    return rows


if __name__ == '__main__':
    main()

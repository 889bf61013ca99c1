"""Forward + backward of the end-to-end losses against ultralytics, side by side.

- ours: ``E2ELoss`` with the YOLO26 settings (both branches ``YOLOv8Loss``
  with ``reg_max=1``, one-to-one assigner topk 7 / topk2 1, progressive
  schedule), validation on and off (``max_boxes`` given in both); with
  ``--v10`` also the YOLOv10 pair (reg_max 16, constant schedule);
- peers, when importable: ultralytics 8.4.190 ``E2ELoss`` (and
  ``E2EDetectLoss`` with ``--v10``), built with a stand-in model object that
  exposes only what their constructors read. Never a project requirement:
  see ``benchmarks/README.md`` for a separate venv and the torchvision stub
  its import needs on a CPU-only torch.

Both schedules sit at the same epoch (k = 4 of 10) so that the totals can be
compared: the ``rel. diff`` column of a peer row is the relative difference
of its total from ours (``sum(values) * B``), validation off.

Usage::

    python benchmarks/bench_e2e_loss.py                      # B 16, 8 boxes, 640, 80 classes
    python benchmarks/bench_e2e_loss.py --quick              # tiny sizes (a smoke run)
    PYTHONPATH=$PWD:/path/to/stub /path/to/peers/bin/python \\
        benchmarks/bench_e2e_loss.py --cpu-time --v10 --markdown benchmarks/results/e2e_cpu.md
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from types import SimpleNamespace
from typing import List, Optional, Sequence

import torch

if __package__ in (None, ''):
    # Run as a script from a checkout: make the package and the peer bench
    # (measuring, report) importable.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    sys.path.insert(0, here)

import bench_composite_losses as common  # noqa: E402
from yolo_losses import build_loss  # noqa: E402
from yolo_losses.losses.e2e_loss import yolo26_loss, yolov10_loss  # noqa: E402

STRIDES = (8, 16, 32)
EPOCH, NUM_EPOCHS = 4, 10


def make_inputs(case: common.Case, reg_max: int, device, seed: int = 0) -> SimpleNamespace:
    """Two branches of ``[B, 4*reg_max + C, H, W]`` levels and ``[N, 6]``
    targets (rows shuffled). reg_max 1 distances are ``|N(0, 1)| * 2 + 0.5``
    grid units (plausible boxes, so the assigner finds positives)."""
    gen = torch.Generator().manual_seed(seed)
    branches = []
    for _ in range(2):
        levels = []
        for stride in STRIDES:
            cells = case.img // stride
            shape = (case.batch, 4 * reg_max + case.num_classes, cells, cells)
            level = torch.randn(shape, generator=gen)
            if reg_max == 1:
                level[:, :4] = level[:, :4].abs() * 2 + 0.5
            levels.append(level.to(device))
        branches.append(levels)
    count = case.batch * case.boxes
    sizes = torch.rand(count, 2, generator=gen) * 0.45 + 0.02
    centres = sizes / 2 + torch.rand(count, 2, generator=gen) * (1 - sizes)
    image = torch.arange(case.batch).repeat_interleave(case.boxes).float()
    label = torch.randint(case.num_classes, (count,), generator=gen).float()
    targets = torch.cat((image[:, None], label[:, None], centres, sizes), dim=1)
    targets = targets[torch.randperm(count, generator=gen)]
    return SimpleNamespace(one2many=branches[0], one2one=branches[1],
                           targets=targets.to(device))


def ours(name: str, cfg: dict, case: common.Case, device, validate: bool) -> common.Runner:
    loss = build_loss(dict(cfg, validate=validate)).to(device)
    loss.set_epoch(EPOCH, NUM_EPOCHS)

    def setup(inputs):
        o2m, o2o = common.leaves(inputs.one2many), common.leaves(inputs.one2one)
        targets = inputs.targets

        def call():
            out = loss(dict(one2many=o2m, one2one=o2o), targets, max_boxes=case.boxes)
            total = sum(out.values())
            return {'total': total.detach() * case.batch, '_total': total}
        return o2m + o2o, call

    return common.Runner(f'yolo_losses E2ELoss[{name}]', name, 'on' if validate else 'off',
                         setup)


class _FakeUltralyticsModel:
    """What ultralytics' ``v8DetectionLoss`` reads from a DetectionModel."""

    def __init__(self, num_classes: int, reg_max: int, device) -> None:
        self.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5, epochs=NUM_EPOCHS)
        self.model = [SimpleNamespace(stride=torch.tensor(STRIDES, dtype=torch.float32),
                                      nc=num_classes, reg_max=reg_max)]
        self._weight = torch.nn.Parameter(torch.zeros(1, device=device))

    def parameters(self):
        yield self._weight


def ultralytics_e2e(name: str, case: common.Case, device) -> common.Runner:
    from ultralytics.utils.loss import E2EDetectLoss, E2ELoss

    reg_max = 1 if name == 'yolo26' else 16
    model = _FakeUltralyticsModel(case.num_classes, reg_max, device)
    if name == 'yolo26':
        criterion = E2ELoss(model)
        for _ in range(EPOCH):
            criterion.update()
        label = 'ultralytics E2ELoss'
    else:
        criterion = E2EDetectLoss(model)
        label = 'ultralytics E2EDetectLoss'
    for branch in (criterion.one2many, criterion.one2one):
        branch.stride = branch.stride.to(device)

    def setup(inputs):
        o2m, o2o = common.leaves(inputs.one2many), common.leaves(inputs.one2one)

        def head_output(levels):
            # Detect's training output: levels flattened and concatenated,
            # boxes and scores apart ("feats" only gives shapes).
            flat = torch.cat([p.flatten(2) for p in levels], dim=2)
            boxes, scores = flat.split((4 * reg_max, case.num_classes), dim=1)
            return {'boxes': boxes, 'scores': scores, 'feats': levels}

        # ultralytics needs the rows grouped by image (its data loader does so)
        t = inputs.targets[torch.argsort(inputs.targets[:, 0], stable=True)]
        batch = {'batch_idx': t[:, 0], 'cls': t[:, 1:2], 'bboxes': t[:, 2:6]}

        def call():
            total, _ = criterion({'one2many': head_output(o2m),
                                  'one2one': head_output(o2o)}, batch)
            return {'total': total.detach().sum(), '_total': total.sum()}
        return o2m + o2o, call

    return common.Runner(label, name, '-', setup)


def compare(rows: List[common.Row]) -> None:
    """Each row's time over the peer's of the same settings; the peer row
    gets the relative difference of its total from ours (validate off)."""
    for family in {r.family for r in rows}:
        family_rows = [r for r in rows if r.family == family]
        peer = next((r for r in family_rows if r.label.startswith('ultralytics') and r.ms),
                    None)
        if peer is None:
            continue
        for row in family_rows:
            if row.ms is not None:
                row.ratio = f'{row.ms / peer.ms:.2f}'
        reference = next((r for r in family_rows if r is not peer and r.validate == 'off'
                          and r.components), None)
        if reference is not None and peer.components:
            ours_total, theirs = reference.components['total'], peer.components['total']
            peer.agrees = f'{abs(theirs - ours_total) / max(abs(ours_total), 1e-12):.1e}'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--boxes', type=int, default=8, help='boxes per image')
    parser.add_argument('--img-size', type=int, default=640)
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--validate', nargs='+', choices=('on', 'off'), default=['on', 'off'])
    parser.add_argument('--v10', action='store_true',
                        help='also the YOLOv10 pair (reg_max 16, constant) against '
                             'ultralytics E2EDetectLoss')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cpu-time', action='store_true',
                        help='CPU: time each call by the CPU time of the calling thread '
                             'with one torch thread (robust on a shared, loaded machine: '
                             'time spent waiting for a core is not counted)')
    parser.add_argument('--quick', action='store_true',
                        help='B=2, 64x64, 4 classes, 2 boxes/img, 1 warm-up, 2 repeats')
    parser.add_argument('--markdown', help='also write the table and environment here')
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.boxes, args.img_size, args.num_classes = 2, 2, 64, 4
        args.repeats, args.warmup = 2, 1
    if args.img_size % max(STRIDES):
        parser.error(f'--img-size must be a multiple of {max(STRIDES)}')
    if args.cpu_time and args.device != 'cpu':
        parser.error('--cpu-time is for --device cpu')
    return args


def main(argv: Optional[Sequence[str]] = None) -> List[common.Row]:
    args = parse_args(argv)
    device = torch.device(args.device)
    clock, threads = common.time, torch.get_num_threads()
    if args.cpu_time:
        # All work on the calling thread, timed by its CPU time.
        torch.set_num_threads(1)
        common.time = SimpleNamespace(perf_counter=time.thread_time)
    try:
        return _run(args, device, argv)
    finally:
        common.time = clock
        torch.set_num_threads(threads)


def _run(args, device, argv) -> List[common.Row]:
    header = common.environment(device)
    print('\n'.join(header), flush=True)
    case = common.Case(args.batch_size, args.img_size, args.num_classes, args.boxes)
    configs = {'yolo26': (yolo26_loss(args.num_classes), 1)}
    if args.v10:
        configs['yolov10'] = (yolov10_loss(args.num_classes), 16)
    rows: List[common.Row] = []
    notes: List[str] = []
    for name, (cfg, reg_max) in configs.items():
        inputs = make_inputs(case, reg_max, device)
        runners = [ours(name, cfg, case, device, v == 'on') for v in args.validate]
        try:
            runners.append(ultralytics_e2e(name, case, device))
        except ImportError as err:
            notes.append(f'{name}: ultralytics skipped, not importable ({err})')
        for runner in runners:
            row = common.measure(runner, inputs, case, device, args.warmup, args.repeats)
            rows.append(row)
            print(f'  {case.name}  {row.label}  validate={row.validate}  '
                  f'{row.ms if row.ms is None else round(row.ms, 2)} ms'
                  f'{"  " + row.error if row.error else ""}', file=sys.stderr, flush=True)
    compare(rows)
    footer = notes + [
        f'ms: median of {args.repeats} calls after {args.warmup} warm-up; forward + '
        'backward of the total' + ('; CPU time of the calling thread, one torch thread.'
                                   if args.cpu_time else '; wall clock.'),
        'x peer: time over ultralytics\' of the same settings (below 1: ours is faster).',
        f'schedules at epoch {EPOCH} of {NUM_EPOCHS}; max_boxes given to ours.',
        'ops/call, syncs/call, peak MiB: as in bench_composite_losses.py.',
        'rel. diff: |ultralytics total - ours (sum of values x B)| / ours, validate off.',
    ]
    text = common.render_text(rows)
    print()
    print(text)
    print()
    print('\n'.join(footer))
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as out:
            out.write('# End-to-end losses: forward + backward\n\n')
            out.write('\n'.join(f'- {line}' for line in header) + '\n')
            out.write(f'- command: `bench_e2e_loss.py {" ".join(argv or sys.argv[1:])}`\n\n')
            out.write(common.render_markdown(rows) + '\n\n')
            out.write('\n'.join(f'- {line}' for line in footer) + '\n')
    return rows


if __name__ == '__main__':
    main()

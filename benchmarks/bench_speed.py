"""Every case of the speed targets (issue 6) in one run, on the current device.

1. The composite losses against their peers, side by side on the same
   inputs (``bench_composite_losses.py``): B in {16, 64}, 640 x 640, 80
   classes, {8, 64} boxes per image; ms, ratio to the peer, host syncs per
   call, peak memory.
2. The element-wise sigmoid losses against the copy-calibrated memory
   roofline (``bench_fused_elementwise.py``): fused and plain paths, PyTorch's
   BCE, ``[64, 8400, 80]`` float32 and bfloat16 on CUDA (a small size on a
   CPU, where there is no fused path).

Each part prints its own header (device name, PyTorch version) and table.

Usage::

    python benchmarks/bench_speed.py                      # CUDA if present
    python benchmarks/bench_speed.py --quick              # tiny sizes, a smoke run
    python benchmarks/bench_speed.py --markdown benchmarks/results/gpu.md

Peers (ultralytics 8.4.190, yolov5 7.0.14) are used where importable and
reported as skipped otherwise; see ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_composite_losses  # noqa: E402
import bench_fused_elementwise  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default=None,
                        help='cuda or cpu (default: cuda if present)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes, one timed call each: a smoke run')
    parser.add_argument('--markdown', help='also write the composite table here')
    parser.add_argument('--compile', action='store_true',
                        help='also time our composite losses under torch.compile')
    args = parser.parse_args(argv)

    composite = ['--validate', 'off']
    elementwise = []
    if args.device:
        composite += ['--device', args.device]
        elementwise += ['--device', args.device]
    if args.quick:
        composite += ['--quick', '--warmup', '0', '--repeats', '1']
        elementwise += ['--size', 'tiny', '--warmup', '0', '--repeat', '1']
    if args.markdown:
        composite += ['--markdown', args.markdown]
    if args.compile:
        composite += ['--compile']

    print('== Composite losses against their peers ==')
    bench_composite_losses.main(composite)
    print()
    print('== Element-wise sigmoid losses against the memory roofline ==')
    bench_fused_elementwise.main(elementwise)


if __name__ == '__main__':
    main()

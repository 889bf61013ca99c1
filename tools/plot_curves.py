"""Overlay the training curves of several runs in one PNG.

    python tools/plot_curves.py WORK_DIR [WORK_DIR ...] [--out curves.png]
                                [--labels A B ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from yolo_losses.engine.plotting import plot_runs  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='work dirs of train.py runs')
    parser.add_argument('--out', default='curves_compare.png', help='PNG file')
    parser.add_argument('--labels', nargs='+', help='one legend label per run')
    args = parser.parse_args(argv)
    print(plot_runs(args.work_dirs, args.out, args.labels))


if __name__ == '__main__':
    main()

"""Evaluate a checkpoint: COCO mAP@[.5:.95], mAP@.5, per-class AP and a PNG
grid of predictions.

    python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--grid FILE]
                         [--cfg-options k=v ...] [--launcher ...]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from yolo_losses.engine.runner import format_metrics, test  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file (.py or .yaml)')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument('--work-dir', help='where the log and the grid go')
    parser.add_argument('--grid', default='predictions.png',
                        help='file name of the prediction grid in the work '
                        'dir ("" for none)')
    parser.add_argument('--grid-images', type=int, default=16)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    metrics = test(args.config, args.checkpoint, work_dir=args.work_dir,
                   cfg_options=args.cfg_options, launcher=args.launcher,
                   grid_file=args.grid or None, grid_images=args.grid_images)
    for line in format_metrics(metrics):
        print(line)


if __name__ == '__main__':
    main()

"""Train a detector from a config on mmengine's Runner.

    python tools/train.py CONFIG [--work-dir D] [--amp] [--resume [CKPT]]
                          [--cfg-options k=v ...] [--launcher none|pytorch|slurm]

Several processes: torchrun --nproc_per_node N tools/train.py CONFIG
--launcher pytorch (gloo on CPU, nccl on CUDA).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# OpenMP threads that spin while waiting make CPU training many times slower
# when the cores are shared; must be set before torch starts its runtime.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from mmengine.config import DictAction  # noqa: E402

from yolo_losses.engine.runner import final_val_metrics, format_metrics, train  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config file (.py or .yaml)')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bf16/fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None,
                        metavar='CKPT', help='resume from CKPT, or from the '
                        'latest checkpoint of the work dir when CKPT is omitted')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. '
                        'train_cfg.max_epochs=3')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    runner = train(args.config, work_dir=args.work_dir, amp=args.amp,
                   resume=args.resume, cfg_options=args.cfg_options,
                   launcher=args.launcher)
    if runner.rank == 0:
        for line in format_metrics(final_val_metrics(runner.work_dir)):
            print(f'final val {line}')


if __name__ == '__main__':
    main()

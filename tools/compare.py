"""Compare losses (or any config change) over several seeds, with intervals.

    python tools/compare.py BASE_CONFIG \
        --variant ciou model.bbox_head.loss.loss_bbox.type=CIoULoss \
        --variant siou model.bbox_head.loss.loss_bbox.type=SIoULoss \
        [--variant-config NAME CONFIG] --seeds 0 1 2 --work-dir DIR \
        [--cfg-options K=V ...] [--jobs N] [--launcher none|pytorch]

Every (variant, seed) trains with tools/train.py in DIR/NAME/seed_S/; the
first variant is the baseline; DIR/report.md, report.json and compare.png
are rewritten after each run. Running the same command again skips finished
runs and resumes interrupted ones. See docs/loss_lab.md.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from yolo_losses.lab import VariantAction, run_lab  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='A variant overrides whole sub-dicts the way --cfg-options does: '
        'model.bbox_head.loss.loss_bbox.type=GIoULoss on a config whose loss '
        'has no loss_bbox entry builds dict(type=GIoULoss) with the loss\'s own '
        'defaults, not the composite loss\'s (give loss_weight too).')
    parser.add_argument('config', help='base config (.py or .yaml)')
    parser.add_argument('--variant', dest='variants', nargs='+',
                        action=VariantAction, metavar=('NAME', 'K=V'),
                        help='a variant: NAME and config overrides K=V '
                        '(parsed like --cfg-options); repeatable; the first '
                        'variant is the baseline')
    parser.add_argument('--variant-config', dest='variants', nargs=2,
                        action=VariantAction, metavar=('NAME', 'CONFIG'),
                        help='a variant given as a whole config file; '
                        'repeatable')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        metavar='S', help='seeds (randomness.seed) every '
                        'variant trains with')
    parser.add_argument('--work-dir', required=True,
                        help='DIR: runs in DIR/NAME/seed_S/, the report in DIR')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='K=V',
                        help='overrides for every variant (budget, data), '
                        'parsed like tools/train.py --cfg-options')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs trained at once, each its own process '
                        '(default 1); with several GPUs one per GPU; on a CPU '
                        'parallel runs share the cores (each gets cores/N '
                        'threads), so they rarely finish sooner')
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none', help='pytorch: run this command under '
                        'torchrun; each run then trains with DDP over all the '
                        'launched processes (--jobs 1)')
    args = parser.parse_args(argv)
    if not args.variants:
        parser.error('give at least one --variant or --variant-config')
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    return args


def main(argv=None):
    args = parse_args(argv)
    run_lab(args.config, args.variants, args.seeds, args.work_dir,
            cfg_options=args.cfg_options, jobs=args.jobs,
            launcher=args.launcher)


if __name__ == '__main__':
    main()

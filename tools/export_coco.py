"""Export the built-in synthetic data to COCO format on disk.

    python tools/export_coco.py OUT_DIR [--split train|val|test]
                                [--num-images N] [--seed S] [--img-size P]

Writes OUT_DIR/images/<split>/*.png and OUT_DIR/annotations/instances_<split>.json.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from yolo_losses.datasets import SyntheticShapesDataset, export_coco  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir')
    parser.add_argument('--split', default='train',
                        choices=['train', 'val', 'test'])
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--img-size', type=int, default=256)
    args = parser.parse_args(argv)
    dataset = SyntheticShapesDataset(num_images=args.num_images,
                                     split=args.split, seed=args.seed,
                                     img_size=args.img_size)
    print(export_coco(dataset, args.out_dir))


if __name__ == '__main__':
    main()

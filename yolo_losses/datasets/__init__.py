"""Data of the training stack: the built-in synthetic shapes, COCO-format
files, transforms (mmcv's where they exist) and the ``yolo_collate`` batch
layout ``dict(inputs=uint8 [B, 3, H, W] RGB, data_samples=dict(targets=[N, 6],
max_boxes=int, metas=[...]))``."""
from .collate import yolo_collate
from .datasets import SyntheticShapesDataset, YOLOCocoDataset, export_coco
from .seeding import (EpochSeededMixin, WorkerSeedState, epoch_worker_init_fn,
                      set_worker_seed, worker_seed)
from .synthetic import SHAPE_CLASSES, generate_sample
from .transforms import LetterResize, PackYOLOInputs, YOLOHSVRandomAug

__all__ = ['SyntheticShapesDataset', 'YOLOCocoDataset', 'export_coco',
           'yolo_collate', 'LetterResize', 'YOLOHSVRandomAug',
           'PackYOLOInputs', 'SHAPE_CLASSES', 'generate_sample', 'EpochSeededMixin',
           'WorkerSeedState', 'epoch_worker_init_fn', 'set_worker_seed',
           'worker_seed']

"""Evaluation of the training stack: COCO box mAP via pycocotools."""
from .coco_metric import CocoMetric, build_coco_ground_truth

__all__ = ['CocoMetric', 'build_coco_ground_truth']

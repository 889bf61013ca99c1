"""COCO box mAP through pycocotools, for the detector's predict outputs."""
from __future__ import annotations

import contextlib
import io
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import METRICS

_SUMMARY_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def build_coco_ground_truth(samples: Sequence[dict],
                            classes: Sequence[str]) -> dict:
    """A COCO annotation dict from per-image ground truth.

    ``samples``: dicts with ``img_id``, ``ori_shape`` (h, w), ``gt_bboxes``
    (``[K, 4]`` xyxy original pixels) and ``gt_labels`` (``[K]``, 0-based).
    Category ids are labels + 1; ``area`` is the box area.
    """
    images, annotations = [], []
    for sample in samples:
        height, width = sample['ori_shape']
        images.append(dict(id=int(sample['img_id']), width=int(width),
                           height=int(height)))
        boxes = _to_numpy(sample['gt_bboxes']).reshape(-1, 4)
        labels = _to_numpy(sample['gt_labels']).reshape(-1)
        for box, label in zip(boxes, labels):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(dict(
                id=len(annotations) + 1, image_id=int(sample['img_id']),
                category_id=int(label) + 1,
                bbox=[float(box[0]), float(box[1]), w, h], area=w * h,
                iscrowd=0))
    return dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=name)
                            for i, name in enumerate(classes)])


@METRICS.register_module()
class CocoMetric(BaseMetric):
    """COCO-style box AP (pycocotools ``COCOeval``) of ``YOLODetector``
    predictions.

    Every image needs its ``img_id`` (>= 0, in the prediction or the batch
    metas); a missing one is a ``ValueError``, not a silent merge of the
    images into one.

    Ground truth comes from ``ann_file`` when given (a COCO json, crowd
    regions handled as COCO does; labels map to its categories sorted by id,
    or by ``dataset_meta['classes']`` names), otherwise from the
    ``gt_bboxes``/``gt_labels`` that ``PackYOLOInputs`` puts in each batch's
    metas (the built-in data).

    Reported (with ``prefix`` 'coco'): ``coco/bbox_mAP`` (IoU .5:.95),
    ``coco/bbox_mAP_50``, ``coco/bbox_mAP_75``, ``coco/bbox_mAP_s|m|l`` and
    per class ``coco/AP_<name>`` and ``coco/AP50_<name>``; a table of the
    per-class APs goes to the log. pycocotools reports -1 where a value is
    undefined (no ground truth); it is passed on unchanged.

    Args:
        ann_file: optional COCO annotation json.
        classwise: log and report per-class APs.
        collect_device, prefix: as mmengine's ``BaseMetric``.
    """

    default_prefix = 'coco'

    def __init__(self, ann_file: Optional[str] = None, classwise: bool = True,
                 collect_device: str = 'cpu', prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        if ann_file is not None and not osp.isfile(ann_file):
            raise FileNotFoundError(f'CocoMetric ann_file {ann_file!r} '
                                    'does not exist')
        self.ann_file = ann_file
        self.classwise = bool(classwise)
        self._coco_gt = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        metas = (data_batch.get('data_samples') or {}).get('metas')
        if metas is None:
            metas = [{} for _ in data_samples]
        if len(metas) != len(data_samples):
            raise ValueError(f'{len(data_samples)} predictions for a batch of '
                             f'{len(metas)} images')
        # every check before the first result is kept: a bad batch adds nothing
        batch = []
        for pred, meta in zip(data_samples, metas):
            if not isinstance(pred, dict) or not {
                    'bboxes', 'scores', 'labels'} <= set(pred):
                raise TypeError('CocoMetric needs predict dicts with bboxes, '
                                f'scores and labels, got {type(pred).__name__}')
            if self.ann_file is None and 'gt_bboxes' not in meta:
                raise KeyError('CocoMetric without ann_file needs gt_bboxes '
                               'and gt_labels in the batch metas '
                               '(PackYOLOInputs puts them there)')
            batch.append((self._image_id(pred, meta), pred, meta))
        for img_id, pred, meta in batch:
            result = dict(
                img_id=img_id,
                bboxes=_to_numpy(pred['bboxes']).astype(np.float64).reshape(-1, 4),
                scores=_to_numpy(pred['scores']).astype(np.float64).reshape(-1),
                labels=_to_numpy(pred['labels']).astype(np.int64).reshape(-1))
            if self.ann_file is None:
                result.update(ori_shape=tuple(meta['ori_shape']),
                              gt_bboxes=_to_numpy(meta['gt_bboxes']),
                              gt_labels=_to_numpy(meta['gt_labels']))
            self.results.append(result)

    @staticmethod
    def _image_id(pred: dict, meta: dict) -> int:
        """The image's id, from the prediction or else the batch meta.

        Required: COCO evaluates per image id, so images without one
        (``PackYOLOInputs`` writes -1 when the dataset gives none) would
        be merged into one image and scored wrongly.
        """
        img_id = pred.get('img_id', meta.get('img_id'))
        if hasattr(img_id, 'item') and getattr(img_id, 'ndim', 1) == 0:
            img_id = img_id.item()  # a numpy or 0-d tensor scalar
        if (isinstance(img_id, bool) or not isinstance(img_id, (int, np.integer))
                or img_id < 0):
            raise ValueError(
                'CocoMetric needs an img_id >= 0 for every image (in the '
                f'prediction or the batch metas), got {img_id!r}: images '
                'without an id would be evaluated as one image. Give each '
                "data_info of the dataset an 'img_id' (PackYOLOInputs passes "
                'it on; -1 means the dataset gave none).')
        return int(img_id)

    def _ground_truth(self, results: List[dict]):
        from pycocotools.coco import COCO

        if self.ann_file is not None:
            if self._coco_gt is None:
                with contextlib.redirect_stdout(io.StringIO()):
                    self._coco_gt = COCO(self.ann_file)
            coco_gt = self._coco_gt
            cats = sorted(coco_gt.getCatIds())
            names = (self.dataset_meta or {}).get('classes') or ()
            if names:
                by_name = {c['name']: c['id']
                           for c in coco_gt.loadCats(cats)}
                cats = [by_name[n] for n in names]
            names = [c['name'] for c in coco_gt.loadCats(cats)]
            return coco_gt, cats, names
        classes = (self.dataset_meta or {}).get('classes')
        if not classes:
            num = max([int(r['gt_labels'].max()) + 1 for r in results
                       if len(r['gt_labels'])] + [1])
            classes = [str(i) for i in range(num)]
        coco_gt = COCO()
        coco_gt.dataset = build_coco_ground_truth(results, classes)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt.createIndex()
        return coco_gt, list(range(1, len(classes) + 1)), list(classes)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        from pycocotools.cocoeval import COCOeval

        unique = {}
        for result in results:  # DDP samplers may repeat the last images
            unique.setdefault(result['img_id'], result)
        results = list(unique.values())
        coco_gt, cat_ids, names = self._ground_truth(results)
        detections = []
        for result in results:
            boxes = result['bboxes']
            for box, score, label in zip(boxes, result['scores'],
                                         result['labels']):
                if not 0 <= label < len(cat_ids):
                    raise ValueError(f'predicted label {label} is outside the '
                                     f'{len(cat_ids)} classes')
                detections.append(dict(
                    image_id=result['img_id'], category_id=cat_ids[label],
                    bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    score=float(score)))
        metrics = {f'bbox_{key}': 0.0 for key in _SUMMARY_KEYS}
        if not detections:
            print_log('CocoMetric: no detections; every AP is 0',
                      logger='current')
            if self.classwise:
                for name in names:
                    metrics[f'AP_{name}'] = 0.0
                    metrics[f'AP50_{name}'] = 0.0
            return metrics
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, 'bbox')
        evaluator.params.catIds = cat_ids
        evaluator.params.imgIds = [r['img_id'] for r in results]
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        print_log('\n' + summary.getvalue().strip(), logger='current')
        for key, value in zip(_SUMMARY_KEYS, evaluator.stats[:6]):
            metrics[f'bbox_{key}'] = float(value)
        if self.classwise:
            # precision: [IoU thresholds, recall points, classes, areas, maxDets]
            precision = evaluator.eval['precision']
            rows = ['class        AP     AP50']
            for index, name in enumerate(names):
                per_iou = precision[:, :, index, 0, -1]
                valid = per_iou[per_iou > -1]
                ap = float(valid.mean()) if valid.size else -1.0
                at_50 = per_iou[0][per_iou[0] > -1]
                ap50 = float(at_50.mean()) if at_50.size else -1.0
                metrics[f'AP_{name}'] = ap
                metrics[f'AP50_{name}'] = ap50
                rows.append(f'{name:<12} {ap:6.3f} {ap50:6.3f}')
            print_log('per-class AP:\n' + '\n'.join(rows), logger='current')
        return metrics

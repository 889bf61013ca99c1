"""Datasets of the training stack: the built-in shapes and COCO-format files.

Both yield the same ``results`` dict to their pipeline, mmengine/mmcv style:
``img`` (uint8 ``[H, W, 3]`` BGR, already there for the synthetic data;
``LoadImageFromFile`` reads it from ``img_path`` for COCO), ``img_id``,
``ori_shape``, and ``instances``: a list of ``dict(bbox=[x1, y1, x2, y2]
(original pixels), bbox_label=int, ignore_flag=0)`` that mmcv's
``LoadAnnotations`` turns into ``gt_bboxes`` / ``gt_bboxes_labels``.

Both hold a ``worker_seed_state`` (``seeding.EpochSeededMixin``): their
loader workers draw augmentations seeded by ``(seed, epoch, rank, worker)``.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ..registry import DATASETS
from .seeding import EpochSeededMixin
from .synthetic import SHAPE_CLASSES, SHAPE_PALETTE, generate_sample, split_code


# Cached sample lists by generation arguments, shared by the instances of
# one process: tools/train.py's preflight builds each dataset once before
# the Runner builds it again, and the val and test loaders share a config.
_GENERATED: 'OrderedDict[tuple, List[tuple]]' = OrderedDict()
_GENERATED_MAX_SETS = 4


@DATASETS.register_module()
class SyntheticShapesDataset(EpochSeededMixin, BaseDataset):
    """The built-in detection data, generated from a seed (no files).

    Args:
        num_images: number of images in this split.
        split: 'train', 'val' or 'test'; each split is an independent stream.
        seed: dataset seed; ``(seed, split, index)`` fixes every pixel.
        img_size: longer side of the generated images in pixels (the shorter
            is 75-100 % of it).
        max_objects: objects per image are uniform in [0, max_objects].
        size_range: object size as a fraction of the shorter side.
        pipeline: transforms (mmengine/mmcv configs or callables).
        cache: generate every image once when the dataset is initialised
            and keep it in memory (``num_images`` x about ``img_size**2 * 3``
            bytes, 0.33 GB for 1700 images of 256 px), instead of
            generating it again each epoch in the loader workers. The data
            are the same either way; a training run on the 2-core CPU
            spends about 10 % less time.
        test_mode: mmengine's flag (no effect on the data itself).
        lazy_init: mmengine's flag.
    """

    METAINFO = dict(classes=SHAPE_CLASSES, palette=SHAPE_PALETTE)

    def __init__(self, num_images: int = 1000, split: str = 'train',
                 seed: int = 0, img_size: int = 256, max_objects: int = 10,
                 size_range: Sequence[float] = (0.04, 0.6),
                 pipeline: Sequence = (), cache: bool = False, test_mode: bool = False,
                 lazy_init: bool = False, **kwargs: Any) -> None:
        if not isinstance(num_images, int) or num_images < 0:
            raise ValueError(f'num_images must be an int >= 0, got {num_images!r}')
        split_code(split)
        if not isinstance(img_size, int) or img_size < 32:
            raise ValueError(f'img_size must be an int >= 32, got {img_size!r}')
        if not isinstance(max_objects, int) or max_objects < 0:
            raise ValueError(
                f'max_objects must be an int >= 0, got {max_objects!r}')
        self.num_images = num_images
        self.split = split
        self.seed = int(seed)
        self.img_size = img_size
        self.max_objects = max_objects
        self.size_range = tuple(float(v) for v in size_range)
        if not isinstance(cache, bool):
            raise TypeError(f'cache must be a bool, got {cache!r}')
        self.cache = cache
        self._samples: Optional[List[tuple]] = None
        self._init_worker_seed_state()
        super().__init__(pipeline=list(pipeline), test_mode=test_mode,
                         lazy_init=lazy_init, serialize_data=False, **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.cache:
            key = (self.seed, self.split, self.num_images, self.img_size,
                   self.max_objects, self.size_range)
            self._samples = _GENERATED.get(key)
            if self._samples is None:
                start = time.perf_counter()
                self._samples = [self._generate(index) for index in range(self.num_images)]
                print_log(f'SyntheticShapesDataset: generated {self.num_images} '
                          f'{self.split} images in {time.perf_counter() - start:.1f} s '
                          '(cached)', logger='current')
                _GENERATED[key] = self._samples
                while len(_GENERATED) > _GENERATED_MAX_SETS:
                    _GENERATED.popitem(last=False)
        return [dict(img_id=index, img_path=None)
                for index in range(self.num_images)]

    def _generate(self, index: int) -> tuple:
        return generate_sample(self.seed, self.split, index, self.img_size,
                               self.max_objects, self.size_range)

    def sample(self, index: int) -> tuple:
        """``(img, bboxes, labels)`` of image ``index`` (see generate_sample);
        copies when cached, so a transform that works in place never
        alters the cache."""
        if self._samples is None:
            return self._generate(index)
        img, bboxes, labels = self._samples[index]
        return img.copy(), bboxes.copy(), labels.copy()

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img, bboxes, labels = self.sample(info['img_id'])
        info.update(
            img=img,
            img_shape=img.shape[:2],
            ori_shape=img.shape[:2],
            instances=[dict(bbox=box.tolist(), bbox_label=int(label),
                            ignore_flag=0)
                       for box, label in zip(bboxes, labels)])
        return info


def _read_coco_json(ann_file: str) -> dict:
    if not osp.isfile(ann_file):
        raise FileNotFoundError(
            f'ann_file {ann_file!r} does not exist (check data_root and '
            'ann_file in the dataset config)')
    try:
        with open(ann_file, encoding='utf-8') as handle:
            content = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f'ann_file {ann_file!r} is not valid JSON: {err}') from None
    if not isinstance(content, dict):
        raise ValueError(f'ann_file {ann_file!r} must hold a JSON object with '
                         f'COCO keys, got {type(content).__name__}')
    missing = [key for key in ('images', 'annotations', 'categories')
               if not isinstance(content.get(key), list)]
    if missing:
        raise ValueError(f'ann_file {ann_file!r} is not COCO format: the list(s) '
                         f'{missing} are missing')
    return content


@DATASETS.register_module()
class YOLOCocoDataset(EpochSeededMixin, BaseDataset):
    """A COCO-format detection dataset (annotation json + image folder).

    Category ids map to labels 0..C-1 in the order of ``metainfo['classes']``
    when given (by name), else in increasing category id. Crowd annotations
    (``iscrowd=1``) are not training targets; evaluate them with
    ``CocoMetric(ann_file=...)``, which handles them as COCO does.

    Args:
        ann_file: annotation json, relative to ``data_root``.
        data_root: dataset folder.
        data_prefix: ``dict(img='images/')``: image folder under data_root.
        pipeline, test_mode, metainfo, lazy_init: as mmengine's BaseDataset.
    """

    METAINFO: dict = dict(classes=(), palette=())

    def __init__(self, ann_file: str = '', data_root: str = '',
                 data_prefix: Optional[dict] = None, **kwargs: Any) -> None:
        if data_root and not osp.isdir(data_root):
            raise FileNotFoundError(
                f'data_root {data_root!r} is not a directory')
        data_prefix = dict(img='') if data_prefix is None else data_prefix
        if set(data_prefix) - {'img', 'img_path'}:
            raise KeyError(f'data_prefix takes the key "img", got '
                           f'{sorted(data_prefix)}')
        data_prefix = dict(img_path=data_prefix.get(
            'img', data_prefix.get('img_path', '')))
        self._init_worker_seed_state()
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        content = _read_coco_json(self.ann_file)
        categories = sorted(content['categories'], key=lambda c: c['id'])
        names = self._metainfo.get('classes') or ()
        if names:
            by_name = {c['name']: c['id'] for c in categories}
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise ValueError(f'metainfo classes {unknown} are not categories '
                                 f'of {self.ann_file!r}')
            self.cat_ids = [by_name[n] for n in names]
        else:
            self.cat_ids = [c['id'] for c in categories]
            self._metainfo['classes'] = tuple(c['name'] for c in categories)
        self.cat2label = {cat: label for label, cat in enumerate(self.cat_ids)}

        per_image: Dict[int, List[dict]] = {}
        for ann in content['annotations']:
            bbox = ann.get('bbox')
            if (not isinstance(bbox, list) or len(bbox) != 4
                    or 'image_id' not in ann or 'category_id' not in ann):
                raise ValueError(
                    f'{self.ann_file!r}: annotation {ann.get("id")} needs '
                    f'image_id, category_id and a 4-number bbox, got {ann}')
            per_image.setdefault(ann['image_id'], []).append(ann)

        img_root = self.data_prefix.get('img_path', '')
        data_list = []
        for image in content['images']:
            instances = []
            for ann in per_image.get(image['id'], []):
                x, y, w, h = (float(v) for v in ann['bbox'])
                if (ann.get('iscrowd', 0) or w < 1 or h < 1
                        or ann['category_id'] not in self.cat2label):
                    continue
                instances.append(dict(
                    bbox=[x, y, x + w, y + h],
                    bbox_label=self.cat2label[ann['category_id']],
                    ignore_flag=0))
            data_list.append(dict(
                img_id=int(image['id']),
                img_path=osp.join(img_root, image['file_name']),
                ori_shape=(int(image['height']), int(image['width'])),
                instances=instances))
        return data_list

    def prepare_data(self, idx: int) -> Any:
        info = self.get_data_info(idx)
        if not osp.isfile(info['img_path']):
            raise FileNotFoundError(
                f'image {info["img_path"]!r} of {self.ann_file!r} not found')
        return self.pipeline(info)


def export_coco(dataset: SyntheticShapesDataset, out_dir: str,
                ann_name: Optional[str] = None) -> str:
    """Write a synthetic dataset as COCO files.

    Images go to ``out_dir/images/<split>/<img_id:06d>.png`` (lossless, so the
    exported data reads back to the same pixels), the annotations to
    ``out_dir/annotations/instances_<split>.json`` (category ids 1..C). Returns
    the annotation file's path. Existing files of the same names are
    replaced; nothing else in ``out_dir`` is touched.
    """
    import cv2

    if not isinstance(dataset, SyntheticShapesDataset):
        raise TypeError('export_coco needs a SyntheticShapesDataset, got '
                        f'{type(dataset).__name__}')
    img_dir = osp.join(out_dir, 'images', dataset.split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    classes = dataset.metainfo['classes']
    content = dict(
        info=dict(description='yolo_losses synthetic shapes',
                  seed=dataset.seed, split=dataset.split),
        images=[], annotations=[],
        categories=[dict(id=label + 1, name=name)
                    for label, name in enumerate(classes)])
    for index in range(dataset.num_images):
        img, bboxes, labels = dataset.sample(index)
        file_name = f'{index:06d}.png'
        if not cv2.imwrite(osp.join(img_dir, file_name), img):
            raise OSError(f'could not write {osp.join(img_dir, file_name)}')
        content['images'].append(dict(id=index, file_name=file_name,
                                      height=int(img.shape[0]),
                                      width=int(img.shape[1])))
        for box, label in zip(bboxes, labels):
            width, height = float(box[2] - box[0]), float(box[3] - box[1])
            content['annotations'].append(dict(
                id=len(content['annotations']) + 1, image_id=index,
                category_id=int(label) + 1,
                bbox=[float(box[0]), float(box[1]), width, height],
                area=width * height, iscrowd=0))
    ann_file = osp.join(out_dir, 'annotations',
                        ann_name or f'instances_{dataset.split}.json')
    with open(ann_file, 'w', encoding='utf-8') as handle:
        json.dump(content, handle)
    return ann_file

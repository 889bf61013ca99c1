"""Data transforms of the training stack.

mmcv's own transforms are used where they exist (``LoadImageFromFile``,
``LoadAnnotations``, ``RandomFlip``); mmcv has no letterbox (its ``Resize`` +
``Pad`` keep two scale factors and pad one side only) and no HSV jitter, so
those two are here, together with the packing step that the collate function
``yolo_collate`` expects.

Boxes travel through the pipeline as ``results['gt_bboxes']``, float32
``[K, 4]`` xyxy pixels of the current image (mmcv's convention), with labels
in ``results['gt_bboxes_labels']``.
"""
from __future__ import annotations

from typing import Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from ..registry import TRANSFORMS


def _pair(name: str, value) -> Tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and v > 0 for v in value)):
        raise ValueError(
            f'{name} must be a positive int or a (width, height) pair of '
            f'positive ints, got {value!r}')
    return int(value[0]), int(value[1])


@TRANSFORMS.register_module()
class LetterResize(BaseTransform):
    """Resize keeping the aspect ratio, then pad to ``scale`` centred.

    One ratio ``r = min(W / w0, H / h0)`` maps original to input pixels:
    ``x_in = x0 * r + pad_left``, ``y_in = y0 * r + pad_top`` (the
    YOLOv5/ultralytics letterbox). Sets ``img_shape``, ``scale`` (``r``),
    ``pad`` ``(left, top)`` and ``scale_factor`` ``(r, r)``; boxes in
    ``gt_bboxes`` are mapped the same way.

    Args:
        scale: output ``(width, height)`` in pixels, or one int for a square.
        pad_val: grey level of the padding (114, as the references).
        allow_scale_up: if False, images smaller than ``scale`` are only
            padded (the references do this for evaluation).
        interpolation: mmcv interpolation name.
    """

    def __init__(self, scale, pad_val: int = 114, allow_scale_up: bool = True,
                 interpolation: str = 'bilinear') -> None:
        self.scale = _pair('scale', scale)
        if not 0 <= pad_val <= 255:
            raise ValueError(f'pad_val must be in [0, 255], got {pad_val}')
        self.pad_val = int(pad_val)
        self.allow_scale_up = bool(allow_scale_up)
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        height0, width0 = img.shape[:2]
        width, height = self.scale
        ratio = min(width / width0, height / height0)
        if not self.allow_scale_up:
            ratio = min(ratio, 1.0)
        new_w = max(1, int(round(width0 * ratio)))
        new_h = max(1, int(round(height0 * ratio)))
        if (new_w, new_h) != (width0, height0):
            img = mmcv.imresize(img, (new_w, new_h),
                                interpolation=self.interpolation)
        left = (width - new_w) // 2
        top = (height - new_h) // 2
        img = cv2.copyMakeBorder(img, top, height - new_h - top, left,
                                 width - new_w - left, cv2.BORDER_CONSTANT,
                                 value=(self.pad_val,) * 3)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale'] = float(ratio)
        results['scale_factor'] = (float(ratio), float(ratio))
        results['pad'] = (int(left), int(top))
        boxes = results.get('gt_bboxes')
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) * ratio
            boxes += np.array([left, top, left, top], dtype=np.float32)
            results['gt_bboxes'] = boxes
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale={self.scale}, '
                f'pad_val={self.pad_val}, '
                f'allow_scale_up={self.allow_scale_up})')


@TRANSFORMS.register_module()
class YOLOHSVRandomAug(BaseTransform):
    """Random hue, saturation and value gains (the YOLOv5/ultralytics jitter).

    Each gain is ``1 + uniform(-1, 1) * delta``; the image (uint8, BGR as
    mmcv loads it) goes through OpenCV's HSV space with lookup tables. Boxes
    do not change.

    Args:
        hue_delta: fraction of the hue circle (0.015 in the references).
        saturation_delta: relative saturation change (0.7).
        value_delta: relative brightness change (0.4).
    """

    def __init__(self, hue_delta: float = 0.015, saturation_delta: float = 0.7,
                 value_delta: float = 0.4) -> None:
        for name, value in (('hue_delta', hue_delta),
                            ('saturation_delta', saturation_delta),
                            ('value_delta', value_delta)):
            if not 0 <= value <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        self.deltas = np.array([hue_delta, saturation_delta, value_delta])

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('YOLOHSVRandomAug needs a uint8 [H, W, 3] image, '
                             f'got {img.dtype} {img.shape}')
        gains = np.random.uniform(-1, 1, 3) * self.deltas + 1
        hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
        levels = np.arange(0, 256, dtype=np.float32)
        lut_hue = ((levels * gains[0]) % 180).astype(np.uint8)
        lut_sat = np.clip(levels * gains[1], 0, 255).astype(np.uint8)
        lut_val = np.clip(levels * gains[2], 0, 255).astype(np.uint8)
        hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat),
                         cv2.LUT(val, lut_val)))
        results['img'] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(deltas={self.deltas.tolist()})'


@TRANSFORMS.register_module()
class PackYOLOInputs(BaseTransform):
    """Pack one sample for ``yolo_collate``.

    Output: ``dict(inputs=uint8 Tensor [3, H, W] (RGB), data_samples=dict(
    bboxes=float32 [K, 4] xyxy input pixels, labels=int64 [K], img_id,
    ori_shape, scale, pad, gt_bboxes, gt_labels))``. ``gt_bboxes`` /
    ``gt_labels`` are the annotations in original-image pixels (from
    ``results['instances']``), which ``CocoMetric`` evaluates against when
    it has no annotation file. Boxes are clipped to the image; boxes thinner
    than ``min_size`` input pixels after clipping are dropped from the
    training targets.

    Args:
        bgr_to_rgb: images arrive in BGR (mmcv/OpenCV order); the contract's
            inputs are RGB.
        min_size: smallest width/height in input pixels kept as a target.
    """

    def __init__(self, bgr_to_rgb: bool = True, min_size: float = 1.0) -> None:
        self.bgr_to_rgb = bool(bgr_to_rgb)
        if min_size < 0:
            raise ValueError(f'min_size must be >= 0, got {min_size}')
        self.min_size = float(min_size)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if self.bgr_to_rgb:
            img = img[..., ::-1]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        height, width = img.shape[:2]

        boxes = np.asarray(results.get('gt_bboxes', np.zeros((0, 4))),
                           dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(results.get('gt_bboxes_labels', np.zeros(0)),
                            dtype=np.int64).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(f'gt_bboxes has {len(boxes)} rows but '
                             f'gt_bboxes_labels has {len(labels)}')
        boxes = boxes.copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        keep = ((boxes[:, 2] - boxes[:, 0] >= self.min_size)
                & (boxes[:, 3] - boxes[:, 1] >= self.min_size))

        ori_shape = tuple(int(v) for v in results.get('ori_shape',
                                                      (height, width)))
        instances = results.get('instances', [])
        gt_bboxes = np.array([inst['bbox'] for inst in instances],
                             dtype=np.float32).reshape(-1, 4)
        gt_labels = np.array([inst['bbox_label'] for inst in instances],
                             dtype=np.int64).reshape(-1)
        sample = dict(
            bboxes=torch.from_numpy(boxes[keep]),
            labels=torch.from_numpy(labels[keep]),
            img_id=int(results.get('img_id', -1)),
            ori_shape=ori_shape,
            scale=float(results.get('scale', 1.0)),
            pad=tuple(int(v) for v in results.get('pad', (0, 0))),
            gt_bboxes=gt_bboxes,
            gt_labels=gt_labels)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(bgr_to_rgb={self.bgr_to_rgb}, '
                f'min_size={self.min_size})')

"""``YOLODetector`` (mmengine ``BaseModel``) and its data preprocessor.

Batch layout (from the data loader's ``yolo_collate``)::

    dict(inputs=uint8 [B, 3, H, W] RGB, letterboxed/padded, H and W multiples of 32,
         data_samples=dict(targets=float32 [N, 6] (batch_index, class_id, cx, cy, w, h)
                                   normalised to the padded input,
                           max_boxes=int (most boxes of one image in the batch),
                           metas=[dict(img_id=int, ori_shape=(h, w),
                                       scale=float (input pixels per original pixel),
                                       pad=(left, top) input pixels), ...]))

``forward(inputs, data_samples, mode)``:

- ``'tensor'``: the head's raw outputs, one per level, increasing stride
  (an end-to-end head: ``dict(one2many=[levels], one2one=[levels])``).
- ``'loss'``: ``loss_module(preds, targets, img_size=(H, W),
  max_boxes=max_boxes)``, a dict of named scalar losses.
- ``'predict'``: one dict per image, ``img_id``, ``bboxes`` float ``[K, 4]``
  xyxy in original-image pixels (clipped to the image), ``scores`` ``[K]``,
  ``labels`` long ``[K]``, by decreasing score, on the model's device.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor, BaseModel
from torch import Tensor, nn

from ..ops.nms import NMSResult, multiclass_nms
from ..registry import MODELS

#: ``test_cfg`` keys and their defaults (see ``multiclass_nms``).
#: ``end2end``: for a head with a one-to-one branch (``forward`` returns a
#: dict with ``one2one``), None or True = NMS-free inference, the top
#: ``max_per_img`` (point, class) scores of the one-to-one branch
#: (``topk_detections``); False = the one-to-many branch + NMS, for
#: comparison. A head without that branch always uses NMS (True is an error).
DEFAULT_TEST_CFG = dict(score_thr=0.001, iou_thr=0.6, max_per_img=100, nms_pre=1000,
                        multi_label=True, class_agnostic=False, end2end=None)

MODES = ('tensor', 'loss', 'predict')


@MODELS.register_module()
class YOLODataPreprocessor(BaseDataPreprocessor):
    """Moves a batch to the model's device and scales images to [0, 1].

    ``inputs`` is a uint8 ``[B, 3, H, W]`` tensor (or a list of equally
    sized ``[3, H, W]`` tensors) and becomes float32 divided by 255; a
    floating-point input is taken as already scaled and passed through.
    Channels stay in the order the pipeline gives (RGB for ``yolo_collate``);
    ``bgr_to_rgb=True`` reverses them. ``data_samples`` is moved to the
    device as it is (tensors inside dicts and lists included).

    ``channels_last=True`` hands the images on in the channels-last memory
    layout (same shape and values): convolutions then run in that layout
    (oneDNN on a CPU, about 15% faster for the YOLO models here; tensor
    cores on CUDA), and the losses accept head outputs in either layout.
    """

    def __init__(self, bgr_to_rgb: bool = False, non_blocking: bool = False,
                 channels_last: bool = False) -> None:
        super().__init__(non_blocking)
        for name, value in (('bgr_to_rgb', bgr_to_rgb), ('channels_last', channels_last)):
            if not isinstance(value, bool):
                raise TypeError(f'{name} must be a bool, got {value!r}')
        self.bgr_to_rgb = bgr_to_rgb
        self.channels_last = channels_last

    def forward(self, data: dict, training: bool = False) -> dict:
        if not hasattr(data, 'get') or 'inputs' not in data:
            raise KeyError(f'YOLODataPreprocessor: data must be a dict with an '
                           f'"inputs" key, got {type(data).__name__}')
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            if not inputs or any(not isinstance(x, Tensor) for x in inputs) \
                    or len({tuple(x.shape) for x in inputs}) != 1:
                raise ValueError('inputs given as a list must be tensors of one shape '
                                 '[3, H, W] (pad them in the collate function)')
            inputs = torch.stack(list(inputs))
        if not isinstance(inputs, Tensor) or inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'inputs must be a [B, 3, H, W] tensor, got '
                             f'{getattr(inputs, "shape", type(inputs).__name__)}')
        if self.bgr_to_rgb:
            inputs = inputs.flip(1)
        if inputs.dtype == torch.uint8:
            inputs = inputs.float().div_(255.0)
        elif not inputs.is_floating_point():
            raise TypeError(f'inputs must be uint8 (0..255) or floating point (0..1), '
                            f'got {inputs.dtype}')
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))


def topk_detections(boxes: Tensor, scores: Tensor, max_per_img: int,
                    score_thr: float = 0.0) -> NMSResult:
    """NMS-free detections: the ``max_per_img`` highest (point, class)
    scores of each image (ultralytics' end-to-end ``Detect.postprocess``).

    A point may appear with several classes. Computed as ultralytics does, in
    two steps that give the same set as one top-k over all ``N * C`` pairs:
    the ``k`` points with the highest best-class score, then the top ``k``
    of their ``k * C`` pairs (a pair in the global top ``k`` has a point
    whose best score is at least the pair's, so that point is among the
    first ``k``). ``k = min(max_per_img, N)``.

    Args:
        boxes: ``[B, N, 4]`` xyxy.
        scores: ``[B, N, C]`` class scores in [0, 1].
        max_per_img: slots per image.
        score_thr: a slot is filled (``mask``) only when its score is
            strictly above this; unfilled slots hold zeros.

    Returns:
        ``NMSResult`` with ``[B, max_per_img]`` slots, filled ones first by
        decreasing score, ``indices`` the point index into ``N``.
    """
    if not isinstance(scores, Tensor) or scores.dim() != 3 \
            or not isinstance(boxes, Tensor) or boxes.dim() != 3 \
            or boxes.shape[-1] != 4 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(
            f'boxes must be [B, N, 4] and scores [B, N, C] with the same B, N; got '
            f'{getattr(boxes, "shape", None)} and {getattr(scores, "shape", None)}')
    if isinstance(max_per_img, bool) or not isinstance(max_per_img, int) \
            or max_per_img < 1:
        raise ValueError(f'max_per_img must be a positive int, got {max_per_img!r}')
    batch, num_points, num_classes = scores.shape
    k = min(max_per_img, num_points)
    point_index = scores.amax(-1).topk(k, dim=1).indices  # [B, k]
    candidates = scores.gather(1, point_index[..., None].expand(-1, -1, num_classes))
    top_scores, pair_index = candidates.flatten(1).topk(k, dim=1)  # [B, k]
    indices = point_index.gather(1, pair_index // num_classes)
    labels = pair_index % num_classes
    top_boxes = boxes.gather(1, indices[..., None].expand(-1, -1, 4))
    mask = top_scores > score_thr
    if k < max_per_img:  # fewer points than slots: pad with empty slots
        pad = max_per_img - k
        top_boxes = torch.cat((top_boxes, top_boxes.new_zeros(batch, pad, 4)), 1)
        top_scores = torch.cat((top_scores, top_scores.new_zeros(batch, pad)), 1)
        labels = torch.cat((labels, labels.new_zeros(batch, pad)), 1)
        indices = torch.cat((indices, indices.new_zeros(batch, pad)), 1)
        mask = torch.cat((mask, mask.new_zeros(batch, pad)), 1)
    return NMSResult(boxes=top_boxes * mask[..., None], scores=top_scores * mask,
                     labels=labels * mask, indices=indices * mask, mask=mask)


def _build(cfg: Union[dict, nn.Module], name: str) -> nn.Module:
    if isinstance(cfg, nn.Module):
        return cfg
    if not hasattr(cfg, 'get') or 'type' not in cfg:
        raise TypeError(f'{name} must be a config dict with a "type" key or a module, '
                        f'got {cfg!r}')
    return MODELS.build(cfg)


def _with_channels(cfg: Union[dict, nn.Module], channels: Sequence[int]):
    """The config with ``in_channels`` filled in when it is missing or None."""
    if isinstance(cfg, nn.Module) or not hasattr(cfg, 'get'):
        return cfg
    cfg = dict(cfg)
    if cfg.get('in_channels') is None:
        cfg['in_channels'] = list(channels)
    return cfg


def resolve_test_cfg(test_cfg: Optional[dict]) -> Dict:
    """``DEFAULT_TEST_CFG`` updated by ``test_cfg``; unknown keys are a
    ``KeyError`` naming them."""
    if test_cfg is None:
        return dict(DEFAULT_TEST_CFG)
    if not hasattr(test_cfg, 'items'):
        raise TypeError(f'test_cfg must be a dict, got {test_cfg!r}')
    unknown = sorted(set(test_cfg) - set(DEFAULT_TEST_CFG))
    if unknown:
        raise KeyError(f'test_cfg has unknown key(s) {unknown}; expected some of '
                       f'{sorted(DEFAULT_TEST_CFG)}')
    resolved = dict(DEFAULT_TEST_CFG)
    resolved.update(test_cfg)
    if resolved['end2end'] not in (None, True, False):
        raise ValueError(f'test_cfg.end2end must be None, True or False, '
                         f'got {resolved["end2end"]!r}')
    return resolved


@MODELS.register_module()
class YOLODetector(BaseModel):
    """Backbone -> neck -> head, with the head's loss for training and
    decode + class-aware NMS for inference.

    Args:
        backbone, neck, bbox_head: config dicts (or built modules). The neck's
            ``in_channels`` defaults to the backbone's ``out_channels``, the
            head's to the neck's.
        data_preprocessor: config of the preprocessor (default
            ``YOLODataPreprocessor``).
        test_cfg: inference settings, see ``DEFAULT_TEST_CFG``.
    """

    def __init__(self, backbone: dict, neck: dict, bbox_head: dict,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 test_cfg: Optional[dict] = None, init_cfg=None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='YOLODataPreprocessor')
        # Built here through our registry, so no default scope is needed
        # (BaseModel would build from mmengine's root registry).
        super().__init__(data_preprocessor=_build(data_preprocessor, 'data_preprocessor'),
                         init_cfg=init_cfg)
        self.test_cfg = resolve_test_cfg(test_cfg)
        self.backbone = _build(backbone, 'backbone')
        self.neck = _build(_with_channels(neck, getattr(self.backbone, 'out_channels',
                                                        None) or []), 'neck')
        self.bbox_head = _build(_with_channels(bbox_head, getattr(self.neck, 'out_channels',
                                                                  None) or []),
                                'bbox_head')
        backbone_strides = getattr(self.backbone, 'out_strides', None)
        head_strides = getattr(self.bbox_head, 'strides', None)
        if backbone_strides is not None and head_strides is not None and \
                tuple(float(s) for s in backbone_strides) != tuple(head_strides):
            raise ValueError(f'bbox_head.strides {tuple(head_strides)} do not match the '
                             f'backbone output strides {tuple(backbone_strides)}')
        if not hasattr(self.bbox_head, 'loss_module'):
            raise TypeError('bbox_head must build its loss as bbox_head.loss_module')
        has_one2one = hasattr(self.bbox_head, 'one2one_box_branches')
        if self.test_cfg['end2end'] and not has_one2one:
            raise ValueError('test_cfg.end2end=True needs a head with a one-to-one '
                             f'branch (e.g. YOLO26Head), got '
                             f'{type(self.bbox_head).__name__}')
        #: NMS-free inference from the one-to-one branch
        self.end2end = has_one2one and self.test_cfg['end2end'] is not False

    @property
    def loss_module(self) -> nn.Module:
        """The head's loss (``MODELS.build(bbox_head.loss)``)."""
        return self.bbox_head.loss_module

    def extract_feat(self, inputs: Tensor):
        return self.neck(self.backbone(inputs))

    def _forward(self, inputs: Tensor, data_samples=None) -> List[Tensor]:
        return self.bbox_head(self.extract_feat(inputs))

    def forward(self, inputs: Tensor, data_samples: Optional[dict] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self._forward(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')

    def loss(self, inputs: Tensor, data_samples: dict) -> Dict[str, Tensor]:
        """Raw outputs into the head's loss; returns its dict of scalars."""
        if not hasattr(data_samples, 'get') or 'targets' not in data_samples:
            raise KeyError("mode='loss' needs data_samples=dict(targets=[N, 6] tensor, "
                           f"max_boxes=int), got {type(data_samples).__name__}")
        preds = self._forward(inputs)
        return self.loss_module(preds, data_samples['targets'],
                                img_size=(int(inputs.shape[-2]), int(inputs.shape[-1])),
                                max_boxes=data_samples.get('max_boxes'))

    def predict(self, inputs: Tensor, data_samples: Optional[dict] = None) -> List[dict]:
        """Detections per image in original-image pixels (see module doc).

        Without ``data_samples['metas']`` the input is taken as the original
        image (scale 1, no padding) and ``img_id`` is the batch position.
        """
        preds = self._forward(inputs)
        metas = data_samples.get('metas') if hasattr(data_samples, 'get') else None
        return self.postprocess(preds, metas, tuple(inputs.shape[-2:]))

    @torch.no_grad()
    def postprocess(self, preds: Sequence[Tensor], metas: Optional[Sequence[dict]],
                    input_shape: Sequence[int]) -> List[dict]:
        """Raw outputs -> decode, NMS, undo the letterbox, one dict per image.

        Args:
            preds: the head's raw outputs (for an end-to-end head the dict;
                ``test_cfg.end2end`` picks the branch).
            metas: per image ``ori_shape`` (h, w), ``scale`` (a float, or a
                pair ``(x, y)``: input pixels per original pixel), ``pad``
                (left, top) input pixels, ``img_id``; None: identity.
            input_shape: (H, W) of the network input.
        """
        cfg = self.test_cfg
        if hasattr(preds, 'keys'):  # an end-to-end head: pick the branch
            preds = preds['one2one' if self.end2end else 'one2many']
        # Decode and NMS in float32 even under AMP: a half-precision
        # matmul in the DFL expectation would cost pixels of box accuracy.
        with torch.autocast(device_type=preds[0].device.type, enabled=False):
            boxes, scores = self.bbox_head.decode([p.float() for p in preds])
            if self.end2end:
                result = topk_detections(boxes, scores, cfg['max_per_img'],
                                         score_thr=cfg['score_thr'])
            else:
                result = multiclass_nms(boxes, scores, score_thr=cfg['score_thr'],
                                        iou_thr=cfg['iou_thr'],
                                        max_per_img=cfg['max_per_img'],
                                        nms_pre=cfg['nms_pre'],
                                        multi_label=cfg['multi_label'],
                                        class_agnostic=cfg['class_agnostic'])
        batch = boxes.shape[0]
        if metas is None:
            metas = [dict(img_id=i, ori_shape=tuple(input_shape), scale=1.0, pad=(0, 0))
                     for i in range(batch)]
        if len(metas) != batch:
            raise ValueError(f'metas has {len(metas)} entries for a batch of {batch}')
        # One small host-to-device copy of the letterbox parameters per batch.
        offsets, scales, limits = [], [], []
        for index, meta in enumerate(metas):
            for key in ('ori_shape', 'scale', 'pad'):
                if key not in meta:
                    raise KeyError(f'metas[{index}] has no {key!r} key')
            scale = meta['scale']
            try:  # a number (numpy and 0-d tensors included) or an (x, y) pair
                scale_x, scale_y = (float(scale[0]), float(scale[1])) \
                    if hasattr(scale, '__len__') else (float(scale), float(scale))
                left, top = float(meta['pad'][0]), float(meta['pad'][1])
                height, width = float(meta['ori_shape'][0]), float(meta['ori_shape'][1])
            except (TypeError, IndexError, ValueError) as err:
                raise TypeError(
                    f'metas[{index}]: scale must be a number or an (x, y) pair, pad a '
                    f'(left, top) pair and ori_shape an (h, w) pair; got '
                    f'scale={scale!r}, pad={meta["pad"]!r}, '
                    f'ori_shape={meta["ori_shape"]!r} ({err})') from None
            if not (scale_x > 0 and scale_y > 0):
                raise ValueError(f'metas[{index}]: scale must be positive, got {scale!r}')
            offsets.append((left, top, left, top))
            scales.append((scale_x, scale_y, scale_x, scale_y))
            limits.append((width, height, width, height))
        table = torch.tensor([offsets, scales, limits], dtype=torch.float32)
        table = table.to(boxes.device)
        original = (result.boxes - table[0][:, None, :]) / table[1][:, None, :]
        original = original.clamp(min=0).minimum(table[2][:, None, :])
        counts = result.mask.sum(1).tolist()  # slots are filled first
        outputs = []
        for index, meta in enumerate(metas):
            count = counts[index]
            outputs.append(dict(
                img_id=meta.get('img_id', index),
                bboxes=original[index, :count],
                scores=result.scores[index, :count],
                labels=result.labels[index, :count]))
        return outputs

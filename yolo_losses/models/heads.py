"""Detection heads whose raw outputs are the composite losses' inputs.

- ``YOLOv3Head`` / ``YOLOv5Head``: one ``[B, A*(5+C), H, W]`` map per level
  (per anchor: x, y, w, h, objectness, C class logits; yolov5's ``Detect``
  layout), increasing stride.
- ``YOLOv8Head``: one ``[B, 4*reg_max + C, H, W]`` map per level (the four
  side distributions, then class logits; ultralytics' ``Detect`` layout).
- ``YOLOEndToEndHead`` (registered also as ``YOLO26Head`` with ``reg_max=1``
  and ``YOLOv10Head`` with ``reg_max=16``): a one-to-many and a one-to-one
  branch, each with ``YOLOv8Head``'s layout; ``forward`` returns
  ``dict(one2many=[levels], one2one=[levels])``, the input of ``E2ELoss``.

A head never computes a loss: it holds ``loss_module = MODELS.build(loss)``
and ``YOLODetector`` calls that with the raw outputs. Arguments the head
and its loss share (``num_classes``, ``anchors``, ``strides``,
``reg_max``) are filled into the loss config when it leaves them out, and
must agree when it states them.

``decode(preds)`` turns raw outputs into boxes and scores for inference.
"""
from __future__ import annotations

import copy
import inspect
import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..ops.anchors import (DEFAULT_ANCHORS, DEFAULT_STRIDES, NUM_BOX_ATTRS,
                           anchors_to_tensor, check_strides, decode_yolov3_boxes,
                           decode_yolov5_boxes, grid_cells, split_level_pred)
from ..ops.boxes import cxcywh_to_xyxy
from ..ops.points import distances_to_boxes, distribution_expectation, level_points
from ..registry import MODELS
from .layers import LEAKY_CFG, SILU_CFG, conv

#: Image side the references' bias priors assume (yolov5/ultralytics: 640;
#: mmdet's YOLOv3 head: 608).
PRIOR_IMG_SIZE = 640
YOLOV3_PRIOR_IMG_SIZE = 608


def _normalise(value: Any) -> Any:
    """Nested sequences/tensors as nested tuples of floats, for comparison."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def build_head_loss(loss: dict, owner: str, **shared: Any) -> nn.Module:
    """``MODELS.build(loss)`` with the head's shared arguments filled in.

    A key of ``shared`` is added to the config when the loss class accepts
    it and the config leaves it out; a config value that differs from the
    head's is a ``ValueError`` (the head would decode differently from what
    the loss trains).
    """
    return MODELS.build(fill_head_loss_cfg(loss, owner, **shared))


def fill_head_loss_cfg(loss: dict, owner: str, **shared: Any) -> dict:
    """The loss config with the head's shared arguments filled in (see
    ``build_head_loss``), not built."""
    if not hasattr(loss, 'get') or 'type' not in loss:
        raise TypeError(f'{owner}: loss must be a config dict with a "type" key, '
                        f'got {loss!r}')
    cfg = dict(loss)
    loss_type = cfg['type']
    loss_cls = MODELS.get(loss_type) if isinstance(loss_type, str) else loss_type
    accepted = None  # None: unknown class, let MODELS.build report it
    if inspect.isclass(loss_cls):
        params = inspect.signature(loss_cls.__init__).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        accepted = set(params) if not takes_any else None
    for key, value in shared.items():
        if key in cfg and cfg[key] is not None:
            if _normalise(cfg[key]) != _normalise(value):
                raise ValueError(
                    f'{owner}: loss.{key}={cfg[key]!r} differs from the head\'s '
                    f'{key}={value!r}; set it on the head only')
        elif accepted is None or key in accepted:
            cfg[key] = value
    return cfg


def _check_num_classes(num_classes: int, owner: str) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or num_classes < 1:
        raise ValueError(f'{owner}: num_classes must be a positive int, '
                         f'got {num_classes!r}')
    return num_classes


def _check_in_channels(in_channels: Optional[Sequence[int]], num_levels: int,
                       owner: str) -> List[int]:
    if in_channels is None:
        raise ValueError(f'{owner}: in_channels is required when the head is built '
                         'outside YOLODetector (which fills it from the neck)')
    if isinstance(in_channels, (str, bytes)) or not isinstance(in_channels, Sequence) \
            or any(isinstance(c, bool) or not isinstance(c, int) or c <= 0
                   for c in in_channels):
        raise ValueError(f'{owner}: in_channels must be a sequence of positive ints, '
                         f'got {in_channels!r}')
    if len(in_channels) != num_levels:
        raise ValueError(f'{owner}: in_channels has {len(in_channels)} entries but '
                         f'strides give {num_levels} levels')
    return list(in_channels)


def _check_feats(feats: Sequence[Tensor], num_levels: int, owner: str) -> None:
    if len(feats) != num_levels:
        raise ValueError(f'{owner} expects {num_levels} feature maps (one per '
                         f'stride), got {len(feats)}')


def _prior_logit(probability: float) -> float:
    return math.log(probability / (1 - probability))


class _AnchorHead(BaseModule):
    """Shared by the anchor-based heads: per level a prediction conv with
    ``A*(5+C)`` outputs, anchors, decode."""

    decode_cell: Any  # decode_yolov3_boxes or decode_yolov5_boxes

    def __init__(self, num_classes: int, in_channels: Optional[Sequence[int]],
                 anchors, strides: Sequence[float], loss: dict, init_cfg) -> None:
        super().__init__(init_cfg)
        owner = type(self).__name__
        self.num_classes = _check_num_classes(num_classes, owner)
        anchor_table = anchors_to_tensor(anchors, 'anchors')
        self.strides = check_strides(strides, anchor_table.shape[0], 'strides')
        self.num_levels, self.num_anchors = anchor_table.shape[:2]
        self.in_channels = _check_in_channels(in_channels, self.num_levels, owner)
        self.num_attrs = NUM_BOX_ATTRS + self.num_classes
        self.register_buffer('anchors', anchor_table, persistent=False)
        self.loss_module = build_head_loss(
            loss, owner, num_classes=self.num_classes,
            anchors=_normalise(anchor_table), strides=self.strides)

    def _pred_convs(self) -> List[nn.Conv2d]:
        raise NotImplementedError

    def _objectness_prior(self, stride: float) -> float:
        raise NotImplementedError

    def _class_prior(self) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def init_pred_biases(self) -> None:
        """Objectness and class bias priors of the reference implementation
        (box biases stay at PyTorch's default init)."""
        for pred_conv, stride in zip(self._pred_convs(), self.strides):
            bias = pred_conv.bias.view(self.num_anchors, self.num_attrs)
            bias[:, 4] = self._objectness_prior(stride)
            bias[:, NUM_BOX_ATTRS:] = self._class_prior()

    def init_weights(self) -> None:
        super().init_weights()
        self.init_pred_biases()

    def decode(self, preds: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Raw outputs -> boxes and class scores of every anchor.

        Returns:
            boxes: ``[B, N, 4]`` xyxy in input pixels, ``N = sum(A*H*W)``
                (level, anchor, row, column order).
            scores: ``[B, N, C]``: sigmoid(objectness) * sigmoid(class).
        """
        _check_feats(preds, self.num_levels, type(self).__name__)
        all_boxes, all_scores = [], []
        for level, (pred, stride) in enumerate(zip(preds, self.strides)):
            batch, _, height, width = pred.shape
            cells = split_level_pred(pred, self.num_anchors, self.num_classes,
                                     f'preds[{level}]').float()
            anchors = (self.anchors[level] / stride).to(cells.device)
            decoded = self.decode_cell(cells[..., :4], anchors[:, None, None, :])
            centres = (decoded[..., :2]
                       + grid_cells(height, width, device=cells.device)) * stride
            boxes = cxcywh_to_xyxy(torch.cat((centres, decoded[..., 2:4] * stride), -1))
            scores = cells[..., 4:5].sigmoid() * cells[..., NUM_BOX_ATTRS:].sigmoid()
            all_boxes.append(boxes.reshape(batch, -1, 4))
            all_scores.append(scores.reshape(batch, -1, self.num_classes))
        return torch.cat(all_boxes, 1), torch.cat(all_scores, 1)


@MODELS.register_module()
class YOLOv3Head(_AnchorHead):
    """YOLOv3 head: per level a 3x3 "bridge" convolution doubling the
    channels (LeakyReLU 0.1), then a 1x1 convolution to ``A*(5+C)``.

    Bias priors as mmdet's ``YOLOV3Head``: objectness
    ``logit(8 / (608 / stride)**2)`` (8 objects per 608-pixel image),
    classes ``logit(0.01)``. Decode: ``xy = sigmoid + cell``,
    ``wh = exp * anchor``.
    """

    decode_cell = staticmethod(decode_yolov3_boxes)

    def __init__(self, num_classes: int, in_channels: Optional[Sequence[int]] = None,
                 anchors=DEFAULT_ANCHORS, strides: Sequence[float] = DEFAULT_STRIDES,
                 loss: dict = dict(type='YOLOv3Loss'), init_cfg=None) -> None:
        super().__init__(num_classes, in_channels, anchors, strides, loss, init_cfg)
        self.bridges = nn.ModuleList(
            conv(c, 2 * c, 3, act_cfg=LEAKY_CFG) for c in self.in_channels)
        self.preds = nn.ModuleList(
            nn.Conv2d(2 * c, self.num_anchors * self.num_attrs, 1)
            for c in self.in_channels)
        self.init_pred_biases()

    def _pred_convs(self) -> List[nn.Conv2d]:
        return list(self.preds)

    def _objectness_prior(self, stride: float) -> float:
        return _prior_logit(8 / (YOLOV3_PRIOR_IMG_SIZE / stride) ** 2)

    def _class_prior(self) -> float:
        return _prior_logit(0.01)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        _check_feats(feats, self.num_levels, 'YOLOv3Head')
        return [pred(bridge(x)) for x, bridge, pred in zip(feats, self.bridges, self.preds)]


@MODELS.register_module()
class YOLOv5Head(_AnchorHead):
    """yolov5 ``Detect``: per level one 1x1 convolution to ``A*(5+C)``.

    Bias priors as yolov5's ``_initialize_biases``: objectness
    ``log(8 / (640 / stride)**2)`` (8 objects per 640-pixel image), classes
    ``log(0.6 / (C - 0.99))`` (set, not added to the random init, so
    ``init_weights`` can run twice). Decode: ``xy = 2*sigmoid - 0.5 +
    cell``, ``wh = (2*sigmoid)**2 * anchor``.
    """

    decode_cell = staticmethod(decode_yolov5_boxes)

    def __init__(self, num_classes: int, in_channels: Optional[Sequence[int]] = None,
                 anchors=DEFAULT_ANCHORS, strides: Sequence[float] = DEFAULT_STRIDES,
                 loss: dict = dict(type='YOLOv5Loss'), init_cfg=None) -> None:
        super().__init__(num_classes, in_channels, anchors, strides, loss, init_cfg)
        self.preds = nn.ModuleList(
            nn.Conv2d(c, self.num_anchors * self.num_attrs, 1) for c in self.in_channels)
        self.init_pred_biases()

    def _pred_convs(self) -> List[nn.Conv2d]:
        return list(self.preds)

    def _objectness_prior(self, stride: float) -> float:
        return math.log(8 / (PRIOR_IMG_SIZE / stride) ** 2)

    def _class_prior(self) -> float:
        return math.log(0.6 / (self.num_classes - 0.99))

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        _check_feats(feats, self.num_levels, 'YOLOv5Head')
        return [pred(x) for x, pred in zip(feats, self.preds)]


@MODELS.register_module()
class YOLOv8Head(BaseModule):
    """ultralytics YOLOv8 ``Detect``: per level a box branch (two 3x3
    convolutions, then a 1x1 to ``4*reg_max``) and a class branch (two 3x3,
    then a 1x1 to ``C``), concatenated box first.

    Branch widths as ultralytics: ``max(16, in_channels[0] // 4,
    4*reg_max)`` for boxes and ``max(in_channels[0], min(C, 100))`` for
    classes. Bias priors as ultralytics' ``bias_init``: box 1.0, classes
    ``log(5 / C / (640 / stride)**2)``. Decode: the expected distance of
    each side's softmax distribution (grid units) from the cell centre.
    """

    def __init__(self, num_classes: int, in_channels: Optional[Sequence[int]] = None,
                 strides: Sequence[float] = DEFAULT_STRIDES, reg_max: int = 16,
                 loss: dict = dict(type='YOLOv8Loss'), init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.num_classes = _check_num_classes(num_classes, 'YOLOv8Head')
        if isinstance(reg_max, bool) or not isinstance(reg_max, int) or reg_max < 2:
            raise ValueError(f'YOLOv8Head: reg_max must be an int >= 2, got {reg_max!r}')
        self.reg_max = reg_max
        self.strides = check_strides(strides, None, 'strides')
        self.num_levels = len(self.strides)
        self.in_channels = _check_in_channels(in_channels, self.num_levels, 'YOLOv8Head')
        box_width = max(16, self.in_channels[0] // 4, 4 * reg_max)
        cls_width = max(self.in_channels[0], min(num_classes, 100))
        self.box_branches = nn.ModuleList(nn.Sequential(
            conv(c, box_width, 3, act_cfg=SILU_CFG),
            conv(box_width, box_width, 3, act_cfg=SILU_CFG),
            nn.Conv2d(box_width, 4 * reg_max, 1)) for c in self.in_channels)
        self.cls_branches = nn.ModuleList(nn.Sequential(
            conv(c, cls_width, 3, act_cfg=SILU_CFG),
            conv(cls_width, cls_width, 3, act_cfg=SILU_CFG),
            nn.Conv2d(cls_width, num_classes, 1)) for c in self.in_channels)
        self.loss_module = build_head_loss(
            loss, 'YOLOv8Head', num_classes=self.num_classes, strides=self.strides,
            reg_max=self.reg_max)
        self.init_pred_biases()

    @torch.no_grad()
    def init_pred_biases(self) -> None:
        """ultralytics' ``bias_init``: box logits 1.0 (uniform distributions),
        class logits ``log(5 / C / (640 / stride)**2)`` (5 objects of C
        classes per 640-pixel image).

        ultralytics 8.4 sets the box logits to 2.0 instead of 8.0-8.3's 1.0;
        any constant gives the same uniform softmax and the same gradients,
        so the choice changes nothing."""
        for box_branch, cls_branch, stride in zip(self.box_branches,
                                                  self.cls_branches, self.strides):
            box_branch[-1].bias.fill_(1.0)
            cls_branch[-1].bias.fill_(
                math.log(5 / self.num_classes / (PRIOR_IMG_SIZE / stride) ** 2))

    def init_weights(self) -> None:
        super().init_weights()
        self.init_pred_biases()

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        _check_feats(feats, self.num_levels, 'YOLOv8Head')
        return [torch.cat((box_branch(x), cls_branch(x)), 1)
                for x, box_branch, cls_branch in zip(feats, self.box_branches,
                                                     self.cls_branches)]

    def decode(self, preds: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Raw outputs -> boxes and class scores of every point.

        Returns:
            boxes: ``[B, N, 4]`` xyxy in input pixels, ``N = sum(H*W)``
                (level, row, column order).
            scores: ``[B, N, C]`` sigmoid of the class logits.
        """
        _check_feats(preds, self.num_levels, 'YOLOv8Head')
        channels = 4 * self.reg_max + self.num_classes
        for level, pred in enumerate(preds):
            if pred.dim() != 4 or pred.shape[1] != channels:
                raise ValueError(f'preds[{level}] must be [B, 4*reg_max + C, H, W] = '
                                 f'[B, {channels}, H, W], got {tuple(pred.shape)}')
        batch = preds[0].shape[0]
        flat = torch.cat([p.flatten(2) for p in preds], 2).float().transpose(1, 2)
        num_points = flat.shape[1]
        dist_logits = flat[..., :4 * self.reg_max].reshape(batch, num_points, 4,
                                                            self.reg_max)
        points, point_strides = level_points([p.shape[-2:] for p in preds],
                                             self.strides, device=flat.device)
        boxes = distances_to_boxes(distribution_expectation(dist_logits), points)
        return boxes * point_strides, flat[..., 4 * self.reg_max:].sigmoid()


def _dw_cls_branch(in_channels: int, width: int, num_classes: int) -> nn.Sequential:
    """YOLOv10/YOLO26 class branch: twice (depth-wise 3x3, then 1x1), then
    the 1x1 prediction conv (ultralytics' non-legacy ``Detect.cv3`` and
    ``v10Detect.cv3``)."""
    return nn.Sequential(
        nn.Sequential(conv(in_channels, in_channels, 3, groups=in_channels,
                           act_cfg=SILU_CFG),
                      conv(in_channels, width, 1, act_cfg=SILU_CFG)),
        nn.Sequential(conv(width, width, 3, groups=width, act_cfg=SILU_CFG),
                      conv(width, width, 1, act_cfg=SILU_CFG)),
        nn.Conv2d(width, num_classes, 1))


def _conv_cls_branch(in_channels: int, width: int, num_classes: int) -> nn.Sequential:
    """YOLOv8 class branch: two 3x3 convs, then the 1x1 prediction conv."""
    return nn.Sequential(conv(in_channels, width, 3, act_cfg=SILU_CFG),
                         conv(width, width, 3, act_cfg=SILU_CFG),
                         nn.Conv2d(width, num_classes, 1))


#: YOLO26's loss (ultralytics 8.4.190 ``E2ELoss``): one-to-many TAL top-10,
#: one-to-one TAL top-7 then each box's single best point (``topk2=1``),
#: gains box 7.5, cls 0.5, L1/DFL 1.5 (the ``YOLOv8Loss`` defaults).
YOLO26_HEAD_LOSS = dict(
    type='E2ELoss', schedule='progressive',
    one2many=dict(type='YOLOv8Loss'),
    one2one=dict(type='YOLOv8Loss',
                 assigner=dict(type='TaskAlignedAssigner', topk=7, topk2=1,
                               alpha=0.5, beta=6.0)))


@MODELS.register_module()
class YOLOEndToEndHead(BaseModule):
    """End-to-end (NMS-free) detection head: YOLO26 and YOLOv10.

    Two branches of identical structure: one-to-many (``box_branches`` /
    ``cls_branches``, ultralytics' ``cv2`` / ``cv3``), trained with many
    positives per box and used with NMS, and one-to-one
    (``one2one_box_branches`` / ``one2one_cls_branches``, ``one2one_cv2`` /
    ``one2one_cv3``, deep copies of the first at construction), trained with
    one positive per box, so its top scores need no NMS.

    The one-to-one branch runs on **detached** neck features: its loss
    trains only its own convolutions, never the neck or backbone (ultralytics
    detaches in training only; detaching always gives the same values).

    Per level each branch outputs ``[B, 4*reg_max + C, H, W]``: with
    ``reg_max=1`` (YOLO26) four raw distances (left, top, right, bottom) in
    stride units, no activation; with ``reg_max > 1`` (YOLOv10) four
    ``reg_max``-bin distributions as ``YOLOv8Head``; then C class logits.

    Widths as ultralytics: box branch ``max(16, in_channels[0] // 4,
    4*reg_max)`` (3x3, 3x3, 1x1), class branch ``max(in_channels[0],
    min(C, 100))``. ``cls_branch='dw'`` (default: YOLO26's and v10Detect's
    depth-wise 3x3 + 1x1, twice) or ``'conv'`` (YOLOv8's two 3x3).

    Bias priors as ultralytics 8.4 ``bias_init`` on both branches: box 2.0
    (with ``reg_max=1``: every initial box reaches 2 strides to each side),
    classes ``log(5 / C / (640 / stride)**2)``.

    ``loss`` is an ``E2ELoss`` config; ``num_classes``, ``strides`` and
    ``reg_max`` are filled into its ``one2many`` and ``one2one`` configs
    (a differing value there is a ``ValueError``).

    ``forward(feats)`` returns ``dict(one2many=[levels], one2one=[levels])``.
    """

    BRANCHES = ('one2many', 'one2one')

    def __init__(self, num_classes: int, in_channels: Optional[Sequence[int]] = None,
                 strides: Sequence[float] = DEFAULT_STRIDES, reg_max: int = 1,
                 cls_branch: str = 'dw', loss: dict = YOLO26_HEAD_LOSS,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        owner = type(self).__name__
        self.num_classes = _check_num_classes(num_classes, owner)
        if isinstance(reg_max, bool) or not isinstance(reg_max, int) or reg_max < 1:
            raise ValueError(f'{owner}: reg_max must be an int >= 1, got {reg_max!r}')
        if cls_branch not in ('dw', 'conv'):
            raise ValueError(f"{owner}: cls_branch must be 'dw' or 'conv', "
                             f'got {cls_branch!r}')
        self.reg_max = reg_max
        self.strides = check_strides(strides, None, 'strides')
        self.num_levels = len(self.strides)
        self.in_channels = _check_in_channels(in_channels, self.num_levels, owner)
        box_width = max(16, self.in_channels[0] // 4, 4 * reg_max)
        cls_width = max(self.in_channels[0], min(num_classes, 100))
        make_cls = _dw_cls_branch if cls_branch == 'dw' else _conv_cls_branch
        self.box_branches = nn.ModuleList(nn.Sequential(
            conv(c, box_width, 3, act_cfg=SILU_CFG),
            conv(box_width, box_width, 3, act_cfg=SILU_CFG),
            nn.Conv2d(box_width, 4 * reg_max, 1)) for c in self.in_channels)
        self.cls_branches = nn.ModuleList(
            make_cls(c, cls_width, num_classes) for c in self.in_channels)
        self.one2one_box_branches = copy.deepcopy(self.box_branches)
        self.one2one_cls_branches = copy.deepcopy(self.cls_branches)
        self.loss_module = self._build_loss(loss, owner)
        self.init_pred_biases()

    def _build_loss(self, loss: dict, owner: str) -> nn.Module:
        if not hasattr(loss, 'get') or 'type' not in loss:
            raise TypeError(f'{owner}: loss must be a config dict with a "type" key, '
                            f'got {loss!r}')
        cfg = dict(loss)
        shared = dict(num_classes=self.num_classes, strides=self.strides,
                      reg_max=self.reg_max)
        for branch in self.BRANCHES:
            if hasattr(cfg.get(branch), 'get'):
                cfg[branch] = fill_head_loss_cfg(cfg[branch], f'{owner} ({branch})',
                                                 **shared)
        return build_head_loss(cfg, owner, **shared)

    def _branch_pairs(self):
        return ((self.box_branches, self.cls_branches),
                (self.one2one_box_branches, self.one2one_cls_branches))

    @torch.no_grad()
    def init_pred_biases(self) -> None:
        """ultralytics 8.4 ``bias_init`` on both branches: box 2.0, classes
        ``log(5 / C / (640 / stride)**2)``."""
        for box_branches, cls_branches in self._branch_pairs():
            for box_branch, cls_branch, stride in zip(box_branches, cls_branches,
                                                      self.strides):
                box_branch[-1].bias.fill_(2.0)
                cls_branch[-1].bias.fill_(
                    math.log(5 / self.num_classes / (PRIOR_IMG_SIZE / stride) ** 2))

    def init_weights(self) -> None:
        super().init_weights()
        self.init_pred_biases()

    @staticmethod
    def _run(feats: Sequence[Tensor], box_branches: nn.ModuleList,
             cls_branches: nn.ModuleList) -> List[Tensor]:
        return [torch.cat((box_branch(x), cls_branch(x)), 1)
                for x, box_branch, cls_branch in zip(feats, box_branches, cls_branches)]

    def forward(self, feats: Sequence[Tensor]) -> dict:
        _check_feats(feats, self.num_levels, type(self).__name__)
        one2many = self._run(feats, self.box_branches, self.cls_branches)
        # detached: the one-to-one loss must not shape the shared features
        one2one = self._run([x.detach() for x in feats], self.one2one_box_branches,
                            self.one2one_cls_branches)
        return dict(one2many=one2many, one2one=one2one)

    def decode(self, preds: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """One branch's raw outputs -> boxes and class scores of every point.

        Args:
            preds: one ``[B, 4*reg_max + C, H, W]`` map per level (one branch
                of ``forward``'s dict).

        Returns:
            boxes: ``[B, N, 4]`` xyxy in input pixels, ``N = sum(H*W)``
                (level, row, column order).
            scores: ``[B, N, C]`` sigmoid of the class logits.
        """
        owner = type(self).__name__
        if hasattr(preds, 'keys'):
            raise TypeError(f'{owner}.decode takes one branch (a list of levels), '
                            f'e.g. preds["one2one"], got a dict')
        _check_feats(preds, self.num_levels, owner)
        channels = 4 * self.reg_max + self.num_classes
        for level, pred in enumerate(preds):
            if pred.dim() != 4 or pred.shape[1] != channels:
                raise ValueError(f'preds[{level}] must be [B, 4*reg_max + C, H, W] = '
                                 f'[B, {channels}, H, W], got {tuple(pred.shape)}')
        batch = preds[0].shape[0]
        flat = torch.cat([p.flatten(2) for p in preds], 2).float().transpose(1, 2)
        num_points = flat.shape[1]
        box_part = flat[..., :4 * self.reg_max]
        if self.reg_max == 1:
            distances = box_part  # raw distances in stride units, as trained
        else:
            distances = distribution_expectation(
                box_part.reshape(batch, num_points, 4, self.reg_max))
        points, point_strides = level_points([p.shape[-2:] for p in preds],
                                             self.strides, device=flat.device)
        boxes = distances_to_boxes(distances, points)
        return boxes * point_strides, flat[..., 4 * self.reg_max:].sigmoid()


@MODELS.register_module()
class YOLO26Head(YOLOEndToEndHead):
    """``YOLOEndToEndHead`` with YOLO26's defaults: ``reg_max=1``, depth-wise
    class branch, ``E2ELoss`` with the progressive schedule."""


#: YOLOv10 as published (THU-MIG yolov10, ultralytics ``E2EDetectLoss``):
#: both branches weighted 1, one-to-one TAL top-1.
YOLOV10_HEAD_LOSS = dict(
    type='E2ELoss', schedule='constant',
    one2many=dict(type='YOLOv8Loss'),
    one2one=dict(type='YOLOv8Loss',
                 assigner=dict(type='TaskAlignedAssigner', topk=1, alpha=0.5,
                               beta=6.0)))


@MODELS.register_module()
class YOLOv10Head(YOLOEndToEndHead):
    """``YOLOEndToEndHead`` with YOLOv10's defaults: ``reg_max=16`` (DFL),
    depth-wise class branch (``v10Detect``), ``E2ELoss`` with the constant
    schedule and a top-1 one-to-one assigner."""

    def __init__(self, num_classes: int, in_channels: Optional[Sequence[int]] = None,
                 strides: Sequence[float] = DEFAULT_STRIDES, reg_max: int = 16,
                 cls_branch: str = 'dw', loss: dict = YOLOV10_HEAD_LOSS,
                 init_cfg=None) -> None:
        super().__init__(num_classes, in_channels, strides, reg_max, cls_branch,
                         loss, init_cfg)

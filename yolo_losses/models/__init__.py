"""Small YOLOv3/v5/v8-style detectors as mmengine ``BaseModel``s.

Registered names (``yolo_losses.registry.MODELS``, scope ``yolo_losses``):

- ``YOLODetector(backbone, neck, bbox_head, data_preprocessor=None,
  test_cfg=None, init_cfg=None)``: ``forward(inputs, data_samples=None,
  mode='tensor'|'loss'|'predict')``. When the neck config has no
  ``in_channels`` it gets the backbone's output channels, and likewise the
  head gets the neck's, so configs need not repeat channel lists.
  ``test_cfg`` keys (defaults): ``score_thr=0.001``, ``iou_thr=0.6``,
  ``max_per_img=100``, ``nms_pre=1000`` (candidates per image kept before
  NMS, highest scores first), ``multi_label=True`` (one candidate per
  (box, class) whose score passes ``score_thr``; False: the best class
  only), ``class_agnostic=False``.
- ``YOLODataPreprocessor(bgr_to_rgb=False)``: moves the batch to the model's
  device and scales uint8 ``[B, 3, H, W]`` to float ``[0, 1]``; images
  stay RGB as the data pipeline gives them (``bgr_to_rgb=True`` flips the
  channel order for pipelines that load BGR).
- Backbones (``out_channels`` and ``out_strides`` attributes):
  ``Darknet(deepen_factor=1.0, widen_factor=1.0, out_indices=(3, 4, 5))``
  (Darknet-53 layout, LeakyReLU 0.1) and
  ``CSPDarknet(arch='v8'|'v5', deepen_factor=1.0, widen_factor=1.0,
  out_indices=(2, 3, 4))`` (yolov5 v6+ C3 stages or YOLOv8 C2f stages,
  SPPF last, SiLU).
- Necks: ``YOLOv3FPN(in_channels=None)`` (outputs half the input channels),
  ``YOLOv5PAFPN(in_channels=None, deepen_factor=1.0)`` and
  ``YOLOv8PAFPN(in_channels=None, deepen_factor=1.0)`` (outputs keep the
  input channels).
- Heads (raw outputs in the loss contract's layouts, increasing stride):
  ``YOLOv3Head(num_classes, in_channels=None, anchors=DEFAULT_ANCHORS,
  strides=(8, 16, 32), loss=dict(type='YOLOv3Loss'))`` and ``YOLOv5Head``
  (same arguments, ``loss=dict(type='YOLOv5Loss')``): ``[B, A*(5+C), H,
  W]``; ``YOLOv8Head(num_classes, in_channels=None, strides=(8, 16, 32),
  reg_max=16, loss=dict(type='YOLOv8Loss'))``: ``[B, 4*reg_max + C, H, W]``.
  The head builds its loss with ``MODELS.build(loss)`` after filling in
  ``num_classes`` (and ``anchors``, ``strides``, ``reg_max``) from its own
  arguments where the loss config leaves them out; a loss config that
  states a different value is a ``ValueError``. So a config overrides
  ``model.bbox_head.num_classes`` once.

- End-to-end (NMS-free) detectors, see docs/end_to_end_models.md:
  ``YOLO26Backbone(deepen_factor=0.5, widen_factor=0.25)`` and
  ``YOLO26PAFPN(in_channels=None, deepen_factor=0.5, widen_factor=0.25)``
  (ultralytics 8.4 ``yolo26.yaml``: C3k2, SPPF, C2PSA); heads
  ``YOLOEndToEndHead`` / ``YOLO26Head`` (``reg_max=1``) / ``YOLOv10Head``
  (``reg_max=16``) with a one-to-many and a one-to-one branch (the latter
  on detached features), ``forward`` -> ``dict(one2many=[...],
  one2one=[...])`` for ``E2ELoss``; ``test_cfg.end2end`` (default: NMS-free
  top-k of the one-to-one branch; False: one-to-many + NMS).

Sizes (as yolov5/ultralytics): "n" ``deepen_factor=0.33, widen_factor=0.25``,
"s" ``deepen_factor=0.33, widen_factor=0.5``; ``configs/_base_/models/``
holds ``yolov{3,5,8}_{n,s}.py``.

Example::

    model = dict(
        type='YOLODetector',
        data_preprocessor=dict(type='YOLODataPreprocessor'),
        backbone=dict(type='CSPDarknet', arch='v8', deepen_factor=0.33,
                      widen_factor=0.25),
        neck=dict(type='YOLOv8PAFPN', deepen_factor=0.33),
        bbox_head=dict(type='YOLOv8Head', num_classes=5, reg_max=16,
                       loss=dict(type='YOLOv8Loss')),
        test_cfg=dict(score_thr=0.001, iou_thr=0.6, max_per_img=100))
"""
from .backbones import CSPDarknet, Darknet, YOLO26Backbone
from .detector import (DEFAULT_TEST_CFG, YOLODataPreprocessor, YOLODetector,
                       topk_detections)
from .heads import (YOLO26Head, YOLOEndToEndHead, YOLOv3Head, YOLOv5Head,
                    YOLOv8Head, YOLOv10Head)
from .necks import YOLO26PAFPN, YOLOv3FPN, YOLOv5PAFPN, YOLOv8PAFPN

__all__ = ['Darknet', 'CSPDarknet', 'YOLO26Backbone', 'YOLOv3FPN', 'YOLOv5PAFPN',
           'YOLOv8PAFPN', 'YOLO26PAFPN', 'YOLOv3Head', 'YOLOv5Head', 'YOLOv8Head',
           'YOLOEndToEndHead', 'YOLO26Head', 'YOLOv10Head', 'YOLODetector',
           'YOLODataPreprocessor', 'DEFAULT_TEST_CFG', 'topk_detections']

"""Shared cases of the composite-loss device tests: every composite loss
(and YOLOv3 style) on a small batch whose inputs come from a seed.

Used by ``test_composite_cuda.py`` (CUDA: no sync, graph capture, autocast)
and ``test_fused_kernels.py`` (the composites' sigmoid parts on the fused
kernel against the PyTorch path).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from yolo_losses import build_loss

NUM_CLASSES = 5
BATCH = 4
IMG = 128                     # grids 16, 8, 4
STRIDES = (8, 16, 32)
NUM_ANCHORS = 3
REG_MAX = 16
MAX_BOXES = 6
BOXES_PER_IMAGE = (3, 6, 0, 2)   # one image without targets

CASES = {
    'yolov3_keras': ('YOLOv3Loss', dict(style='keras')),
    'yolov3_darknet': ('YOLOv3Loss', dict(style='darknet')),
    'yolov3_pytorch': ('YOLOv3Loss', dict(style='pytorch_yolov3')),
    'yolov5': ('YOLOv5Loss', {}),
    'yolov8': ('YOLOv8Loss', {}),
}

# Eager vs replay and CUDA vs CPU: float32 round-off (atomics reorder sums).
RTOL, ATOL = 2e-5, 1e-6


def build(case: str, **parts):
    """The fast-path loss of ``case`` (``validate=False``); ``parts``
    override part configs by name (``loss_cls=dict(...)``)."""
    loss_type, extra = CASES[case]
    return build_loss(dict(type=loss_type, num_classes=NUM_CLASSES, validate=False,
                           **extra, **parts))


def random_preds(loss_type: str, rng: np.random.Generator, batch: int, img: int,
                 num_classes: int, scale: float = 1.0, device='cpu') -> List[torch.Tensor]:
    """Normal raw head outputs, one float32 leaf ``[B, ch, H, W]`` per level
    (strides 8, 16, 32), in the contract's layout of ``loss_type``."""
    if loss_type == 'YOLOv8Loss':
        channels = 4 * REG_MAX + num_classes
    else:
        channels = NUM_ANCHORS * (5 + num_classes)
    preds = []
    for stride in STRIDES:
        cells = img // stride
        values = rng.normal(0.0, scale, (batch, channels, cells, cells)).astype(np.float32)
        preds.append(torch.from_numpy(values).to(device).requires_grad_())
    return preds


def random_targets(rng: np.random.Generator, boxes_per_image: Sequence[int],
                   num_classes: int, sizes: Tuple[float, float]) -> torch.Tensor:
    """``[N, 6]`` (batch_index, class_id, cx, cy, w, h), normalised, inside
    the image, widths and heights uniform in ``sizes``, rows shuffled."""
    rows = []
    for image, count in enumerate(boxes_per_image):
        for _ in range(count):
            w, h = rng.uniform(*sizes, 2)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            rows.append((image, rng.integers(num_classes), cx, cy, w, h))
    if not rows:
        return torch.zeros(0, 6)
    table = np.asarray(rows, dtype=np.float32)[rng.permutation(len(rows))]
    return torch.from_numpy(table)


def make_inputs(case: str, seed: int, device) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Leaf predictions ``[B, ch, H, W]`` per level and ``[N, 6]`` targets.

    N is the same for every seed (``BOXES_PER_IMAGE``), so the values of one
    seed can be copied into the static tensors of another.
    """
    rng = np.random.default_rng(seed)
    preds = random_preds(CASES[case][0], rng, BATCH, IMG, NUM_CLASSES, device=device)
    targets = random_targets(rng, BOXES_PER_IMAGE, NUM_CLASSES, sizes=(0.03, 0.8))
    return preds, targets.to(device)


def step(loss, preds: Sequence[torch.Tensor],
         targets: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Tuple[torch.Tensor, ...]]:
    """One training-step loss: components and the gradients of their sum."""
    losses = loss(list(preds), targets, img_size=(IMG, IMG), max_boxes=MAX_BOXES)
    total = sum(losses.values())
    grads = torch.autograd.grad(total, list(preds))
    return losses, grads


def assert_same(actual: Tuple[dict, tuple], expected: Tuple[dict, tuple],
                rtol: float = RTOL, atol: float = ATOL) -> None:
    actual_losses, actual_grads = actual
    expected_losses, expected_grads = expected
    assert set(actual_losses) == set(expected_losses)
    for name in expected_losses:
        torch.testing.assert_close(actual_losses[name].cpu(), expected_losses[name].cpu(),
                                   rtol=rtol, atol=atol, msg=name)
    for level, (got, want) in enumerate(zip(actual_grads, expected_grads)):
        torch.testing.assert_close(got.cpu(), want.cpu(), rtol=rtol, atol=atol,
                                   msg=f'gradient of preds[{level}]')

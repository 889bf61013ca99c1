"""The composite YOLO losses on a GPU: no host sync, CUDA-graph capture.

Skipped without CUDA. With it, for every composite loss (and every YOLOv3
style), built with ``validate=False`` and called with ``max_boxes``:

- forward + backward under ``torch.cuda.set_sync_debug_mode('error')``
  (any synchronising CUDA call raises), and the result equals the CPU's;
- the same step captured in a CUDA graph (PyTorch's documented recipe:
  static inputs, warm-up iterations on a side stream, capture with
  ``torch.cuda.graph``), then replayed after copying new values into the
  static inputs, gives the eager losses and gradients of those values;
- under ``torch.autocast`` with float16 / bfloat16 predictions the losses
  are float32, finite, and equal to the float32 computation on the same
  (rounded) values, because the losses compute in float32 inside.

Eager and replayed results are compared to float32 round-off rather than
bitwise: scatter/index-add kernels accumulate with atomics, whose order may
differ between launches.
"""
from __future__ import annotations

import contextlib
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

from yolo_losses import build_loss

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU'),
]

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


def build(case: str):
    loss_type, extra = CASES[case]
    return build_loss(dict(type=loss_type, num_classes=NUM_CLASSES, validate=False,
                           **extra))


def make_inputs(case: str, seed: int, device) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Leaf predictions ``[B, ch, H, W]`` per level and ``[N, 6]`` targets.

    N is the same for every seed (``BOXES_PER_IMAGE``), so the values of one
    seed can be copied into the static tensors of another.
    """
    rng = np.random.default_rng(seed)
    if CASES[case][0] == 'YOLOv8Loss':
        channels = 4 * REG_MAX + NUM_CLASSES
    else:
        channels = NUM_ANCHORS * (5 + NUM_CLASSES)
    preds = []
    for stride in STRIDES:
        cells = IMG // stride
        values = rng.normal(0.0, 1.0, (BATCH, channels, cells, cells)).astype(np.float32)
        preds.append(torch.from_numpy(values).to(device).requires_grad_())
    rows = []
    for image, count in enumerate(BOXES_PER_IMAGE):
        for _ in range(count):
            w, h = rng.uniform(0.03, 0.8, 2)
            cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(h / 2, 1 - h / 2)
            rows.append((image, rng.integers(NUM_CLASSES), cx, cy, w, h))
    table = np.asarray(rows, dtype=np.float32)[rng.permutation(len(rows))]
    return preds, torch.from_numpy(table).to(device)


def step(loss, preds: Sequence[torch.Tensor],
         targets: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Tuple[torch.Tensor, ...]]:
    """One training-step loss: components and the gradients of their sum."""
    losses = loss(list(preds), targets, img_size=(IMG, IMG), max_boxes=MAX_BOXES)
    total = sum(losses.values())
    grads = torch.autograd.grad(total, list(preds))
    return losses, grads


@contextlib.contextmanager
def sync_debug_mode(mode: str):
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


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


@pytest.mark.parametrize('case', list(CASES))
def test_eager_step_has_no_host_sync_and_matches_cpu(case):
    device = torch.device('cuda')
    loss = build(case).to(device)
    preds, targets = make_inputs(case, 0, device)
    step(loss, preds, targets)          # first call: lazy CUDA/cuBLAS set-up
    torch.cuda.synchronize()

    with sync_debug_mode('error'):
        result = step(loss, preds, targets)
    torch.cuda.synchronize()

    for name, value in result[0].items():
        assert value.device.type == 'cuda' and value.dim() == 0, name
        assert torch.isfinite(value).item(), name
    cpu_loss = build(case)
    cpu_preds = [p.detach().cpu().requires_grad_() for p in preds]
    expected = step(cpu_loss, cpu_preds, targets.cpu())
    assert_same(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('case', list(CASES))
def test_cuda_graph_capture_and_replay_match_eager(case):
    device = torch.device('cuda')
    loss = build(case).to(device)
    first_preds, first_targets = make_inputs(case, 0, device)
    static_preds = [p.detach().clone().requires_grad_() for p in first_preds]
    static_targets = first_targets.clone()

    # Warm-up on a side stream (lazy initialisation and the caching
    # allocator's first allocations must not happen during capture).
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(loss, static_preds, static_targets)
    torch.cuda.current_stream().wait_stream(side)

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_losses, static_grads = step(loss, static_preds, static_targets)

    def fresh(tensors):
        return [t.detach().clone().requires_grad_() for t in tensors]

    seed0_losses = step(loss, fresh(first_preds), first_targets)[0]
    for seed in (1, 2):
        new_preds, new_targets = make_inputs(case, seed, device)
        with torch.no_grad():
            for static, new in zip(static_preds, new_preds):
                static.copy_(new)
            static_targets.copy_(new_targets)
        graph.replay()
        torch.cuda.synchronize()
        replayed = ({k: v.clone() for k, v in static_losses.items()},
                    tuple(g.clone() for g in static_grads))
        eager = step(loss, fresh(new_preds), new_targets)
        assert_same(replayed, eager)
        # The replay really used the new values: seed 0 gives other losses.
        assert not torch.allclose(replayed[0]['loss_cls'], seed0_losses['loss_cls'])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('case', list(CASES))
def test_autocast_low_precision_predictions(case, dtype):
    device = torch.device('cuda')
    loss = build(case).to(device)
    preds, targets = make_inputs(case, 3, device)
    low = [p.detach().to(dtype).requires_grad_() for p in preds]
    with torch.autocast(device_type='cuda', dtype=dtype), sync_debug_mode('error'):
        losses, grads = step(loss, low, targets)
    for name, value in losses.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value).item(), name
    for level, grad in enumerate(grads):
        assert grad.dtype == dtype and torch.isfinite(grad).all().item(), level
    # Same rounded values in float32, no autocast: the same numbers.
    rounded = [p.detach().float().requires_grad_() for p in low]
    expected_losses, expected_grads = step(loss, rounded, targets)
    for name in expected_losses:
        torch.testing.assert_close(losses[name], expected_losses[name],
                                   rtol=1e-4, atol=1e-6, msg=name)
    for level, (got, want) in enumerate(zip(grads, expected_grads)):
        # The gradient reaches the low-precision leaf rounded, once per path
        # through the graph (a cell read by several terms adds roundings):
        # a few units in the last place of the level's largest gradient.
        torch.testing.assert_close(got.float(), want.to(dtype).float(), rtol=1e-2,
                                   atol=1e-2 * float(want.abs().max()),
                                   msg=f'preds[{level}]')

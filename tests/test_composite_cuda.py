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

import pytest
import torch

from composite_cases import CASES, assert_same, build, make_inputs, step

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU'),
]


@contextlib.contextmanager
def sync_debug_mode(mode: str):
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


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

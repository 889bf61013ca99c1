"""Each composite loss compiles as one whole graph with ``torch.compile``.

``fullgraph=True`` makes TorchDynamo raise on any graph break, and a break
is what Python branching on tensor values, ``.item()``, ``.tolist()`` or a
data-dependent output shape (``nonzero``, boolean-mask indexing) cause. So
a clean whole-graph compile of the fast path (``validate=False``,
``max_boxes`` given) is a second, independent proof of what
``test_composite_no_sync.py`` checks with its guard, and the precondition
for CUDA-graph capture. The ``aot_eager`` backend also traces the backward
pass through AOTAutograd, so the gradients' graph has no data-dependent op
either; it runs the traced graphs with eager kernels, so the values must be
the eager module's to float32 round-off. (Under compilation the YOLOv3
ignore mask is one [B, P, M] expression instead of the eager blocked loop,
whose ``out=`` writes into buffer slices would break the graph.) A second batch with other values
and the same shapes must reuse the compiled graph (no recompilation).

Compiling with the default inductor backend also works on the CPU (checked
by hand; it takes 40-90 s a loss here, too slow for CI). Its speed is what
``benchmarks/bench_composite_losses.py --compile`` measures.
"""
from __future__ import annotations

import pytest
import torch
import torch._dynamo

from composite_cases import CASES, assert_same, build, make_inputs, step
from yolo_losses.assigners import yolov3_assigner


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize('case', list(CASES))
def test_whole_graph_compile_matches_eager(case, fresh_dynamo, monkeypatch):
    # Small blocks: the eager YOLOv3 ignore mask then runs its blocked loop
    # with a partial last block, which the compiled graph's one fused
    # expression must equal.
    monkeypatch.setattr(yolov3_assigner, '_IGNORE_BLOCK_ELEMENTS', 100)
    loss = build(case)
    compiled = torch.compile(loss, fullgraph=True, backend='aot_eager')
    for seed in (0, 1):
        preds, targets = make_inputs(case, seed, 'cpu')
        eager = step(loss, preds, targets)
        fresh = [p.detach().clone().requires_grad_() for p in preds]
        with torch._dynamo.config.patch(error_on_recompile=seed > 0):
            got = step(compiled, fresh, targets)
        assert_same(got, eager)


def _e2e_inputs(seed: int, channels: int):
    import numpy as np
    from composite_cases import (BATCH, BOXES_PER_IMAGE, IMG, NUM_CLASSES, STRIDES,
                                 random_targets)
    rng = np.random.default_rng(seed)
    branches = {}
    for branch in ('one2many', 'one2one'):
        branches[branch] = [torch.from_numpy(rng.normal(
            0.0, 1.0, (BATCH, channels, IMG // s, IMG // s)).astype('float32')).requires_grad_()
            for s in STRIDES]
    targets = random_targets(rng, BOXES_PER_IMAGE, NUM_CLASSES, sizes=(0.03, 0.8))
    return branches, targets


def _e2e_step(loss, branches, targets):
    from composite_cases import IMG, MAX_BOXES
    losses = loss(branches, targets, img_size=(IMG, IMG), max_boxes=MAX_BOXES)
    leaves = branches['one2many'] + branches['one2one']
    return losses, torch.autograd.grad(sum(losses.values()), leaves)


@pytest.mark.parametrize('config', ['yolo26', 'yolov10'])
def test_e2e_loss_compiles_whole_and_follows_set_epoch(config, fresh_dynamo):
    """E2ELoss (both branches, shared targets, schedule weights read from its
    buffers) is one graph too; moving the schedule changes buffer values, not
    the graph."""
    from composite_cases import NUM_CLASSES
    from yolo_losses import build_loss
    from yolo_losses.losses.e2e_loss import yolo26_loss, yolov10_loss
    if config == 'yolo26':
        loss = build_loss(yolo26_loss(NUM_CLASSES, num_epochs=8, validate=False))
        channels = 4 + NUM_CLASSES
    else:
        loss = build_loss(yolov10_loss(NUM_CLASSES, validate=False))
        channels = 4 * 16 + NUM_CLASSES
    compiled = torch.compile(loss, fullgraph=True, backend='aot_eager')
    for seed, epoch in ((0, 0), (1, 5)):
        loss.set_epoch(epoch)
        branches, targets = _e2e_inputs(seed, channels)
        eager = _e2e_step(loss, branches, targets)
        fresh = {name: [p.detach().clone().requires_grad_() for p in levels]
                 for name, levels in branches.items()}
        with torch._dynamo.config.patch(error_on_recompile=seed > 0):
            got = _e2e_step(compiled, fresh, targets)
        assert_same(got, eager)

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

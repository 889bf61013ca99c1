"""The fused Triton kernels of the sigmoid losses against the PyTorch path
(the reference) and against the formulas written out in float64.

Without Triton (``pip install triton``; ``make test`` installs it) the
kernel tests skip and only the switch tests run. With Triton and no GPU the
kernels run in Triton's interpreter on the CPU (``TRITON_INTERPRET=1``, set
by ``conftest.py`` before triton is first imported: ``triton.jit`` reads it
at decoration time); with a GPU they run compiled on CUDA, plus a
CUDA-graph and a no-sync test.
"""
import math
import os

import numpy as np
import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
# conftest.py switches the interpreter on (without CUDA) before triton is
# first imported; Triton's own library functions (tl.sum, ...) are decorated
# at that import, so setting it later would not take.

import composite_cases  # noqa: E402
import yolo_losses.kernels as kernels  # noqa: E402
from yolo_losses.losses import fused_path  # noqa: E402
from yolo_losses.losses.cross_entropy_loss import CrossEntropyLoss  # noqa: E402
from yolo_losses.losses.focal_loss import FocalLoss  # noqa: E402
from yolo_losses.losses.gfocal_loss import QualityFocalLoss  # noqa: E402
from yolo_losses.losses.utils import weight_reduce_loss  # noqa: E402
from yolo_losses.losses.varifocal_loss import VarifocalLoss  # noqa: E402

DEVICE = torch.device('cuda' if HAS_CUDA else 'cpu')
KERNELS_RUN = kernels.triton_available() and (HAS_CUDA or kernels.interpreter_enabled())
needs_triton = pytest.mark.skipif(
    not KERNELS_RUN,
    reason='needs triton (pip install triton) and CUDA, or TRITON_INTERPRET=1 set '
           'before triton is first imported (tests/conftest.py does)')
needs_cuda = pytest.mark.skipif(not (HAS_CUDA and kernels.triton_available()),
                                reason='needs triton and a CUDA GPU')

LOSSES = {
    'bce': (CrossEntropyLoss, dict(use_sigmoid=True)),
    'bce_options': (CrossEntropyLoss, dict(use_sigmoid=True, pos_weight=[0.5, 1.5, 2.0, 1.0, 3.0],
                                           label_smoothing=0.1)),
    'focal': (FocalLoss, dict(gamma=2.0, alpha=0.25)),
    'focal_options': (FocalLoss, dict(gamma=1.5, alpha=0.6, pos_weight=2.0)),
    'focal_gamma0': (FocalLoss, dict(gamma=0.0, alpha=0.25)),
    'focal_gamma07': (FocalLoss, dict(gamma=0.7, alpha=0.25)),
    'varifocal': (VarifocalLoss, dict(alpha=0.75, gamma=2.0)),
    'varifocal_options': (VarifocalLoss, dict(alpha=0.5, gamma=2.5, iou_weighted=False)),
    'quality_focal': (QualityFocalLoss, dict(beta=2.0)),
    'quality_focal_beta': (QualityFocalLoss, dict(beta=1.5)),
}


def seeded(seed, shape, *, positives=0.3):
    """Logits (spread to saturate some sigmoids) and soft targets with about
    ``positives`` non-zero, from numpy (identical across torch versions)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, shape)
    target = rng.uniform(0.0, 1.0, shape) * (rng.uniform(size=shape) < positives)
    return (torch.tensor(logits, dtype=torch.float32, device=DEVICE),
            torch.tensor(target, dtype=torch.float32, device=DEVICE))


def value_and_grad(loss, pred, *args, **kwargs):
    pred = pred.detach().clone().requires_grad_(True)
    value = loss(pred, *args, **kwargs)
    # a non-uniform upstream gradient checks the 'none' backward element-wise
    upstream = torch.linspace(0.5, 1.5, value.numel(), device=value.device).reshape(value.shape)
    (value * upstream).sum().backward()
    return value.detach(), pred.grad


def fused_and_plain(name, pred, target, *args, **kwargs):
    cls, options = LOSSES[name]
    fused = value_and_grad(cls(fused=True, **options), pred, target, *args, **kwargs)
    plain = value_and_grad(cls(fused=False, **options), pred, target, *args, **kwargs)
    return fused, plain


def assert_same(fused, plain, dtype=torch.float32):
    (value, grad), (value_ref, grad_ref) = fused, plain
    assert value.dtype == value_ref.dtype and value.shape == value_ref.shape
    assert grad.dtype == grad_ref.dtype == dtype
    torch.testing.assert_close(value, value_ref, rtol=1e-5, atol=1e-6)
    # Where the slope is a difference of near-equal terms (s - t with s close
    # to t) its round-off is relative to the terms, not to the result: the
    # absolute tolerance scales with the largest gradient.
    scale = grad_ref.abs().max().item() if grad_ref.numel() else 0.0
    if dtype == torch.float32:
        torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-6 * scale + 1e-12)
    else:  # both round a float32 gradient to 8 bits: at most one unit apart
        torch.testing.assert_close(grad.float(), grad_ref.float(), rtol=2 ** -7,
                                   atol=2 ** -8 * scale + 1e-12)


# --- the formulas written out in float64 ------------------------------------------

def plain_bce(x, t, pos_weight=1.0):
    s = torch.sigmoid(x)
    return -(pos_weight * t * torch.log(s) + (1 - t) * torch.log(1 - s))


def plain_element(name, x, t):
    """The element-wise loss of each case (QFL before its class sum)."""
    options = LOSSES[name][1]
    s = torch.sigmoid(x)
    if name.startswith('bce'):
        if options.get('label_smoothing'):
            eps = options['label_smoothing']
            t = t * (1 - eps) + eps / 2
        pos_weight = torch.tensor(options.get('pos_weight', [1.0]), dtype=x.dtype)
        return plain_bce(x, t, pos_weight)
    if name.startswith('focal'):
        gamma, alpha = options['gamma'], options['alpha']
        p_t = s * t + (1 - s) * (1 - t)
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
        return alpha_t * (1 - p_t) ** gamma * plain_bce(x, t, options.get('pos_weight', 1.0))
    if name.startswith('varifocal'):
        positive = t if options.get('iou_weighted', True) else torch.ones_like(t)
        return plain_bce(x, t) * torch.where(t > 0, positive,
                                             options['alpha'] * s ** options['gamma'])
    return plain_bce(x, t) * (t - s).abs() ** options['beta']


@needs_triton
@pytest.mark.parametrize('name', list(LOSSES))
def test_written_out_formula(name):
    pred, target = seeded(1, (9, 5))
    loss = LOSSES[name][0](fused=True, reduction='none', **LOSSES[name][1])
    x = pred.detach().double().cpu().requires_grad_(True)
    expected = plain_element(name, x, target.double().cpu())
    if name.startswith('quality'):
        expected = expected.sum(dim=1)
    expected.sum().backward()
    value, grad = value_and_grad(loss, pred, target)
    torch.testing.assert_close(value.cpu().double(), expected.detach(), rtol=1e-5, atol=1e-6)
    # value_and_grad weighs the elements by a ramp; undo it on the reference
    upstream = torch.linspace(0.5, 1.5, value.numel(), dtype=torch.float64)
    if name.startswith('quality'):
        upstream = upstream[:, None]
    else:
        upstream = upstream.reshape(value.shape)
    torch.testing.assert_close(grad.cpu().double(), x.grad * upstream, rtol=1e-4, atol=1e-6)


def test_hand_computed_focal_and_bce():
    # p = sigmoid(ln 3) = 3/4 against target 1, and sigmoid(0) = 1/2 against 0:
    # BCE = ln(4/3) + ln 2; focal = 0.25 (1/4)^2 ln(4/3) + 0.75 (1/2)^2 ln 2.
    if not KERNELS_RUN:
        pytest.skip('needs triton')
    pred = torch.tensor([[math.log(3.0), 0.0]], device=DEVICE)
    target = torch.tensor([[1.0, 0.0]], device=DEVICE)
    bce = CrossEntropyLoss(use_sigmoid=True, reduction='sum', fused=True)(pred, target)
    focal = FocalLoss(reduction='sum', fused=True)(pred, target)
    assert bce.item() == pytest.approx(math.log(4 / 3) + math.log(2.0), rel=1e-6)
    assert focal.item() == pytest.approx(
        0.25 * 0.25 ** 2 * math.log(4 / 3) + 0.75 * 0.5 ** 2 * math.log(2.0), rel=1e-6)


# --- the fused path equals the PyTorch path ---------------------------------------

@needs_triton
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('name', list(LOSSES))
def test_matches_pytorch_path(name, dtype):
    # 3 x 250 x 5 = 3750 elements: several blocks of 1024, the last one partial
    pred, target = seeded(2, (750, 5))
    pred = pred.to(dtype)
    rows = torch.rand(750, device=DEVICE)
    for reduction, weight, avg_factor in (('mean', None, None), ('sum', rows[:, None], None),
                                          ('mean', rows[:, None], 17.5), ('none', None, None)):
        if name.startswith('quality') and weight is not None:
            weight = weight[:, 0]  # QFL weighs priors: [N]
        fused, plain = fused_and_plain(name, pred, target, weight, avg_factor=avg_factor,
                                       reduction_override=reduction)
        assert_same(fused, plain, dtype)


@needs_triton
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_targets_and_weights(dtype):
    pred, target = seeded(3, (64, 5))
    weight = torch.rand(64, 5, device=DEVICE).to(dtype)
    for name in ('bce', 'focal', 'varifocal'):
        fused, plain = fused_and_plain(name, pred.to(dtype), target.to(dtype), weight)
        assert_same(fused, plain, dtype)


@needs_triton
@pytest.mark.parametrize('shape', [(1, 1), (7,), (3, 1, 13), (5, 3, 7)])
def test_odd_shapes(shape):
    pred, target = seeded(4, shape)
    for name in ('bce', 'focal_options', 'varifocal'):
        assert_same(*fused_and_plain(name, pred, target, reduction_override='none'))
        assert_same(*fused_and_plain(name, pred, target))


@needs_triton
def test_small_blocks_cover_every_tail():
    from yolo_losses.kernels.elementwise import FOCAL, LossSpec, fused_elementwise_loss

    pred, target = seeded(5, (29, 11))      # 319 elements: 4 blocks of 64, tail of 63
    spec = LossSpec(FOCAL, gamma=2.0, alpha=0.25)
    weight = torch.rand(29, 1, device=DEVICE)
    reference = FocalLoss(fused=False, reduction='none')
    for block in (16, 64, 512):
        x = pred.clone().requires_grad_(True)
        total = fused_elementwise_loss(x, target, spec, weight=weight, reduce=True, block=block)
        total.backward()
        x_ref = pred.clone().requires_grad_(True)
        expected = reference(x_ref, target, weight).sum()
        expected.backward()
        torch.testing.assert_close(total, expected, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-7)


@needs_triton
def test_in_kernel_reduction_equals_weight_reduce_loss():
    """The kernel's sum, divided by the count or by ``avg_factor + eps``,
    equals ``weight_reduce_loss`` on the kernel's own element-wise loss."""
    from yolo_losses.kernels.elementwise import BCE, LossSpec, fused_elementwise_loss

    pred, target = seeded(6, (300, 7))
    weight = torch.rand(300, 7, device=DEVICE)
    spec = LossSpec(BCE)
    elementwise = fused_elementwise_loss(pred, target, spec)
    for reduction, avg_factor in (('mean', None), ('sum', None), ('mean', 123.0),
                                  ('mean', torch.tensor(9.0, device=DEVICE))):
        got = fused_path._reduced(pred, target, spec, labels=False, weight=weight,
                                  pos_weight=None, reduction=reduction,
                                  avg_factor=avg_factor, count=pred.numel())
        expected = weight_reduce_loss(elementwise, weight, reduction, avg_factor)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match='avg_factor can not be used with reduction="sum"'):
        fused_path._reduced(pred, target, spec, labels=False, weight=weight, pos_weight=None,
                            reduction='sum', avg_factor=3.0, count=pred.numel())


@needs_triton
def test_weight_layouts_and_strided_rows():
    head = torch.randn(2, 40, 5 + 6, device=DEVICE) * 3   # a YOLO head: box, obj, classes
    pred = head[..., 5:]                                  # rows strided by 11, in place
    _, soft = seeded(7, (2, 40, 6))
    weights = {
        'scalar': torch.tensor(0.7, device=DEVICE),
        'one': torch.tensor([0.7], device=DEVICE),
        'row': torch.rand(2, 40, 1, device=DEVICE),
        'column': torch.rand(6, device=DEVICE),
        'full': torch.rand(2, 40, 6, device=DEVICE),
        'full_strided': torch.rand(2, 40, 9, device=DEVICE)[..., 2:8],
        'full_transposed': torch.rand(6, 40, 2, device=DEVICE).permute(2, 1, 0),
        'batch': torch.rand(2, 1, 6, device=DEVICE),
    }
    target_transposed = soft.permute(2, 1, 0).contiguous().permute(2, 1, 0)
    for name in ('bce', 'focal', 'varifocal'):
        for key, weight in weights.items():
            if name == 'focal' and key in ('scalar', 'one', 'column', 'batch'):
                continue  # FocalLoss takes mmdet's weight shapes only
            assert_same(*fused_and_plain(name, pred, soft, weight))
        assert_same(*fused_and_plain(name, pred, target_transposed, weights['row'],
                                     reduction_override='none'))


@needs_triton
def test_focal_prior_weights_and_class_ids():
    pred, _ = seeded(8, (40, 6))
    rng = np.random.default_rng(8)
    ids = torch.tensor(rng.integers(0, 7, 40), device=DEVICE)      # 6 = background
    per_prior = torch.rand(40, device=DEVICE)
    for weight in (None, per_prior, per_prior[:, None], torch.rand(240, device=DEVICE)):
        for name in ('focal', 'focal_options'):
            assert_same(*fused_and_plain(name, pred, ids, weight))
            assert_same(*fused_and_plain(name, pred, ids, weight, reduction_override='none'))


@needs_triton
@pytest.mark.filterwarnings('ignore:CrossEntropyLoss with ignore_index averages')
def test_bce_class_ids_ignore_and_avg_non_ignore():
    pred, soft = seeded(9, (40, 5))
    ids = torch.tensor(np.random.default_rng(9).integers(0, 6, 40), device=DEVICE)
    ids[[1, 7]] = 255              # ignored
    ids[3] = -4                    # negative: weight 0
    soft[0, 2] = 255.0             # an ignored dense entry
    sample_weight = torch.rand(40, device=DEVICE)
    for kwargs in (dict(ignore_index=255), dict(ignore_index=255, avg_non_ignore=True),
                   dict(ignore_index=255, avg_non_ignore=True, label_smoothing=0.2,
                        pos_weight=[1.0, 2.0, 0.5, 1.0, 1.5]),
                   dict(ignore_index=255, class_weight=[1.0, 2.0, 0.5, 1.0, 1.5],
                        reduction='sum')):
        for target, weight in ((ids, None), (ids, sample_weight), (ids.int(), sample_weight),
                               (soft, None), (soft, sample_weight[:, None])):
            for reduction in (None, 'none'):
                losses = [CrossEntropyLoss(use_sigmoid=True, fused=fused, validate=False,
                                           **kwargs) for fused in (True, False)]
                assert_same(*(value_and_grad(loss, pred, target, weight,
                                             reduction_override=reduction)
                              for loss in losses))


@needs_triton
def test_loss_weight_and_avg_factor_tensor():
    pred, target = seeded(10, (50, 4))
    avg_factor = torch.tensor(12.0, device=DEVICE)
    for cls in (FocalLoss, VarifocalLoss, QualityFocalLoss):
        losses = [cls(fused=fused, loss_weight=2.5) for fused in (True, False)]
        assert_same(*(value_and_grad(loss, pred, target, avg_factor=avg_factor)
                      for loss in losses))


@needs_triton
@pytest.mark.parametrize('name', ['bce', 'focal', 'varifocal', 'quality_focal'])
def test_empty_input(name):
    pred = torch.zeros(0, 5, device=DEVICE)
    for reduction, avg_factor in (('mean', None), ('sum', None), ('none', None),
                                  ('mean', 4.0)):
        fused, plain = fused_and_plain(name, pred, torch.zeros(0, 5, device=DEVICE),
                                       avg_factor=avg_factor, reduction_override=reduction)
        assert_same(fused, plain)
        assert fused[0].sum().item() == 0.0 and fused[1].shape == (0, 5)
        if reduction == 'none':  # the element-wise shape, as PyTorch's
            assert fused[0].shape == ((0,) if name == 'quality_focal' else (0, 5))


# --- dispatch and switches (no Triton needed) -------------------------------------

def test_auto_on_cpu_keeps_pytorch(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('the fused path ran on CPU in auto mode')
    for name in ('fused_binary_cross_entropy', 'fused_sigmoid_focal', 'fused_varifocal',
                 'fused_quality_focal'):
        monkeypatch.setattr(fused_path, name, fail)
    pred, target = torch.randn(4, 5), torch.rand(4, 5)
    for cls, options in LOSSES.values():
        assert torch.isfinite(cls(**options)(pred, target))


def test_resolve_fused_rules(monkeypatch):
    cuda, cpu = torch.device('cuda'), torch.device('cpu')
    monkeypatch.setattr(kernels, 'triton_available', lambda: True)
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    assert kernels.resolve_fused(None, 'L', cuda, None)
    assert not kernels.resolve_fused(None, 'L', cuda, 'float64')      # unsupported: fall back
    assert not kernels.resolve_fused(None, 'L', cpu, None)            # CPU: PyTorch
    assert not kernels.resolve_fused(False, 'L', cuda, None)
    with monkeypatch.context() as tracing:                           # torch.compile's own
        tracing.setattr(torch.compiler, 'is_compiling', lambda: True)
        assert not kernels.resolve_fused(None, 'L', cuda, None)
        assert kernels.resolve_fused(True, 'L', cuda, None)
    with kernels.fused(False):                                       # the global switch
        assert not kernels.resolve_fused(None, 'L', cuda, None)
        assert kernels.resolve_fused(True, 'L', cuda, None)           # explicit wins
    assert kernels.fused_enabled()
    with pytest.raises(ValueError, match=r'FocalLoss\(fused=True\) cannot run .*: pred is'):
        kernels.resolve_fused(True, 'FocalLoss', cuda, 'pred is torch.float64')
    with pytest.raises(RuntimeError, match='needs CUDA tensors'):
        kernels.resolve_fused(True, 'L', cpu, None)
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    assert kernels.resolve_fused(True, 'L', cpu, None)
    assert not kernels.resolve_fused(None, 'L', cpu, None)  # the interpreter is never auto
    monkeypatch.setattr(kernels, 'triton_available', lambda: False)
    assert not kernels.resolve_fused(None, 'L', cuda, None)
    with pytest.raises(RuntimeError, match='needs triton'):
        kernels.resolve_fused(True, 'L', cuda, None)


def test_environment_switch(monkeypatch):
    for value, expected in (('0', False), ('off', False), ('false', False), ('1', True),
                            ('', True)):
        monkeypatch.setenv('YOLO_LOSSES_FUSED', value)
        assert kernels._env_switch() is expected
    monkeypatch.delenv('YOLO_LOSSES_FUSED')
    assert kernels._env_switch() is True


def test_fused_option_checked_at_construction():
    with pytest.raises(TypeError, match='fused must be True, False or None'):
        FocalLoss(fused='yes')
    with pytest.raises(ValueError, match='fused=True needs use_sigmoid=True'):
        CrossEntropyLoss(fused=True)
    assert CrossEntropyLoss(fused=False).fused is False


def test_unsupported_calls_name_the_reason(monkeypatch):
    monkeypatch.setattr(kernels, 'triton_available', lambda: True)
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    pred, target = torch.randn(4, 3), torch.rand(4, 3)
    cases = [
        (FocalLoss(fused=True), (pred.double(), target), 'pred is torch.float64'),
        (FocalLoss(fused=True, activated=True), (pred.sigmoid(), target), 'activated=True'),
        (VarifocalLoss(fused=True), (pred, target.requires_grad_(True)),
         'target requires grad'),
        (VarifocalLoss(fused=True), (pred, target.detach(), target.detach().double()),
         'weight is float64'),
        (QualityFocalLoss(fused=True), (pred, (torch.tensor([0, 1, 3, 2]), torch.rand(4))),
         r'\(label, score\) target'),
        (QualityFocalLoss(fused=True), (torch.randn(2, 3, 4), torch.rand(2, 3, 4)),
         'pred is 3-d'),
        (CrossEntropyLoss(use_sigmoid=True, fused=True), (pred, target > 0.5),
         'target is torch.bool'),
    ]
    for loss, args, reason in cases:
        with pytest.raises(ValueError, match=reason):
            loss(*args)
        loss.fused = None  # auto: the same call falls back to PyTorch
        assert torch.isfinite(loss(*args)).all()


# --- CUDA only: graphs and syncs --------------------------------------------------

@needs_triton
def test_in_place_change_before_backward_is_an_error():
    pred, target = seeded(12, (8, 5))
    pred.requires_grad_(True)
    x = pred * 1.0
    value = FocalLoss(fused=True)(x, target)
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        value.backward()


def test_benchmark_smoke(capsys):
    import importlib.util as util
    path = os.path.join(os.path.dirname(__file__), '..', 'benchmarks',
                        'bench_fused_elementwise.py')
    spec = util.spec_from_file_location('bench_fused_elementwise', path)
    bench = util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(['--device', 'cpu', '--size', 'tiny', '--repeat', '1', '--warmup', '0',
                       '--dtype', 'float32'])
    impls = {(row['loss'], row['impl']) for row in rows}
    assert ('-', 'copy') in impls and ('BCE', 'torch_bce') in impls
    for name in bench.LOSS_CONFIGS:
        assert (name, 'plain') in impls
    assert all(row['ms'] > 0 for row in rows)
    out = capsys.readouterr().out
    assert 'x roofline' in out and 'fused: skipped (needs CUDA' in out



@needs_triton
@pytest.mark.parametrize('case', list(composite_cases.CASES))
def test_composite_parts_run_on_the_kernel(case):
    """Every part of a composite loss that has a fused kernel accepts the
    composite's calls (``fused=True`` raises on an unsupported call, where
    the default ``fused=None`` would quietly fall back to PyTorch on a GPU),
    and gives the PyTorch path's losses and gradients."""
    fast = composite_cases.build(case).to(DEVICE)
    switched = []
    for name, part in fast.named_children():
        if getattr(part, 'fused', 'absent') is None:
            part.fused = True
            switched.append(name)
    assert 'loss_cls' in switched and ('loss_obj' in switched) == (case != 'yolov8')
    plain = composite_cases.build(case).to(DEVICE)
    for name in switched:
        getattr(plain, name).fused = False
    preds, targets = composite_cases.make_inputs(case, 0, DEVICE)
    composite_cases.assert_same(composite_cases.step(fast, preds, targets),
                                composite_cases.step(plain, preds, targets))

@needs_cuda
def test_cuda_graph_and_no_sync():
    pred, target = seeded(11, (2048, 80))
    weight = torch.rand(2048, 1, device=DEVICE)
    pred.requires_grad_(True)
    losses = [LOSSES[name][0](fused=True, validate=False, **LOSSES[name][1])
              for name in ('bce_options', 'focal', 'varifocal', 'quality_focal')]

    def step():
        pred.grad = None
        total = sum(loss(pred, target, weight if not isinstance(loss, QualityFocalLoss)
                         else weight[:, 0]) for loss in losses)
        total.backward()
        return total

    eager = step().detach().clone()
    eager_grad = pred.grad.clone()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    pred.grad = None
    with torch.cuda.graph(graph):
        captured = sum(loss(pred, target, weight if not isinstance(loss, QualityFocalLoss)
                            else weight[:, 0]) for loss in losses)
        captured.backward()
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(captured, eager)
    torch.testing.assert_close(pred.grad, eager_grad)

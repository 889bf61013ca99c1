"""Forward + backward of the element-wise sigmoid losses: fused Triton kernels
against our PyTorch path, PyTorch's BCE and the memory roofline.

For each of sigmoid ``CrossEntropyLoss``, ``FocalLoss``, ``VarifocalLoss``
and ``QualityFocalLoss`` (tensor target), ``reduction='mean'``,
``validate=False``, on logits ``[B*A, C]`` (a YOLOv8 head, 64 x 8400 x 80 on
CUDA by default) and soft targets of the same shape and dtype with ~5%
positives:

- ``fused``: the loss built with ``fused=True`` (CUDA and triton only;
  otherwise one line says why it is skipped);
- ``plain``: the same loss with ``fused=False`` (our PyTorch path);
- ``torch_bce``: ``F.binary_cross_entropy_with_logits(reduction='mean')``
  on the same tensors, the lower bound of what PyTorch itself does;
- ``torchvision``: ``torchvision.ops.sigmoid_focal_loss`` when it imports;
- ``copy``: ``dst.copy_(logits)``, the calibration of the memory roofline.

Roofline: a fused forward + backward must at least read the logits and the
targets and write the gradient: three tensors, where a copy moves two. With
the copy's measured bandwidth that is ``roofline = 1.5 x copy time`` (on an
H100, 0.14 ms for a float32 copy of 64 x 8400 x 80 gives 0.21 ms; issue 6
asks for within 2x, 0.42 ms). Our fused kernels read the inputs twice (the
backward recomputes instead of saving a tensor), five passes in all, so
their floor is 2.5 / 1.5 = 1.67x the roofline.

Columns: loss, impl, dtype, ms (median of ``--repeat`` timed calls after
``--warmup``; CUDA events on CUDA), GB/s (the three roofline tensors' bytes
divided by the time, i.e. effective bandwidth; for the copy its own two
tensors), x roofline (ms / roofline ms), x fused (ms / fused ms), peak MiB
above the inputs (CUDA). After the table each loss's fused value and
gradient are compared with the plain path (relative difference).

Usage::

    python benchmarks/bench_fused_elementwise.py                 # CUDA if present, else CPU
    python benchmarks/bench_fused_elementwise.py --size tiny --repeat 1
    python benchmarks/bench_fused_elementwise.py --device cuda --dtype float32 bfloat16
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

if __package__ in (None, ''):
    # Run as a script from a checkout: make the package importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from yolo_losses import build_loss  # noqa: E402
from yolo_losses import kernels  # noqa: E402

# logits [B, A, C]
SIZES: Dict[str, Tuple[int, int, int]] = {
    'tiny': (2, 64, 8),
    'small': (2, 8400, 80),
    'default': (8, 8400, 80),
    'issue': (64, 8400, 80),
}
DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}
POSITIVE_FRACTION = 0.05
LOSS_CONFIGS = {
    'CrossEntropyLoss': dict(type='CrossEntropyLoss', use_sigmoid=True),
    'FocalLoss': dict(type='FocalLoss', gamma=2.0, alpha=0.25),
    'VarifocalLoss': dict(type='VarifocalLoss', alpha=0.75, gamma=2.0),
    'QualityFocalLoss': dict(type='QualityFocalLoss', beta=2.0),
}


def make_inputs(shape: Sequence[int], dtype: torch.dtype, device: torch.device,
                seed: int = 0) -> Tuple[Tensor, Tensor]:
    generator = torch.Generator(device='cpu').manual_seed(seed)
    batch, anchors, classes = shape
    logits = torch.randn(batch * anchors, classes, generator=generator) * 2
    score = torch.rand(batch * anchors, classes, generator=generator)
    positive = torch.rand(batch * anchors, classes, generator=generator) < POSITIVE_FRACTION
    target = score * positive
    return logits.to(device, dtype), target.to(device, dtype)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int,
              repeat: int) -> Tuple[float, float]:
    """Median milliseconds of ``fn`` and its peak memory above the start
    (MiB, CUDA only, else NaN)."""
    for _ in range(warmup):
        fn()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start_memory = torch.cuda.memory_allocated(device)
        times = []
        for _ in range(repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        peak = (torch.cuda.max_memory_allocated(device) - start_memory) / 2 ** 20
        return statistics.median(times), peak
    times = []
    for _ in range(repeat):
        start_time = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start_time) * 1e3)
    return statistics.median(times), float('nan')


def forward_backward(loss_fn: Callable[[Tensor], Tensor], logits: Tensor) -> Callable[[], Tensor]:
    pred = logits.detach().clone().requires_grad_(True)

    def step() -> Tensor:
        pred.grad = None
        value = loss_fn(pred)
        value.backward()
        return value
    return step


def fused_skip_reason(device: torch.device) -> Optional[str]:
    if device.type != 'cuda':
        return 'needs CUDA (the Triton interpreter is for tests, not timing)'
    if not kernels.triton_available():
        return 'triton does not import (pip install triton)'
    return None


def run(shape: Sequence[int], dtypes: Sequence[torch.dtype], device: torch.device,
        warmup: int, repeat: int, losses: Sequence[str]) -> List[dict]:
    rows: List[dict] = []
    skip = fused_skip_reason(device)
    try:
        from torchvision.ops import sigmoid_focal_loss as tv_focal
    except Exception:  # torchvision is optional
        tv_focal = None
    for dtype in dtypes:
        logits, target = make_inputs(shape, dtype, device)
        element_size = logits.element_size()
        roofline_bytes = 3 * logits.numel() * element_size
        destination = torch.empty_like(logits)
        copy_ms, _ = time_call(lambda: destination.copy_(logits), device, warmup, repeat)
        roofline_ms = 1.5 * copy_ms
        rows.append(dict(loss='-', impl='copy', dtype=dtype, ms=copy_ms,
                         gbps=2 * logits.numel() * element_size / copy_ms / 1e6,
                         roofline_ms=roofline_ms, peak=float('nan'), fused_ms=None))
        impls: List[Tuple[str, str, Callable[[Tensor], Tensor]]] = []
        for name in losses:
            config = LOSS_CONFIGS[name]
            if skip is None:
                fused = build_loss(dict(config, fused=True, validate=False)).to(device)
                impls.append((name, 'fused', lambda x, f=fused: f(x, target)))
            plain = build_loss(dict(config, fused=False, validate=False)).to(device)
            impls.append((name, 'plain', lambda x, f=plain: f(x, target)))
        impls.append(('BCE', 'torch_bce',
                      lambda x: F.binary_cross_entropy_with_logits(x, target)))
        if tv_focal is not None:
            impls.append(('FocalLoss', 'torchvision',
                          lambda x: tv_focal(x, target, alpha=0.25, gamma=2.0,
                                             reduction='mean')))
        fused_times: Dict[str, float] = {}
        for name, impl, fn in impls:
            ms, peak = time_call(forward_backward(fn, logits), device, warmup, repeat)
            if impl == 'fused':
                fused_times[name] = ms
            rows.append(dict(loss=name, impl=impl, dtype=dtype, ms=ms,
                             gbps=roofline_bytes / ms / 1e6, roofline_ms=roofline_ms,
                             peak=peak, fused_ms=None))
        for row in rows:
            if row['dtype'] == dtype and row['impl'] != 'copy':
                row['fused_ms'] = fused_times.get(
                    'CrossEntropyLoss' if row['loss'] == 'BCE' else row['loss'])
    if skip is not None:
        print(f'fused: skipped ({skip})')
    return rows


def check_against_plain(shape: Sequence[int], dtypes: Sequence[torch.dtype],
                        device: torch.device, losses: Sequence[str]) -> List[str]:
    """Fused vs plain: relative difference of the value and of the gradient."""
    if fused_skip_reason(device) is not None:
        return []
    lines = []
    for dtype in dtypes:
        logits, target = make_inputs(shape, dtype, device, seed=1)
        for name in losses:
            results = []
            for fused in (True, False):
                loss = build_loss(dict(LOSS_CONFIGS[name], fused=fused, validate=False)).to(device)
                pred = logits.detach().clone().requires_grad_(True)
                value = loss(pred, target)
                value.backward()
                results.append((value.detach().double(), pred.grad.double()))
            (value, grad), (value_ref, grad_ref) = results
            value_diff = ((value - value_ref).abs() / value_ref.abs().clamp(min=1e-30)).item()
            grad_diff = ((grad - grad_ref).norm() / grad_ref.norm().clamp(min=1e-30)).item()
            lines.append(f'{name:17s} {str(dtype)[6:]:9s} value rel diff {value_diff:.2e}, '
                         f'gradient rel diff (norm) {grad_diff:.2e}')
    return lines


def format_table(rows: List[dict]) -> str:
    header = (f'{"loss":17s} {"impl":12s} {"dtype":9s} {"ms":>9s} {"GB/s":>8s} '
              f'{"x roofline":>10s} {"x fused":>8s} {"peak MiB":>9s}')
    lines = [header, '-' * len(header)]
    for row in rows:
        fused_ratio = (f'{row["ms"] / row["fused_ms"]:8.2f}' if row['fused_ms'] else
                       f'{"-":>8s}')
        peak = f'{row["peak"]:9.1f}' if row['peak'] == row['peak'] else f'{"-":>9s}'
        lines.append(f'{row["loss"]:17s} {row["impl"]:12s} {str(row["dtype"])[6:]:9s} '
                     f'{row["ms"]:9.3f} {row["gbps"]:8.1f} '
                     f'{row["ms"] / row["roofline_ms"]:10.2f} {fused_ratio} {peak}')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default=None, help='cuda or cpu (default: cuda if present)')
    parser.add_argument('--size', choices=sorted(SIZES), default=None,
                        help='logits [B, A, C] (default: issue on CUDA, small on CPU)')
    parser.add_argument('--dtype', nargs='+', choices=sorted(DTYPES),
                        default=['float32', 'bfloat16'])
    parser.add_argument('--loss', nargs='+', choices=sorted(LOSS_CONFIGS),
                        default=list(LOSS_CONFIGS))
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--repeat', type=int, default=20)
    args = parser.parse_args(argv)
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    size = args.size or ('issue' if device.type == 'cuda' else 'small')
    shape = SIZES[size]
    dtypes = [DTYPES[name] for name in args.dtype]
    machine = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    triton_version = 'not installed'
    if kernels.triton_available():
        import triton
        triton_version = triton.__version__
    print(f'{machine}, torch {torch.__version__}, triton {triton_version}, '
          f'logits {shape[0]}x{shape[1]}x{shape[2]}, fwd+bwd, reduction=mean, '
          f'median of {args.repeat} after {args.warmup} warm-up')
    rows = run(shape, dtypes, device, args.warmup, args.repeat, args.loss)
    print(format_table(rows))
    for line in check_against_plain(shape, dtypes, device, args.loss):
        print(line)
    return rows


if __name__ == '__main__':
    main()

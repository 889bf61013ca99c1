"""Triton kernels of the sigmoid element-wise losses, with their autograd.

One forward kernel and one backward kernel serve four losses on logits
``x`` against targets ``t`` (``s = sigmoid(x)``, ``BCE`` the binary
cross-entropy with logits, ``pw`` its positive-class weight)::

    bce        BCE(x, t; pw)
    focal      BCE(x, t; pw) * (t (2a - 1) + 1 - a) * (s + t (1 - 2 s)) ** gamma
    varifocal  BCE(x, t) * (t > 0 ? (iou_weighted ? t : 1) : a * s ** gamma)
    quality    BCE(x, t) * |t - s| ** beta          (QFL before its class sum)

``pred`` is seen as rows of ``C`` classes (its last dimension); the rows may
be evenly strided (a slice such as ``head_out[..., 5:]`` runs in place).
Targets are dense (the shape of ``pred``) or one class id per row. The
element weight is absent, one number, one per row, one per class, or one per
element. Everything is computed in float32 whatever the input dtype, as the
PyTorch path does under ``weighted_loss``.

Forward, per call: either the weighted element-wise loss ``[*pred.shape]``
(float32), or, when the caller reduces, only its sum: each program writes
the sum of its block, and ``torch.sum`` adds the few partial sums (no
atomics, so the result is deterministic). Nothing is saved but references to
the inputs. Backward recomputes ``dloss/dx`` from the inputs and writes the
gradient once, in ``pred``'s dtype. Launch grids depend on shapes only: no
host sync, CUDA-graph capturable.

Import this module only where Triton is installed; :mod:`yolo_losses.kernels`
decides when.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ['LossSpec', 'fused_elementwise_loss', 'BCE', 'FOCAL', 'VARIFOCAL',
           'QUALITY_FOCAL', 'DEFAULT_BLOCK']

# loss kinds
BCE, FOCAL, VARIFOCAL, QUALITY_FOCAL = 0, 1, 2, 3
# element weight layouts
W_NONE, W_SCALAR, W_ROW, W_COL, W_FULL = 0, 1, 2, 3, 4
# positive-class weight layouts
PW_NONE, PW_SCALAR, PW_COL = 0, 1, 2
# target layouts
T_DENSE, T_LABEL = 0, 1

#: elements per program; 1024 x 4 warps streams well on recent GPUs, and the
#: per-block partial sums stay few (numel / 1024).
DEFAULT_BLOCK = 1024
_NUM_WARPS = 4
#: fused multiply-adds on: Triton's default until 3.9, said explicitly as
#: 3.10 turns it off; either way the numbers stay within float32 round-off
#: of PyTorch's
_LAUNCH_OPTIONS = dict(num_warps=_NUM_WARPS, enable_fp_fusion=True)
_INDEX32_LIMIT = 2 ** 31 - 1


# --- device code -----------------------------------------------------------------

@triton.jit
def _pow_nonneg(base, EXPONENT: tl.constexpr):
    """``base ** EXPONENT`` for ``base >= 0``, with IEEE's values at 0
    (``0 ** 0 = 1``, ``0 ** e = 0`` for ``e > 0``, ``inf`` for ``e < 0``).
    Small integer and half exponents multiply or take a square root as
    PyTorch's ``pow`` does; others go through ``exp2(e * log2(base))``."""
    if EXPONENT == 0.0:
        result = tl.full(base.shape, 1.0, tl.float32)
    elif EXPONENT == 1.0:
        result = base
    elif EXPONENT == 2.0:
        result = base * base
    elif EXPONENT == 3.0:
        result = base * base * base
    elif EXPONENT == 0.5:
        result = tl.sqrt_rn(base)
    else:
        positive = base > 0.0
        safe = tl.where(positive, base, 1.0)
        powered = tl.exp2(EXPONENT * tl.log2(safe))
        if EXPONENT > 0.0:
            result = tl.where(positive, powered, 0.0)
        else:
            result = tl.where(positive, powered, float('inf'))
    return result


@triton.jit
def _loss_and_slope(x, t, pw, alpha, alpha_scale, alpha_shift,
                    KIND: tl.constexpr, GAMMA: tl.constexpr,
                    IOU_WEIGHTED: tl.constexpr, HAS_PW: tl.constexpr):
    """Element-wise loss and its derivative with respect to the logit, in
    float32."""
    e = tl.exp(-tl.abs(x))                      # in (0, 1]: never overflows
    one_plus_e = 1.0 + e
    # log1p(e) to full precision where e is tiny (Kahan's trick)
    denominator = tl.where(one_plus_e == 1.0, 1.0, one_plus_e - 1.0)
    log1p_e = tl.where(one_plus_e == 1.0, e, tl.log(one_plus_e) * e / denominator)
    reciprocal = 1.0 / one_plus_e
    nonneg = x >= 0.0
    prob = tl.where(nonneg, reciprocal, e * reciprocal)          # sigmoid(x)
    prob_neg = tl.where(nonneg, e * reciprocal, reciprocal)      # sigmoid(-x) = 1 - prob
    log_sigmoid = tl.minimum(x, 0.0) - log1p_e
    # PyTorch's BCE-with-logits forward and backward formulas
    if HAS_PW:
        log_weight = (pw - 1.0) * t + 1.0
        bce = (1.0 - t) * x - log_weight * log_sigmoid
        bce_slope = log_weight * prob - pw * t
    else:
        bce = (1.0 - t) * x - log_sigmoid
        bce_slope = prob - t
    dprob = prob * prob_neg                     # d sigmoid / dx
    if KIND == 0:  # BCE
        loss = bce
        slope = bce_slope
    elif KIND == 1:  # focal
        one_minus_pt = prob + t * (1.0 - 2.0 * prob)
        alpha_t = t * alpha_scale + alpha_shift
        modulation = alpha_t * _pow_nonneg(one_minus_pt, GAMMA)
        loss = bce * modulation
        if GAMMA == 0.0:
            slope = bce_slope * modulation
        else:
            dmodulation = (alpha_t * GAMMA * _pow_nonneg(one_minus_pt, GAMMA - 1.0)
                           * (1.0 - 2.0 * t) * dprob)
            slope = bce_slope * modulation + bce * dmodulation
    elif KIND == 2:  # varifocal
        positive = t > 0.0
        if IOU_WEIGHTED:
            positive_weight = t
        else:
            positive_weight = tl.full(t.shape, 1.0, tl.float32)
        focal_weight = tl.where(positive, positive_weight, alpha * _pow_nonneg(prob, GAMMA))
        loss = bce * focal_weight
        if GAMMA == 0.0:
            slope = bce_slope * focal_weight
        else:
            dnegative = alpha * GAMMA * _pow_nonneg(prob, GAMMA - 1.0) * dprob
            slope = bce_slope * focal_weight + bce * tl.where(positive, 0.0, dnegative)
    else:  # quality focal, before its sum over the classes
        gap = t - prob
        distance = tl.abs(gap)
        modulation = _pow_nonneg(distance, GAMMA)
        loss = bce * modulation
        if GAMMA == 0.0:
            slope = bce_slope * modulation
        else:
            sign = tl.where(gap > 0.0, 1.0, tl.where(gap < 0.0, -1.0, 0.0))
            # d|t - s|/dx = -sign(t - s) * ds/dx
            dmodulation = -GAMMA * _pow_nonneg(distance, GAMMA - 1.0) * sign * dprob
            slope = bce_slope * modulation + bce * dmodulation
    return loss, slope


@triton.jit
def _load_element(pred_ptr, target_ptr, weight_ptr, pos_weight_ptr, pid,
                  numel, num_cols, pred_row_stride, target_row_stride, weight_row_stride,
                  alpha, alpha_scale, alpha_shift, smooth_scale, smooth_shift, ignore_index,
                  KIND: tl.constexpr, GAMMA: tl.constexpr, IOU_WEIGHTED: tl.constexpr,
                  TARGET_MODE: tl.constexpr, MASK_INVALID: tl.constexpr,
                  SMOOTH: tl.constexpr, WEIGHT_MODE: tl.constexpr, PW_MODE: tl.constexpr,
                  PRED_FLAT: tl.constexpr, TARGET_FLAT: tl.constexpr,
                  WEIGHT_FLAT: tl.constexpr, INDEX64: tl.constexpr,
                  BLOCK: tl.constexpr):
    """Offsets, mask, element weight, loss and slope of one block."""
    if INDEX64:
        start = pid.to(tl.int64) * BLOCK
    else:
        start = pid * BLOCK
    offsets = start + tl.arange(0, BLOCK)
    mask = offsets < numel
    row = offsets // num_cols
    col = offsets - row * num_cols
    if PRED_FLAT:
        pred_offsets = offsets
    else:
        pred_offsets = row * pred_row_stride + col
    x = tl.load(pred_ptr + pred_offsets, mask=mask, other=0.0).to(tl.float32)

    valid = mask
    if TARGET_MODE == 0:  # dense
        if TARGET_FLAT:
            target_offsets = offsets
        else:
            target_offsets = row * target_row_stride + col
        t = tl.load(target_ptr + target_offsets, mask=mask, other=0).to(tl.float32)
        if MASK_INVALID:  # CrossEntropyLoss: negative or ignore_index entries weigh 0
            keep = (t >= 0.0) & (t != ignore_index)
            valid = valid & keep
            t = tl.where(keep, t, 0.0)
    else:  # one class id per row; ids outside [0, C) are background rows
        label = tl.load(target_ptr + row, mask=mask, other=-1)
        t = tl.where(col == label, 1.0, 0.0)
        if MASK_INVALID:
            valid = valid & (label >= 0) & (label != ignore_index)
    if SMOOTH:
        t = t * smooth_scale + smooth_shift

    if PW_MODE == 0:
        pw = 1.0
    elif PW_MODE == 1:
        pw = tl.load(pos_weight_ptr).to(tl.float32)
    else:
        pw = tl.load(pos_weight_ptr + col, mask=mask, other=1.0).to(tl.float32)

    if WEIGHT_MODE == 0:
        weight = tl.full(x.shape, 1.0, tl.float32)
    elif WEIGHT_MODE == 1:
        weight = tl.full(x.shape, 1.0, tl.float32) * tl.load(weight_ptr).to(tl.float32)
    elif WEIGHT_MODE == 2:
        weight = tl.load(weight_ptr + row, mask=mask, other=0.0).to(tl.float32)
    elif WEIGHT_MODE == 3:
        weight = tl.load(weight_ptr + col, mask=mask, other=0.0).to(tl.float32)
    else:
        if WEIGHT_FLAT:
            weight_offsets = offsets
        else:
            weight_offsets = row * weight_row_stride + col
        weight = tl.load(weight_ptr + weight_offsets, mask=mask, other=0.0).to(tl.float32)
    if MASK_INVALID:
        weight = tl.where(valid, weight, 0.0)

    loss, slope = _loss_and_slope(x, t, pw, alpha, alpha_scale, alpha_shift,
                                  KIND, GAMMA, IOU_WEIGHTED, PW_MODE != 0)
    return offsets, mask, weight, loss, slope


@triton.jit
def _forward_kernel(pred_ptr, target_ptr, weight_ptr, pos_weight_ptr, out_ptr,
                    numel, num_cols, pred_row_stride, target_row_stride, weight_row_stride,
                    alpha, alpha_scale, alpha_shift, smooth_scale, smooth_shift, ignore_index,
                    KIND: tl.constexpr, GAMMA: tl.constexpr, IOU_WEIGHTED: tl.constexpr,
                    TARGET_MODE: tl.constexpr, MASK_INVALID: tl.constexpr,
                    SMOOTH: tl.constexpr, WEIGHT_MODE: tl.constexpr, PW_MODE: tl.constexpr,
                    PRED_FLAT: tl.constexpr, TARGET_FLAT: tl.constexpr,
                    WEIGHT_FLAT: tl.constexpr, INDEX64: tl.constexpr,
                    REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offsets, mask, weight, loss, slope = _load_element(
        pred_ptr, target_ptr, weight_ptr, pos_weight_ptr, pid,
        numel, num_cols, pred_row_stride, target_row_stride, weight_row_stride,
        alpha, alpha_scale, alpha_shift, smooth_scale, smooth_shift, ignore_index,
        KIND, GAMMA, IOU_WEIGHTED, TARGET_MODE, MASK_INVALID, SMOOTH, WEIGHT_MODE,
        PW_MODE, PRED_FLAT, TARGET_FLAT, WEIGHT_FLAT, INDEX64, BLOCK)
    weighted = loss * weight
    if REDUCE:
        tl.store(out_ptr + pid, tl.sum(tl.where(mask, weighted, 0.0), axis=0))
    else:
        tl.store(out_ptr + offsets, weighted, mask=mask)


@triton.jit
def _backward_kernel(pred_ptr, target_ptr, weight_ptr, pos_weight_ptr, grad_out_ptr,
                     grad_pred_ptr,
                     numel, num_cols, pred_row_stride, target_row_stride, weight_row_stride,
                     alpha, alpha_scale, alpha_shift, smooth_scale, smooth_shift, ignore_index,
                     KIND: tl.constexpr, GAMMA: tl.constexpr, IOU_WEIGHTED: tl.constexpr,
                     TARGET_MODE: tl.constexpr, MASK_INVALID: tl.constexpr,
                     SMOOTH: tl.constexpr, WEIGHT_MODE: tl.constexpr, PW_MODE: tl.constexpr,
                     PRED_FLAT: tl.constexpr, TARGET_FLAT: tl.constexpr,
                     WEIGHT_FLAT: tl.constexpr, INDEX64: tl.constexpr,
                     REDUCE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offsets, mask, weight, loss, slope = _load_element(
        pred_ptr, target_ptr, weight_ptr, pos_weight_ptr, pid,
        numel, num_cols, pred_row_stride, target_row_stride, weight_row_stride,
        alpha, alpha_scale, alpha_shift, smooth_scale, smooth_shift, ignore_index,
        KIND, GAMMA, IOU_WEIGHTED, TARGET_MODE, MASK_INVALID, SMOOTH, WEIGHT_MODE,
        PW_MODE, PRED_FLAT, TARGET_FLAT, WEIGHT_FLAT, INDEX64, BLOCK)
    if REDUCE:  # the gradient of the sum: one number
        grad_out = tl.load(grad_out_ptr).to(tl.float32)
    else:
        grad_out = tl.load(grad_out_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    grad = grad_out * weight * slope
    tl.store(grad_pred_ptr + offsets, grad.to(grad_pred_ptr.dtype.element_ty), mask=mask)


# --- host code -------------------------------------------------------------------

@dataclass(frozen=True)
class LossSpec:
    """What the kernel computes, element by element.

    Args:
        kind: ``BCE``, ``FOCAL``, ``VARIFOCAL`` or ``QUALITY_FOCAL``.
        gamma: focusing exponent (focal, varifocal) or ``beta`` (QFL); a
            compile-time constant, so each value compiles once.
        alpha: focal ``alpha`` (weight of positives) or varifocal ``alpha``
            (weight of negatives); unused by BCE and QFL.
        iou_weighted: varifocal positives weighted by their target.
        mask_invalid: ``CrossEntropyLoss``'s rule: targets (or class ids)
            that are negative or equal ``ignore_index`` weigh 0 (and count
            as target 0).
        ignore_index: the id ``mask_invalid`` drops.
        label_smoothing: targets ``t (1 - eps) + eps / 2`` (after masking).
    """

    kind: int
    gamma: float = 0.0
    alpha: float = 0.25
    iou_weighted: bool = True
    mask_invalid: bool = False
    ignore_index: int = -100
    label_smoothing: float = 0.0


def row_stride(tensor: Tensor) -> Optional[int]:
    """The stride between the rows of ``tensor`` seen as ``[R, C]`` (``C``
    its last dimension) when every row starts ``stride`` elements after the
    previous one and holds ``C`` contiguous elements; ``None`` otherwise."""
    if tensor.dim() == 0:
        return 1
    num_cols = tensor.shape[-1]
    if num_cols != 1 and tensor.stride(-1) != 1:
        return None
    stride: Optional[int] = None
    expected = None
    for size, dim_stride in zip(reversed(tensor.shape[:-1]), reversed(tensor.stride()[:-1])):
        if size == 1:
            continue
        if stride is None:
            stride, expected = dim_stride, dim_stride * size
        elif dim_stride != expected:
            return None
        else:
            expected = dim_stride * size
    return num_cols if stride is None else stride


def _rows(tensor: Tensor) -> Tuple[Tensor, int, bool]:
    """``tensor`` with its row stride and whether its rows are packed; a
    tensor whose rows are not evenly strided is copied first."""
    stride = row_stride(tensor)
    if stride is None:
        tensor = tensor.contiguous()
        stride = max(tensor.shape[-1], 1) if tensor.dim() else 1
    num_cols = tensor.shape[-1] if tensor.dim() else 1
    return tensor, stride, stride == num_cols


def _weight_layout(weight: Optional[Tensor], shape: torch.Size
                   ) -> Tuple[int, Optional[Tensor], int, bool]:
    """Kernel layout of an element weight that broadcasts to ``shape``."""
    if weight is None:
        return W_NONE, None, 0, True
    if weight.numel() == 1:
        return W_SCALAR, weight.reshape(1), 0, True
    num_cols = shape[-1]
    padded = (1,) * (len(shape) - weight.dim()) + tuple(weight.shape)
    if padded[-1] == 1 and padded[:-1] == tuple(shape[:-1]):
        return W_ROW, weight.reshape(-1), 0, True          # [R]: small, a copy is cheap
    if padded[-1] == num_cols and all(size == 1 for size in padded[:-1]):
        return W_COL, weight.reshape(-1), 0, True          # [C]
    if padded != tuple(shape):  # any other broadcast: materialise it
        weight = weight.expand(shape).contiguous()
    weight, stride, flat = _rows(weight.reshape(shape))
    return W_FULL, weight, stride, flat


def _pos_weight_layout(pos_weight: Optional[Tensor]) -> Tuple[int, Optional[Tensor]]:
    if pos_weight is None:
        return PW_NONE, None
    if pos_weight.numel() == 1:
        return PW_SCALAR, pos_weight.reshape(1)
    return PW_COL, pos_weight.reshape(-1)


class _Launch:
    """Arguments of one forward/backward kernel pair, fixed from shapes."""

    def __init__(self, pred: Tensor, target: Tensor, labels: bool, weight: Optional[Tensor],
                 pos_weight: Optional[Tensor], spec: LossSpec, block: int) -> None:
        self.shape = pred.shape
        self.numel = pred.numel()
        self.num_cols = pred.shape[-1] if pred.dim() else 1
        self.pred, self.pred_stride, pred_flat = _rows(pred)
        if labels:
            self.target, self.target_stride, target_flat = target.reshape(-1), 0, True
        else:
            self.target, self.target_stride, target_flat = _rows(target)
        weight_mode, self.weight, self.weight_stride, weight_flat = _weight_layout(
            weight, pred.shape)
        pw_mode, self.pos_weight = _pos_weight_layout(pos_weight)
        # the largest element offset any operand reaches decides the index width
        reach = max(self.numel,
                    self.pred_stride * (self.numel // max(self.num_cols, 1)) + self.num_cols,
                    self.target_stride * (self.numel // max(self.num_cols, 1)) + self.num_cols,
                    self.weight_stride * (self.numel // max(self.num_cols, 1)) + self.num_cols)
        self.block = block
        self.grid = (triton.cdiv(self.numel, block),)
        smoothing = spec.label_smoothing
        self.scalars = dict(
            alpha=spec.alpha,
            # written as PyTorch's reference computes them (Python doubles,
            # rounded once to float32), so the products round alike
            alpha_scale=2.0 * spec.alpha - 1.0, alpha_shift=1.0 - spec.alpha,
            smooth_scale=1.0 - smoothing, smooth_shift=0.5 * smoothing,
            ignore_index=float(spec.ignore_index))
        self.constants = dict(
            KIND=spec.kind, GAMMA=float(spec.gamma), IOU_WEIGHTED=bool(spec.iou_weighted),
            TARGET_MODE=T_LABEL if labels else T_DENSE,
            MASK_INVALID=bool(spec.mask_invalid), SMOOTH=smoothing > 0,
            WEIGHT_MODE=weight_mode, PW_MODE=pw_mode,
            PRED_FLAT=pred_flat, TARGET_FLAT=target_flat, WEIGHT_FLAT=weight_flat,
            INDEX64=reach > _INDEX32_LIMIT, BLOCK=block)

    def tensors(self) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        return self.pred, self.target, self.weight, self.pos_weight

    def restore(self, tensors: Tuple[Tensor, ...]) -> None:
        self.pred, self.target, self.weight, self.pos_weight = tensors

    def operands(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        # absent operands are never read (their mode is a compile-time
        # constant); pred stands in as a valid pointer
        return (self.pred, self.target,
                self.pred if self.weight is None else self.weight,
                self.pred if self.pos_weight is None else self.pos_weight)

    def sizes(self) -> Tuple[int, int, int, int, int]:
        return (self.numel, self.num_cols, self.pred_stride, self.target_stride,
                self.weight_stride)

    def forward(self, reduce: bool) -> Tensor:
        device = self.pred.device
        if reduce:
            out = torch.empty(self.grid[0], dtype=torch.float32, device=device)
        else:
            out = torch.empty(self.shape, dtype=torch.float32, device=device)
        _forward_kernel[self.grid](*self.operands(), out, *self.sizes(), **self.scalars,
                                   **self.constants, REDUCE=reduce, **_LAUNCH_OPTIONS)
        # the partial sums of the blocks, added in one deterministic pass
        return out.sum() if reduce else out

    def backward(self, grad_out: Tensor, reduce: bool, dtype: torch.dtype) -> Tensor:
        grad_pred = torch.empty(self.shape, dtype=dtype, device=self.pred.device)
        grad_out = grad_out.reshape(1) if reduce else grad_out.contiguous()
        _backward_kernel[self.grid](*self.operands(), grad_out, grad_pred, *self.sizes(),
                                    **self.scalars, **self.constants, REDUCE=reduce,
                                    **_LAUNCH_OPTIONS)
        return grad_pred


class _FusedElementwiseLoss(torch.autograd.Function):
    """Autograd of the fused loss with respect to ``pred`` only (targets and
    weights are constants of the loss, as in every caller here)."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, weight: Optional[Tensor],
                pos_weight: Optional[Tensor], labels: bool, spec: LossSpec, reduce: bool,
                block: int) -> Tensor:
        launch = _Launch(pred, target, labels, weight, pos_weight, spec, block)
        result = launch.forward(reduce)
        # The inputs (or views of them, and at most a [R] or [C] weight
        # copy): nothing the size of the loss. save_for_backward makes an
        # in-place change of an input before backward an error.
        ctx.save_for_backward(*launch.tensors())
        launch.restore((None, None, None, None))
        ctx.launch = launch
        ctx.reduce = reduce
        ctx.pred_dtype = pred.dtype
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        grad_pred = None
        if ctx.needs_input_grad[0]:
            ctx.launch.restore(ctx.saved_tensors)
            grad_pred = ctx.launch.backward(grad_out, ctx.reduce, ctx.pred_dtype)
        ctx.launch = None
        return grad_pred, None, None, None, None, None, None, None


def fused_elementwise_loss(pred: Tensor, target: Tensor, spec: LossSpec, *,
                           labels: bool = False, weight: Optional[Tensor] = None,
                           pos_weight: Optional[Tensor] = None, reduce: bool = False,
                           block: int = DEFAULT_BLOCK) -> Tensor:
    """The weighted element-wise loss of ``spec`` on logits, or its sum.

    Args:
        pred: logits ``[..., C]``, float32/float16/bfloat16; rows may be
            evenly strided. Differentiable.
        target: dense targets of ``pred``'s shape (any real dtype; read as
            float32), or with ``labels`` one integer class id per row
            (``pred.shape[:-1]``; ids outside ``[0, C)`` are all-zero rows).
        spec: the loss and its constants.
        weight: element weight broadcasting to ``pred`` (not enlarging it),
            or ``None``; a constant (no gradient).
        pos_weight: BCE positive-class weight, one number or ``[C]``.
        reduce: return the float32 sum of the weighted loss (0-d) instead of
            the ``pred``-shaped float32 loss.
        block: elements per program (a power of two).

    Callers check shapes; ``pred.numel()`` must be positive.
    """
    if pred.numel() == 0:
        raise ValueError('fused_elementwise_loss needs a non-empty pred')
    if block <= 0 or block & (block - 1):
        raise ValueError(f'block must be a power of two, got {block}')
    return _FusedElementwiseLoss.apply(pred, target, weight, pos_weight, bool(labels),
                                       spec, bool(reduce), int(block))

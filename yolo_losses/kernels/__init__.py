"""Fused Triton kernels for the element-wise classification losses.

The sigmoid losses (``CrossEntropyLoss(use_sigmoid=True)``, ``FocalLoss``,
``VarifocalLoss``, ``QualityFocalLoss`` with a tensor target) read their
logits and targets once in the forward pass and once more in the backward
pass, and write the gradient once; a reduced call never writes the
element-wise loss. The plain PyTorch code in ``yolo_losses/losses`` stays the
reference and the fallback (CPU, no Triton, unsupported arguments).

Which path runs:

- ``fused=False`` on a loss: always PyTorch.
- ``fused=True``: the kernel; a call it cannot run (see
  :mod:`yolo_losses.losses.fused_path` for the supported cases) raises a
  ``ValueError`` naming what is unsupported, and a missing Triton or a CPU
  tensor outside the Triton interpreter (``TRITON_INTERPRET=1``) a
  ``RuntimeError``.
- ``fused=None`` (default): the kernel when the inputs are on CUDA, Triton
  imports, the call is supported and the global switch is on; PyTorch
  otherwise, and always while ``torch.compile`` traces the loss: the
  compiler generates its own fused kernel from the plain PyTorch graph, and
  our kernels' ``autograd.Function`` would only be an opaque call in it.

The switch of auto mode: a process-wide default, :func:`set_fused` or the
environment variable ``YOLO_LOSSES_FUSED=0`` read at import (``False`` turns
the fast path off for every loss built with ``fused=None``), and a
per-context override, ``with fused(False):``, that holds only in the thread
(or asyncio task) that entered it (a training config's ``yolo_losses_fused``
is applied this way for the run). An explicit ``fused=True``/``False`` on a
loss wins over the switch, as ``validate`` does over
:func:`yolo_losses.set_validation`.

Triton is optional (``pip install triton``); nothing here imports it until
a fused call is about to run.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import torch

from ..switches import Switch

__all__ = ['set_fused', 'fused_enabled', 'fused', 'triton_available',
           'interpreter_enabled', 'resolve_fused']


_switch = Switch('fused', 'YOLO_LOSSES_FUSED')


def _env_switch() -> bool:
    """The default that ``YOLO_LOSSES_FUSED`` gives (unset: on)."""
    return _switch.read_env()


def set_fused(enabled: bool) -> None:
    """Set the process-wide default of the fused kernels for every loss
    built with ``fused=None`` (also the calling context's value when it is
    inside ``with fused(...)``)."""
    _switch.set_default(enabled)


def fused_enabled() -> bool:
    """Whether auto mode may use the kernels in the calling context (its
    ``fused(...)`` override, else the process default)."""
    return _switch.enabled()


def fused(enabled: bool):
    """Context manager: the fused kernels on or off in the calling thread /
    task until the block exits; other threads keep the process default."""
    return _switch.override(enabled)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """Whether ``triton`` and ``triton.language`` import (checked once)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401  (the kernels need both)
    except Exception:  # any import failure means: no fused path
        return False
    return True


def interpreter_enabled() -> bool:
    """``TRITON_INTERPRET=1``: Triton runs kernels on the CPU in numpy
    (slow; for tests)."""
    return os.environ.get('TRITON_INTERPRET', '0').strip() not in ('', '0')


def resolve_fused(fused: Optional[bool], loss_name: str, device: torch.device,
                  unsupported: Optional[str]) -> bool:
    """Decide whether a call runs the kernel.

    Args:
        fused: the loss's ``fused`` option (``None``: auto).
        loss_name: for error messages.
        device: the device of ``pred``.
        unsupported: why the kernel cannot run this call, or ``None``.

    Returns ``True`` for the kernel, ``False`` for PyTorch; raises when
    ``fused=True`` cannot be honoured. Shape and type facts only: no sync.
    """
    if fused is False:
        return False
    if fused is None:  # the interpreter is for tests: auto never picks it
        return (not torch.compiler.is_compiling() and _switch.enabled()
                and unsupported is None and device.type == 'cuda' and triton_available())
    runnable = device.type == 'cuda' or interpreter_enabled()
    if unsupported is not None:
        raise ValueError(f'{loss_name}(fused=True) cannot run this call on the fused '
                         f'kernel: {unsupported}; use fused=None to fall back to PyTorch')
    if not triton_available():
        raise RuntimeError(f'{loss_name}(fused=True) needs triton, which does not import '
                           '(pip install triton)')
    if not runnable:
        raise RuntimeError(f'{loss_name}(fused=True) needs CUDA tensors (got {device}), or '
                           'TRITON_INTERPRET=1 to run the kernel on the CPU')
    return True


def check_fused_option(fused: Optional[bool]) -> Optional[bool]:
    """Constructor check of a loss's ``fused`` argument."""
    if fused is not None and not isinstance(fused, bool):
        raise TypeError(f'fused must be True, False or None, got {fused!r}')
    return fused

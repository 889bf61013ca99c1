"""On/off switches of the losses (validation, fused kernels): a process-wide
default plus a per-context override.

- The **process default** comes from an environment variable read at import
  (``YOLO_LOSSES_VALIDATE=0``, ``YOLO_LOSSES_FUSED=0``) and is changed by
  ``set_validation`` / ``set_fused`` (a training config's
  ``yolo_losses_validate`` / ``yolo_losses_fused`` keys are applied by the
  runner as an override for the run, see below).
- The **override** is a :class:`contextvars.ContextVar` set by the context
  managers ``validation(...)`` / ``fused(...)``: it holds in the thread (or
  asyncio task) that entered the block, until the block exits. Other threads
  keep seeing the default, so one thread's ``with validation(False):`` never
  turns another thread's checks off.

``set_*`` called inside a ``with`` block also changes that block's value in
the calling context (the caller sees its own change at once); the block's
exit restores the value it had replaced, and the new process default stays.

``torch.compile`` cannot trace ``ContextVar.get`` (a graph break, an error
with ``fullgraph=True``), so the override is mirrored in a
``threading.local`` that the compiler reads and guards on (a change
recompiles). The two agree except for asyncio tasks of one thread whose
override blocks interleave: a compiled loss there sees the thread's last
entered block.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from typing import Iterator, Optional

import torch

__all__ = ['Switch']

_OFF_WORDS = ('0', 'false', 'off', 'no')


class Switch:
    """A boolean switch: process default + per-context override.

    Args:
        name: for the context variable and error messages.
        env: environment variable that sets the default at import
            (``0``/``false``/``off``/``no`` turn it off; anything else,
            or unset, leaves it on).
    """

    def __init__(self, name: str, env: str) -> None:
        self.name = name
        self.env = env
        self._default = self.read_env()
        self._override: contextvars.ContextVar[Optional[bool]] = \
            contextvars.ContextVar(f'yolo_losses_{name}', default=None)
        self._traced = threading.local()  # the override, for torch.compile

    def read_env(self) -> bool:
        """The default the environment variable gives (unset: on)."""
        return os.environ.get(self.env, '1').strip().lower() not in _OFF_WORDS

    @property
    def default(self) -> bool:
        """The process-wide default (what a context without override sees)."""
        return self._default

    def set_default(self, enabled: bool) -> None:
        """Set the process default; inside an override, the calling
        context's value too."""
        enabled = _as_bool(self.name, enabled)
        self._default = enabled
        if self._override.get() is not None:
            self._override.set(enabled)
            self._traced.value = enabled

    def enabled(self) -> bool:
        """The value in the calling context: its override, else the default."""
        if torch.compiler.is_compiling():
            override = getattr(self._traced, 'value', None)
        else:
            override = self._override.get()
        return self._default if override is None else override

    @contextlib.contextmanager
    def override(self, enabled: bool) -> Iterator[None]:
        """Set the value for the calling context until the block exits."""
        enabled = _as_bool(self.name, enabled)
        token = self._override.set(enabled)
        traced_before = getattr(self._traced, 'value', None)
        self._traced.value = enabled
        try:
            yield
        finally:
            self._override.reset(token)
            self._traced.value = traced_before


def _as_bool(name: str, value) -> bool:
    # bool(np.bool_) and 0/1 ints are fine; strings such as 'off' are not
    # (bool('off') is True)
    if isinstance(value, str) or value is None:
        raise TypeError(f'the {name} switch must be True or False, got {value!r}')
    return bool(value)

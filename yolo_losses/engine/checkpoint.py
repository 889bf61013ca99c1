"""Loading mmengine checkpoints with ``torch.load(weights_only=True)``.

PyTorch >= 2.6 loads with ``weights_only=True`` by default and refuses any
global it does not know; mmengine 0.10.7 checkpoints hold a few (the message
hub's ``HistoryBuffer`` with its numpy arrays). ``checkpoint_globals()``
allow-lists exactly those, as a context around the loads this stack makes
(``load_checkpoint_file`` and the Runner's ``load_from`` / resume, see
``engine.runner.YOLORunner``), so they work and nothing is ever loaded with
``weights_only=False``.

torch's allow-list is process-wide; it is extended only for the duration of
those loads and restored after, so a user's own ``torch.load`` elsewhere in
the process never sees these entries, and importing the package changes
nothing (issue 12).
"""
from __future__ import annotations

import contextlib
import os.path as osp
import pickle
from typing import Any, Dict, Iterator, List

import numpy as np
import torch
from torch import nn


def _numpy_pickle_helpers() -> List[Any]:
    # numpy 2 moved the pickling helpers to numpy._core; a checkpoint names
    # those of the numpy that wrote it
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    return [_reconstruct, scalar]


def history_buffer_getattr(owner: Any, name: str) -> Any:
    """The only ``getattr`` a checkpoint may call.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``builtins.getattr``
    would let a crafted file walk from any allowed object to arbitrary code
    (``__globals__``, ``__subclasses__``), so the name ``builtins.getattr``
    is mapped to this function, which serves exactly those lookups.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if (owner is HistoryBuffer and isinstance(name, str)
            and not name.startswith('_')
            and callable(HistoryBuffer.__dict__.get(name))):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({owner!r}, {name!r}); only the '
        'statistics methods of mmengine\'s HistoryBuffer are allowed')


def checkpoint_safe_globals() -> List[Any]:
    """The globals an mmengine 0.10 checkpoint of this stack holds: the
    message hub's ``HistoryBuffer``, its statistics methods (through
    ``history_buffer_getattr``) and numpy arrays, dtypes and scalars."""
    from mmengine.logging.history_buffer import HistoryBuffer

    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr'),
            np.ndarray, np.dtype] + _numpy_pickle_helpers() + numpy_dtype_classes()


def numpy_dtype_classes() -> List[Any]:
    """The dtype classes of HistoryBuffer's float64/int64 arrays (and of
    numpy scalars): the file does not name them, ``np.dtype('f8')`` builds
    one, but the unpickler checks its class when it sets its state."""
    return [type(np.dtype(np.float64)), type(np.dtype(np.int64))]


@contextlib.contextmanager
def checkpoint_globals() -> Iterator[None]:
    """Allow-list ``checkpoint_safe_globals()`` for the ``weights_only``
    loads inside the block; on exit the allow-list is what it was (entries
    that were already there stay)."""
    serialization = torch.serialization
    if not hasattr(serialization, 'get_safe_globals'):  # torch < 2.4: no allow-list
        yield
        return
    present = serialization.get_safe_globals()
    added = [g for g in checkpoint_safe_globals() if g not in present]
    if hasattr(serialization, 'safe_globals'):  # torch >= 2.5
        with serialization.safe_globals(added):
            yield
        return
    serialization.add_safe_globals(added)  # torch 2.4: add, then take back
    try:
        yield
    finally:
        kept = [g for g in serialization.get_safe_globals() if g not in added]
        serialization.clear_safe_globals()
        serialization.add_safe_globals(kept)


def load_checkpoint_file(path: str) -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on the CPU, with clear errors."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        with checkpoint_globals():
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        raise ValueError(f'checkpoint {path!r} could not be loaded with '
                         f'weights_only=True: {err}') from err


def check_checkpoint_matches(model: nn.Module, path: str,
                             max_listed: int = 5) -> None:
    """Raise ``ValueError`` unless ``path``'s weights fit ``model`` exactly.

    mmengine only warns on missing, unexpected or mis-shaped keys, which
    would silently train or evaluate a randomly initialised model; this
    check runs before anything is built or written.
    """
    checkpoint = load_checkpoint_file(path)
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise ValueError(f'checkpoint {path!r} holds no state_dict')
    module = getattr(model, 'module', model)
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs model '
                  f'{tuple(v.shape)}' for k, v in expected.items()
                  if k in state and hasattr(state[k], 'shape')
                  and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    for title, items in (('missing keys', missing),
                         ('unexpected keys', unexpected),
                         ('shape mismatches', mismatched)):
        if items:
            shown = ', '.join(items[:max_listed])
            more = f' (+{len(items) - max_listed} more)' if len(
                items) > max_listed else ''
            problems.append(f'{len(items)} {title}: {shown}{more}')
    if problems:
        raise ValueError(f'checkpoint {path!r} does not fit the model of '
                         'this config (a checkpoint of another model?): '
                         + '; '.join(problems))

"""mmengine's ``Visualizer`` with a TensorBoard switch.

``visualizer = dict(type='YOLOVisualizer', vis_backends=[...],
tensorboard=False)`` in ``configs/_base_/default_runtime.py``; turn it on
with ``--cfg-options visualizer.tensorboard=True`` (or ``tensorboard=True``
in a config). It adds mmengine's ``TensorboardVisBackend``, which writes the
logged scalars (losses, learning rate, val metrics) as event files under
``WORK_DIR/<timestamp>/vis_data/``. TensorBoard is an optional dependency:
``pip install tensorboard`` (or the ``tensorboard`` extra of this package).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mmengine.visualization import Visualizer

from ..registry import VISUALIZERS

TENSORBOARD_BACKEND = 'TensorboardVisBackend'


def check_tensorboard(what: str = 'visualizer.tensorboard=True') -> None:
    """``ModuleNotFoundError`` with the fix when TensorBoard is missing.

    Imports what mmengine's ``TensorboardVisBackend`` imports
    (``torch.utils.tensorboard``, which needs the ``tensorboard`` package),
    so a run fails before training rather than at its first logged scalar.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as err:
        raise ModuleNotFoundError(
            f'{what} needs the tensorboard package, which is not installed '
            f'({err}). Install it with "pip install tensorboard" (or '
            '"pip install -e .[tensorboard]"), or set '
            'visualizer.tensorboard=False.') from err


def _is_tensorboard(backend: Any) -> bool:
    if isinstance(backend, dict):
        return str(backend.get('type', '')).split('.')[-1] == TENSORBOARD_BACKEND
    return type(backend).__name__ == TENSORBOARD_BACKEND


def tensorboard_requested(visualizer_cfg: Any) -> bool:
    """Whether a ``visualizer`` config writes TensorBoard events (the
    switch, or a ``TensorboardVisBackend`` listed by hand)."""
    if not isinstance(visualizer_cfg, dict):
        return False
    backends = visualizer_cfg.get('vis_backends') or ()
    if isinstance(backends, dict):
        backends = [backends]
    return (visualizer_cfg.get('tensorboard') is True
            or any(_is_tensorboard(b) for b in backends))


@VISUALIZERS.register_module()
class YOLOVisualizer(Visualizer):
    """mmengine's ``Visualizer`` plus ``tensorboard``.

    Args:
        tensorboard: also write TensorBoard event files (adds a
            ``TensorboardVisBackend`` unless ``vis_backends`` has one).
            Needs the ``tensorboard`` package; without it this raises
            ``ModuleNotFoundError`` saying how to install it.
        name, vis_backends, save_dir, ...: as mmengine's ``Visualizer``.
    """

    def __init__(self, name: str = 'visualizer',
                 vis_backends: Optional[Sequence] = None,
                 save_dir: Optional[str] = None, tensorboard: bool = False,
                 **kwargs: Any) -> None:
        if not isinstance(tensorboard, bool):
            raise TypeError(
                f'visualizer.tensorboard must be True or False, got {tensorboard!r}')
        if isinstance(vis_backends, dict):
            vis_backends = [vis_backends]
        backends = list(vis_backends or [])
        if tensorboard:
            check_tensorboard()
            if not any(_is_tensorboard(b) for b in backends):
                backends.append(dict(type=TENSORBOARD_BACKEND))
        super().__init__(name=name, vis_backends=backends, save_dir=save_dir,
                         **kwargs)
        self.tensorboard = tensorboard

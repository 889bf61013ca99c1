"""Detection losses in an mmengine registry, mmdet conventions."""
from .registry import LOSSES, MODELS, TASK_UTILS, build_loss, load_plugins
from .kernels import fused, fused_enabled, set_fused
from .validation import set_validation, validation, validation_enabled

__version__ = '0.1.0'

__all__ = ['MODELS', 'LOSSES', 'TASK_UTILS', 'build_loss', 'load_plugins',
           'set_validation', 'validation', 'validation_enabled', 'set_fused',
           'fused', 'fused_enabled', 'class_weights_from_counts', '__version__']


def __getattr__(name):
    # Imported on first use: importing the package (or yolo_losses.kernels)
    # must not import the losses package.
    if name == 'class_weights_from_counts':
        from .losses.class_weight_counts import class_weights_from_counts
        return class_weights_from_counts
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

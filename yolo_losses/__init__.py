"""Detection losses in an mmengine registry, mmdet conventions."""
from .registry import LOSSES, MODELS, TASK_UTILS, build_loss, load_plugins
from .kernels import set_fused
from .losses.class_weights import class_weights_from_counts
from .validation import set_validation, validation, validation_enabled

__version__ = '0.1.0'

__all__ = ['MODELS', 'LOSSES', 'TASK_UTILS', 'build_loss', 'load_plugins',
           'set_validation', 'validation', 'validation_enabled', 'set_fused',
           'class_weights_from_counts', '__version__']

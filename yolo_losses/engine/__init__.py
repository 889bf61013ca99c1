"""Training-stack glue on mmengine: EMA, hooks, wrappers, checkpoint
loading with ``weights_only=True``, and the train/test entry points used by
``tools/``."""
from .checkpoint import (check_checkpoint_matches, checkpoint_globals,
                         checkpoint_safe_globals, load_checkpoint_file)
from .ema import YOLOExpEMA
from .hooks import CurvesHook, EpochSeedHook, ThroughputHook
from .loss_schedule import ClassWeightsHook, LossEpochHook
from .plotting import plot_runs, read_curves
from .visualizer import YOLOVisualizer
from .wrappers import CPUAmpOptimWrapper, YOLODistributedDataParallel

__all__ = ['YOLOExpEMA', 'CurvesHook', 'ThroughputHook', 'EpochSeedHook',
           'CPUAmpOptimWrapper', 'YOLODistributedDataParallel', 'plot_runs',
           'read_curves', 'checkpoint_globals', 'checkpoint_safe_globals',
           'check_checkpoint_matches', 'load_checkpoint_file',
           'YOLOVisualizer', 'LossEpochHook', 'ClassWeightsHook']

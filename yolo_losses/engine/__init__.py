"""Training-stack glue on mmengine: EMA, hooks, wrappers, checkpoint
loading with ``weights_only=True``, and the train/test entry points used by
``tools/``."""
from .checkpoint import (allow_checkpoint_globals, check_checkpoint_matches,
                         checkpoint_safe_globals, load_checkpoint_file)
from .ema import YOLOExpEMA
from .hooks import CurvesHook, EpochSeedHook, ThroughputHook
from .loss_schedule import ClassWeightsHook, LossEpochHook
from .plotting import plot_runs, read_curves
from .wrappers import CPUAmpOptimWrapper, YOLODistributedDataParallel

allow_checkpoint_globals()

__all__ = ['YOLOExpEMA', 'CurvesHook', 'ThroughputHook', 'EpochSeedHook',
           'CPUAmpOptimWrapper', 'YOLODistributedDataParallel', 'plot_runs',
           'read_curves', 'allow_checkpoint_globals', 'checkpoint_safe_globals',
           'check_checkpoint_matches', 'load_checkpoint_file', 'LossEpochHook',
           'ClassWeightsHook']

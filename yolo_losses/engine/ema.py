"""YOLO-style exponential moving average of the weights."""
from __future__ import annotations

import math
from typing import Optional

import torch
from mmengine.model import BaseAveragedModel
from torch import Tensor, nn

from ..registry import MODELS


@MODELS.register_module()
class YOLOExpEMA(BaseAveragedModel):
    """EMA whose decay ramps up as ``decay * (1 - exp(-updates / tau))``.

    This is the YOLOv5/ultralytics ``ModelEMA`` rule: early in training the
    average follows the weights closely, later it keeps ``decay`` of its
    past. Use it through mmengine's ``EMAHook(ema_type='YOLOExpEMA')``, which
    updates after every optimizer step, swaps the averaged weights in for
    validation and saving, and restores them on resume. ``updates`` is
    mmengine's ``steps + 1`` (the first call copies the weights, as the
    references' first update does to within ``1 - decay * (1 - e^-1/tau)``).
    Buffers (BatchNorm statistics) are averaged too, as the references do.

    Args:
        model: the model to average.
        decay: final decay (0.9999).
        tau: ramp-up length in updates (2000).
        interval, device, update_buffers: as ``BaseAveragedModel``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999,
                 tau: float = 2000, interval: int = 1,
                 device: Optional[torch.device] = None,
                 update_buffers: bool = True) -> None:
        if not 0 < decay < 1:
            raise ValueError(f'decay must be in (0, 1), got {decay}')
        if tau <= 0:
            raise ValueError(f'tau must be > 0, got {tau}')
        super().__init__(model, interval, device, update_buffers)
        self.decay = float(decay)
        self.tau = float(tau)

    def avg_func(self, averaged_param: Tensor, source_param: Tensor,
                 steps: int) -> None:
        keep = self.decay * (1 - math.exp(-(int(steps) + 1) / self.tau))
        averaged_param.lerp_(source_param, 1 - keep)

"""Backbones: Darknet-53 (YOLOv3), CSPDarknet (yolov5 v6+, YOLOv8) and the
YOLO26 backbone.

Each backbone returns a tuple of feature maps, one per ``out_indices`` entry,
in increasing stride, and exposes ``out_channels`` and ``out_strides`` so
the detector can wire the neck and check the head's strides.

Widths and depths are those of the full-size reference models scaled by
``widen_factor`` (channels rounded up to a multiple of 8) and
``deepen_factor`` (blocks rounded, at least one): "n" is 0.33/0.25 and "s"
0.33/0.5, as in yolov5 and ultralytics.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from mmengine.model import BaseModule
from torch import Tensor, nn

from ..registry import MODELS
from .layers import (C2f, C2PSA, C3, C3k2, LEAKY_CFG, SILU_CFG, SPPF,
                     DarknetResBlock, check_factor, conv, scale_depth, scale_width)


def _check_out_indices(out_indices: Sequence[int], num_stages: int) -> Tuple[int, ...]:
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence):
        raise TypeError(f'out_indices must be a sequence of ints, got {out_indices!r}')
    indices = tuple(out_indices)
    if not indices or any(isinstance(i, bool) or not isinstance(i, int)
                          or not 0 <= i < num_stages for i in indices):
        raise ValueError(f'out_indices must be ints in [0, {num_stages - 1}], '
                         f'got {out_indices!r}')
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise ValueError(f'out_indices must increase, got {out_indices!r}')
    return indices


class _StagedBackbone(BaseModule):
    """Runs ``self.stages`` in order and returns the selected outputs."""

    stages: nn.ModuleList
    stage_channels: List[int]
    stage_strides: List[int]

    def _set_outputs(self, out_indices: Sequence[int]) -> None:
        self.out_indices = _check_out_indices(out_indices, len(self.stages))
        self.out_channels = [self.stage_channels[i] for i in self.out_indices]
        self.out_strides = [self.stage_strides[i] for i in self.out_indices]

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        outputs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outputs.append(x)
        return tuple(outputs)


@MODELS.register_module()
class Darknet(_StagedBackbone):
    """Darknet-53 layout (YOLOv3): a 3x3 stem, then five stages of a strided
    3x3 convolution and residual blocks (1, 2, 8, 8, 4 in the full model),
    LeakyReLU(0.1).

    Stage ``i`` has stride ``2**i``; ``out_indices=(3, 4, 5)`` gives strides
    8, 16, 32 with full-size channels 256, 512, 1024.
    """

    FULL_WIDTHS = (32, 64, 128, 256, 512, 1024)
    FULL_BLOCKS = (1, 2, 8, 8, 4)

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (3, 4, 5), in_channels: int = 3,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        deepen_factor = check_factor('deepen_factor', deepen_factor)
        widen_factor = check_factor('widen_factor', widen_factor)
        widths = [scale_width(c, widen_factor) for c in self.FULL_WIDTHS]
        stages = [conv(in_channels, widths[0], 3, act_cfg=LEAKY_CFG)]
        for index, blocks in enumerate(self.FULL_BLOCKS):
            stages.append(nn.Sequential(
                conv(widths[index], widths[index + 1], 3, stride=2, act_cfg=LEAKY_CFG),
                *(DarknetResBlock(widths[index + 1])
                  for _ in range(scale_depth(blocks, deepen_factor)))))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = widths
        self.stage_strides = [2 ** i for i in range(len(stages))]
        self._set_outputs(out_indices)


@MODELS.register_module()
class CSPDarknet(_StagedBackbone):
    """CSPDarknet of yolov5 (v6+, ``arch='v5'``) or YOLOv8 (``arch='v8'``).

    A stride-2 stem (6x6 for v5, 3x3 for v8), then four stages of a strided
    3x3 convolution and a CSP block (``C3`` for v5 with 3, 6, 9, 3
    bottlenecks in the full model; ``C2f`` for v8 with 3, 6, 6, 3); the last
    stage ends with SPPF (kernel 5). SiLU activations. Stage ``i`` has
    stride ``2**(i+1)``; ``out_indices=(2, 3, 4)`` gives strides 8, 16, 32
    with full-size channels 256, 512, 1024.
    """

    FULL_WIDTHS = (64, 128, 256, 512, 1024)
    FULL_BLOCKS = {'v5': (3, 6, 9, 3), 'v8': (3, 6, 6, 3)}

    def __init__(self, arch: str = 'v8', deepen_factor: float = 1.0,
                 widen_factor: float = 1.0, out_indices: Sequence[int] = (2, 3, 4),
                 in_channels: int = 3, init_cfg=None) -> None:
        super().__init__(init_cfg)
        if arch not in self.FULL_BLOCKS:
            raise ValueError(f"arch must be 'v5' or 'v8', got {arch!r}")
        deepen_factor = check_factor('deepen_factor', deepen_factor)
        widen_factor = check_factor('widen_factor', widen_factor)
        self.arch = arch
        widths = [scale_width(c, widen_factor) for c in self.FULL_WIDTHS]
        if arch == 'v5':
            stem = conv(in_channels, widths[0], 6, stride=2, padding=2, act_cfg=SILU_CFG)
        else:
            stem = conv(in_channels, widths[0], 3, stride=2, act_cfg=SILU_CFG)
        stages = [stem]
        block_type = C3 if arch == 'v5' else C2f
        last = len(self.FULL_BLOCKS[arch]) - 1
        for index, blocks in enumerate(self.FULL_BLOCKS[arch]):
            layers = [
                conv(widths[index], widths[index + 1], 3, stride=2, act_cfg=SILU_CFG),
                block_type(widths[index + 1], widths[index + 1],
                           scale_depth(blocks, deepen_factor), shortcut=True,
                           act_cfg=SILU_CFG)]
            if index == last:
                layers.append(SPPF(widths[index + 1], widths[index + 1], 5,
                                   act_cfg=SILU_CFG))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.stage_channels = widths
        self.stage_strides = [2 ** (i + 1) for i in range(len(stages))]
        self._set_outputs(out_indices)


@MODELS.register_module()
class YOLO26Backbone(_StagedBackbone):
    """The backbone of ultralytics 8.4's ``cfg/models/26/yolo26.yaml``.

    A stride-2 3x3 stem, then four stages of a strided 3x3 convolution and a
    ``C3k2`` block (2 blocks in the full model); the last stage ends with
    SPPF (kernel 5, no activation after its reduction, residual) and
    ``C2PSA`` (2 attention blocks in the full model). Full-size widths: stem
    64; stage convolutions 128, 256, 512, 1024; stage outputs 256, 512,
    512, 1024 (the first two ``C3k2`` widen, with split expansion 0.25 and
    plain bottlenecks; the last two use ``C3k`` inner blocks). Channels are
    capped at ``max_channels`` before ``widen_factor`` (the yaml's third
    scale entry). SiLU activations. Stage ``i`` has stride ``2**(i+1)``;
    ``out_indices=(2, 3, 4)`` gives strides 8, 16, 32.

    The "n" scale is ``deepen_factor=0.5, widen_factor=0.25`` (yolo26.yaml;
    not YOLOv8's 0.33). ultralytics switches every ``C3k2`` to ``C3k`` inner
    blocks at its m/l/x scales; ``c3k_everywhere=True`` does that.
    """

    # (conv width, block width, split expansion, c3k) per stage, full size
    FULL_STAGES = ((128, 256, 0.25, False), (256, 512, 0.25, False),
                   (512, 512, 0.5, True), (1024, 1024, 0.5, True))
    FULL_STEM = 64
    FULL_BLOCKS = 2

    def __init__(self, deepen_factor: float = 0.5, widen_factor: float = 0.25,
                 out_indices: Sequence[int] = (2, 3, 4), in_channels: int = 3,
                 max_channels: int = 1024, c3k_everywhere: bool = False,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        deepen_factor = check_factor('deepen_factor', deepen_factor)
        widen_factor = check_factor('widen_factor', widen_factor)

        def width(channels: int) -> int:
            return scale_width(min(channels, max_channels), widen_factor)

        blocks = scale_depth(self.FULL_BLOCKS, deepen_factor)
        previous = width(self.FULL_STEM)
        stages = [conv(in_channels, previous, 3, stride=2, act_cfg=SILU_CFG)]
        widths = [previous]
        for index, (conv_width, block_width, expansion, c3k) in enumerate(
                self.FULL_STAGES):
            layers = [
                conv(previous, width(conv_width), 3, stride=2, act_cfg=SILU_CFG),
                C3k2(width(conv_width), width(block_width), blocks,
                     c3k=c3k or c3k_everywhere, expansion=expansion,
                     act_cfg=SILU_CFG)]
            previous = width(block_width)
            if index == len(self.FULL_STAGES) - 1:
                layers.append(SPPF(previous, previous, 5, act_cfg=SILU_CFG,
                                   reduce_act=False, shortcut=True))
                layers.append(C2PSA(previous, blocks, act_cfg=SILU_CFG))
            stages.append(nn.Sequential(*layers))
            widths.append(previous)
        self.stages = nn.ModuleList(stages)
        self.stage_channels = widths
        self.stage_strides = [2 ** (i + 1) for i in range(len(stages))]
        self._set_outputs(out_indices)

"""Building blocks shared by the backbones and necks (``mmcv.cnn.ConvModule``).

Every convolution is conv + BatchNorm + activation. The BatchNorm settings
follow yolov5/ultralytics (``eps=1e-3``, ``momentum=0.03``), which matter
for short schedules: PyTorch's default momentum 0.1 makes the running
statistics noisier than the references'.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from mmcv.cnn import ConvModule
from torch import Tensor, nn

#: yolov5/ultralytics BatchNorm settings.
YOLO_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)
SILU_CFG = dict(type='SiLU', inplace=True)
LEAKY_CFG = dict(type='LeakyReLU', negative_slope=0.1, inplace=True)


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``channels`` (yolov5)."""
    return int(math.ceil(channels / divisor) * divisor)


def scale_width(channels: int, widen_factor: float) -> int:
    """Channels of a layer of the full-size model scaled by ``widen_factor``."""
    return make_divisible(channels * widen_factor)


def scale_depth(blocks: int, deepen_factor: float) -> int:
    """Blocks of a stage of the full-size model scaled by ``deepen_factor``
    (at least one)."""
    return max(round(blocks * deepen_factor), 1) if blocks > 0 else 0


def check_factor(name: str, value: float) -> float:
    """A width/depth multiplier: a positive finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f'{name} must be a positive number, got {value!r}')
    return float(value)


def conv(in_channels: int, out_channels: int, kernel_size: int = 1,
         stride: int = 1, act_cfg: Optional[dict] = None,
         norm_cfg: Optional[dict] = None,
         padding: Optional[int] = None) -> ConvModule:
    """Conv (no bias) + BN + activation, 'same' padding for odd kernels."""
    return ConvModule(
        in_channels, out_channels, kernel_size, stride=stride,
        padding=kernel_size // 2 if padding is None else padding,
        norm_cfg=dict(YOLO_NORM_CFG if norm_cfg is None else norm_cfg),
        act_cfg=dict(SILU_CFG if act_cfg is None else act_cfg))


class Bottleneck(nn.Module):
    """Two convolutions (``kernel_sizes``) with an optional residual add.

    The residual is used only when ``shortcut`` and the input and output
    channels agree.
    """

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True,
                 expansion: float = 0.5, kernel_sizes: Sequence[int] = (1, 3),
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = conv(in_channels, hidden, kernel_sizes[0], act_cfg=act_cfg)
        self.conv2 = conv(hidden, out_channels, kernel_sizes[1], act_cfg=act_cfg)
        self.add_identity = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return x + out if self.add_identity else out


class C3(nn.Module):
    """yolov5's CSP block: two 1x1 branches, bottlenecks on one, 1x1 fuse."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1,
                 shortcut: bool = True, act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        hidden = int(out_channels * 0.5)
        self.main_conv = conv(in_channels, hidden, 1, act_cfg=act_cfg)
        self.short_conv = conv(in_channels, hidden, 1, act_cfg=act_cfg)
        self.blocks = nn.Sequential(*(
            Bottleneck(hidden, hidden, shortcut, expansion=1.0, act_cfg=act_cfg)
            for _ in range(num_blocks)))
        self.final_conv = conv(2 * hidden, out_channels, 1, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.final_conv(torch.cat(
            (self.blocks(self.main_conv(x)), self.short_conv(x)), dim=1))


class C2f(nn.Module):
    """YOLOv8's CSP block: one 1x1 conv split in two halves, each bottleneck
    feeds the next, and every intermediate map is concatenated before the
    1x1 fuse."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1,
                 shortcut: bool = False, act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.hidden = int(out_channels * 0.5)
        self.main_conv = conv(in_channels, 2 * self.hidden, 1, act_cfg=act_cfg)
        self.blocks = nn.ModuleList(
            Bottleneck(self.hidden, self.hidden, shortcut, expansion=1.0,
                       kernel_sizes=(3, 3), act_cfg=act_cfg)
            for _ in range(num_blocks))
        self.final_conv = conv((2 + num_blocks) * self.hidden, out_channels, 1,
                               act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        maps = list(self.main_conv(x).split((self.hidden, self.hidden), dim=1))
        for block in self.blocks:
            maps.append(block(maps[-1]))
        return self.final_conv(torch.cat(maps, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained max-pools of one kernel
    size (equivalent to parallel pools of sizes k, 2k-1, 3k-2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.reduce_conv = conv(in_channels, hidden, 1, act_cfg=act_cfg)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)
        self.final_conv = conv(4 * hidden, out_channels, 1, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        maps = [self.reduce_conv(x)]
        for _ in range(3):
            maps.append(self.pool(maps[-1]))
        return self.final_conv(torch.cat(maps, dim=1))


class DarknetResBlock(nn.Module):
    """Darknet-53 residual unit: 1x1 to half the channels, 3x3 back, add."""

    def __init__(self, channels: int, act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.block = Bottleneck(channels, channels, shortcut=True, expansion=0.5,
                                act_cfg=LEAKY_CFG if act_cfg is None else act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)

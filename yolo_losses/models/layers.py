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
         padding: Optional[int] = None, groups: int = 1,
         activate: bool = True) -> ConvModule:
    """Conv (no bias) + BN + activation, 'same' padding for odd kernels.

    ``activate=False`` leaves the activation out (conv + BN only);
    ``groups=in_channels`` makes a depth-wise convolution.
    """
    return ConvModule(
        in_channels, out_channels, kernel_size, stride=stride,
        padding=kernel_size // 2 if padding is None else padding, groups=groups,
        norm_cfg=dict(YOLO_NORM_CFG if norm_cfg is None else norm_cfg),
        act_cfg=dict(SILU_CFG if act_cfg is None else act_cfg) if activate else None)


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
    size (equivalent to parallel pools of sizes k, 2k-1, 3k-2).

    YOLO26's variant (ultralytics 8.4 ``SPPF(c, c, 5, 3, True)``) has no
    activation after the 1x1 reduction (``reduce_act=False``) and adds the
    input to the output (``shortcut=True``, when the channels agree).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 act_cfg: Optional[dict] = None, reduce_act: bool = True,
                 shortcut: bool = False) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.reduce_conv = conv(in_channels, hidden, 1, act_cfg=act_cfg,
                                activate=reduce_act)
        self.pool = nn.MaxPool2d(kernel_size, stride=1, padding=kernel_size // 2)
        self.final_conv = conv(4 * hidden, out_channels, 1, act_cfg=act_cfg)
        self.add_identity = shortcut and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        maps = [self.reduce_conv(x)]
        for _ in range(3):
            maps.append(self.pool(maps[-1]))
        out = self.final_conv(torch.cat(maps, dim=1))
        return x + out if self.add_identity else out


class C3k(C3):
    """``C3`` whose bottlenecks use two ``kernel_size`` convolutions instead
    of 1x1 then 3x3 (ultralytics' ``C3k``, a YOLO11/YOLO26 building block)."""

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 2,
                 shortcut: bool = True, kernel_size: int = 3,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__(in_channels, out_channels, num_blocks, shortcut, act_cfg)
        hidden = int(out_channels * 0.5)
        self.blocks = nn.Sequential(*(
            Bottleneck(hidden, hidden, shortcut, expansion=1.0,
                       kernel_sizes=(kernel_size, kernel_size), act_cfg=act_cfg)
            for _ in range(num_blocks)))


class C3k2(C2f):
    """``C2f`` with a choice of inner block (ultralytics' ``C3k2``, YOLO11/26).

    Each of the ``num_blocks`` inner blocks is a 3x3/3x3 ``Bottleneck``
    (expansion 0.5, residual), or a two-bottleneck ``C3k`` (``c3k=True``),
    or a ``Bottleneck`` followed by a ``PSABlock`` (``attn=True``, YOLO26's
    last neck block). ``expansion`` sets the split width
    ``int(out_channels * expansion)``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int = 1,
                 c3k: bool = False, expansion: float = 0.5, attn: bool = False,
                 shortcut: bool = True, act_cfg: Optional[dict] = None) -> None:
        nn.Module.__init__(self)
        self.hidden = int(out_channels * expansion)
        hidden = self.hidden
        self.main_conv = conv(in_channels, 2 * hidden, 1, act_cfg=act_cfg)
        blocks = []
        for _ in range(num_blocks):
            if attn:
                blocks.append(nn.Sequential(
                    Bottleneck(hidden, hidden, shortcut, expansion=0.5,
                               kernel_sizes=(3, 3), act_cfg=act_cfg),
                    PSABlock(hidden, attn_ratio=0.5,
                             num_heads=max(hidden // 64, 1), act_cfg=act_cfg)))
            elif c3k:
                blocks.append(C3k(hidden, hidden, 2, shortcut, act_cfg=act_cfg))
            else:
                blocks.append(Bottleneck(hidden, hidden, shortcut, expansion=0.5,
                                         kernel_sizes=(3, 3), act_cfg=act_cfg))
        self.blocks = nn.ModuleList(blocks)
        self.final_conv = conv((2 + num_blocks) * hidden, out_channels, 1,
                               act_cfg=act_cfg)


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a map, with a depth-wise
    3x3 positional term on the values (ultralytics' ``Attention``).

    Per head the queries and keys have ``key_dim = int(head_dim * attn_ratio)``
    channels and the values ``head_dim = channels // num_heads``; one 1x1
    conv makes them, laid out per head as (query, key, value). All convs are
    conv + BN without activation.
    """

    def __init__(self, channels: int, num_heads: int = 8, attn_ratio: float = 0.5,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        qkv_channels = channels + 2 * self.key_dim * num_heads
        self.qkv = conv(channels, qkv_channels, 1, act_cfg=act_cfg, activate=False)
        self.proj = conv(channels, channels, 1, act_cfg=act_cfg, activate=False)
        self.pe = conv(channels, channels, 3, groups=channels, act_cfg=act_cfg,
                       activate=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        qkv = self.qkv(x).reshape(batch, self.num_heads,
                                  2 * self.key_dim + self.head_dim, height * width)
        query, key, value = qkv.split((self.key_dim, self.key_dim, self.head_dim), 2)
        # [B, heads, N, N]: row i holds pixel i's weights over all pixels
        weights = torch.softmax((query * self.scale).transpose(-2, -1) @ key, dim=-1)
        attended = (value @ weights.transpose(-2, -1)).reshape(batch, channels,
                                                              height, width)
        return self.proj(attended + self.pe(value.reshape(batch, channels, height,
                                                          width)))


class PSABlock(nn.Module):
    """Attention then a two-layer 1x1 feed-forward (2x wide), each with a
    residual add (ultralytics' ``PSABlock``)."""

    def __init__(self, channels: int, attn_ratio: float = 0.5, num_heads: int = 4,
                 shortcut: bool = True, act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.attn = Attention(channels, num_heads, attn_ratio, act_cfg=act_cfg)
        self.ffn = nn.Sequential(
            conv(channels, 2 * channels, 1, act_cfg=act_cfg),
            conv(2 * channels, channels, 1, act_cfg=act_cfg, activate=False))
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(x) if self.shortcut else self.attn(x)
        return x + self.ffn(x) if self.shortcut else self.ffn(x)


class C2PSA(nn.Module):
    """CSP block around ``PSABlock``s (ultralytics' ``C2PSA``): a 1x1 conv
    split in two halves, attention blocks on the second, 1x1 fuse of both.
    Input and output channels are equal."""

    def __init__(self, channels: int, num_blocks: int = 1, expansion: float = 0.5,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.hidden = int(channels * expansion)
        self.main_conv = conv(channels, 2 * self.hidden, 1, act_cfg=act_cfg)
        self.blocks = nn.Sequential(*(
            PSABlock(self.hidden, attn_ratio=0.5, num_heads=max(self.hidden // 64, 1),
                     act_cfg=act_cfg) for _ in range(num_blocks)))
        self.final_conv = conv(2 * self.hidden, channels, 1, act_cfg=act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        kept, attended = self.main_conv(x).split((self.hidden, self.hidden), dim=1)
        return self.final_conv(torch.cat((kept, self.blocks(attended)), dim=1))


class DarknetResBlock(nn.Module):
    """Darknet-53 residual unit: 1x1 to half the channels, 3x3 back, add."""

    def __init__(self, channels: int, act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.block = Bottleneck(channels, channels, shortcut=True, expansion=0.5,
                                act_cfg=LEAKY_CFG if act_cfg is None else act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)

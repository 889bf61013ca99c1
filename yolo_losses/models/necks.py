"""Necks: YOLOv3's FPN and the PAN (top-down then bottom-up) of yolov5/v8.

Each neck takes the three backbone maps (P3, P4, P5, increasing stride) and
returns three maps in the same order, exposing ``out_channels``.
``in_channels`` may be left ``None`` in a config: ``YOLODetector`` fills it
with the backbone's ``out_channels``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..registry import MODELS
from .layers import (C2f, C3, C3k2, LEAKY_CFG, SILU_CFG, check_factor, conv,
                     scale_depth, scale_width)


def _check_in_channels(in_channels: Optional[Sequence[int]], owner: str) -> Tuple[int, ...]:
    if in_channels is None:
        raise ValueError(f'{owner}: in_channels is required when the neck is built '
                         'outside YOLODetector (which fills it from the backbone)')
    if isinstance(in_channels, (str, bytes)) or not isinstance(in_channels, Sequence) \
            or len(in_channels) != 3 or any(
                isinstance(c, bool) or not isinstance(c, int) or c <= 0
                for c in in_channels):
        raise ValueError(f'{owner}: in_channels must be three positive ints '
                         f'(P3, P4, P5), got {in_channels!r}')
    return tuple(in_channels)


def _check_inputs(feats: Sequence[Tensor], owner: str) -> None:
    if len(feats) != 3:
        raise ValueError(f'{owner} expects three feature maps (P3, P4, P5), '
                         f'got {len(feats)}')


def _upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Nearest upsampling to the spatial size of ``like`` (2x when the input
    is divisible by 32; exact size otherwise, so odd sizes still concat)."""
    return F.interpolate(x, size=like.shape[-2:], mode='nearest')


class _ConvSet(nn.Sequential):
    """YOLOv3's five alternating 1x1 / 3x3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv(in_channels, out_channels, 1, act_cfg=LEAKY_CFG),
            conv(out_channels, 2 * out_channels, 3, act_cfg=LEAKY_CFG),
            conv(2 * out_channels, out_channels, 1, act_cfg=LEAKY_CFG),
            conv(out_channels, 2 * out_channels, 3, act_cfg=LEAKY_CFG),
            conv(2 * out_channels, out_channels, 1, act_cfg=LEAKY_CFG))


@MODELS.register_module()
class YOLOv3FPN(BaseModule):
    """YOLOv3 feature pyramid: a conv set on P5; its 1x1-reduced, upsampled
    output concatenated with P4 through another conv set, and the same
    again down to P3. Output channels are half the input channels
    (full size: 128, 256, 512); the head's 3x3 bridge doubles them back."""

    def __init__(self, in_channels: Optional[Sequence[int]] = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        c3, c4, c5 = _check_in_channels(in_channels, 'YOLOv3FPN')
        h3, h4, h5 = c3 // 2, c4 // 2, c5 // 2
        self.in_channels = [c3, c4, c5]
        self.out_channels = [h3, h4, h5]
        self.convs5 = _ConvSet(c5, h5)
        self.lateral5 = conv(h5, h5 // 2, 1, act_cfg=LEAKY_CFG)
        self.convs4 = _ConvSet(h5 // 2 + c4, h4)
        self.lateral4 = conv(h4, h4 // 2, 1, act_cfg=LEAKY_CFG)
        self.convs3 = _ConvSet(h4 // 2 + c3, h3)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        _check_inputs(feats, 'YOLOv3FPN')
        p3, p4, p5 = feats
        out5 = self.convs5(p5)
        out4 = self.convs4(torch.cat((_upsample_to(self.lateral5(out5), p4), p4), 1))
        out3 = self.convs3(torch.cat((_upsample_to(self.lateral4(out4), p3), p3), 1))
        return out3, out4, out5


@MODELS.register_module()
class YOLOv5PAFPN(BaseModule):
    """yolov5 (v6+) PAN: 1x1 reductions and C3 blocks (no shortcut, 3
    bottlenecks in the full model) top-down, then strided 3x3 convolutions
    and C3 blocks bottom-up. Output channels equal the input channels."""

    def __init__(self, in_channels: Optional[Sequence[int]] = None,
                 deepen_factor: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg)
        c3, c4, c5 = _check_in_channels(in_channels, 'YOLOv5PAFPN')
        blocks = scale_depth(3, check_factor('deepen_factor', deepen_factor))
        self.in_channels = [c3, c4, c5]
        self.out_channels = [c3, c4, c5]
        self.reduce5 = conv(c5, c4, 1, act_cfg=SILU_CFG)
        self.top_down4 = C3(2 * c4, c4, blocks, shortcut=False, act_cfg=SILU_CFG)
        self.reduce4 = conv(c4, c3, 1, act_cfg=SILU_CFG)
        self.top_down3 = C3(2 * c3, c3, blocks, shortcut=False, act_cfg=SILU_CFG)
        self.down3 = conv(c3, c3, 3, stride=2, act_cfg=SILU_CFG)
        self.bottom_up4 = C3(2 * c3, c4, blocks, shortcut=False, act_cfg=SILU_CFG)
        self.down4 = conv(c4, c4, 3, stride=2, act_cfg=SILU_CFG)
        self.bottom_up5 = C3(2 * c4, c5, blocks, shortcut=False, act_cfg=SILU_CFG)

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        _check_inputs(feats, 'YOLOv5PAFPN')
        p3, p4, p5 = feats
        lateral5 = self.reduce5(p5)
        lateral4 = self.reduce4(
            self.top_down4(torch.cat((_upsample_to(lateral5, p4), p4), 1)))
        out3 = self.top_down3(torch.cat((_upsample_to(lateral4, p3), p3), 1))
        out4 = self.bottom_up4(torch.cat((self.down3(out3), lateral4), 1))
        out5 = self.bottom_up5(torch.cat((self.down4(out4), lateral5), 1))
        return out3, out4, out5


class _UpsampleConcatPAFPN(BaseModule):
    """PAN without lateral 1x1 reductions (YOLOv8, YOLO26): subclasses build
    ``top_down4``, ``top_down3``, ``down3``, ``bottom_up4``, ``down4`` and
    ``bottom_up5``; the data flow is this one ``forward``."""

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        _check_inputs(feats, type(self).__name__)
        p3, p4, p5 = feats
        mid4 = self.top_down4(torch.cat((_upsample_to(p5, p4), p4), 1))
        out3 = self.top_down3(torch.cat((_upsample_to(mid4, p3), p3), 1))
        out4 = self.bottom_up4(torch.cat((self.down3(out3), mid4), 1))
        out5 = self.bottom_up5(torch.cat((self.down4(out4), p5), 1))
        return out3, out4, out5


@MODELS.register_module()
class YOLOv8PAFPN(_UpsampleConcatPAFPN):
    """YOLOv8 PAN: upsample-and-concatenate with C2f blocks (no shortcut, 3
    bottlenecks in the full model) top-down, then strided 3x3 convolutions
    and C2f blocks bottom-up; no lateral 1x1 reductions. Output channels
    equal the input channels."""

    def __init__(self, in_channels: Optional[Sequence[int]] = None,
                 deepen_factor: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg)
        c3, c4, c5 = _check_in_channels(in_channels, 'YOLOv8PAFPN')
        blocks = scale_depth(3, check_factor('deepen_factor', deepen_factor))
        self.in_channels = [c3, c4, c5]
        self.out_channels = [c3, c4, c5]
        self.top_down4 = C2f(c5 + c4, c4, blocks, shortcut=False, act_cfg=SILU_CFG)
        self.top_down3 = C2f(c4 + c3, c3, blocks, shortcut=False, act_cfg=SILU_CFG)
        self.down3 = conv(c3, c3, 3, stride=2, act_cfg=SILU_CFG)
        self.bottom_up4 = C2f(c3 + c4, c4, blocks, shortcut=False, act_cfg=SILU_CFG)
        self.down4 = conv(c4, c4, 3, stride=2, act_cfg=SILU_CFG)
        self.bottom_up5 = C2f(c4 + c5, c5, blocks, shortcut=False, act_cfg=SILU_CFG)

@MODELS.register_module()
class YOLO26PAFPN(_UpsampleConcatPAFPN):
    """The neck of ultralytics 8.4's ``yolo26.yaml``: upsample-and-concatenate
    with ``C3k2`` blocks (``C3k`` inner blocks, 2 in the full model)
    top-down, then strided 3x3 convolutions and ``C3k2`` bottom-up; the last
    block (P5) is a single ``C3k2`` with attention inner blocks
    (``Bottleneck`` + ``PSABlock``). No lateral 1x1 reductions.

    Output channels are those of the full model (256, 512, 1024), capped at
    ``max_channels`` and scaled by ``widen_factor``; at the "n" scale
    (0.5/0.25) 64, 128, 256.
    """

    def __init__(self, in_channels: Optional[Sequence[int]] = None,
                 deepen_factor: float = 0.5, widen_factor: float = 0.25,
                 max_channels: int = 1024,
                 init_cfg=None) -> None:
        super().__init__(init_cfg)
        c3, c4, c5 = _check_in_channels(in_channels, 'YOLO26PAFPN')
        blocks = scale_depth(2, check_factor('deepen_factor', deepen_factor))
        widen_factor = check_factor('widen_factor', widen_factor)
        o3, o4, o5 = (scale_width(min(c, max_channels), widen_factor)
                      for c in (256, 512, 1024))
        self.in_channels = [c3, c4, c5]
        self.out_channels = [o3, o4, o5]
        self.top_down4 = C3k2(c5 + c4, o4, blocks, c3k=True, act_cfg=SILU_CFG)
        self.top_down3 = C3k2(o4 + c3, o3, blocks, c3k=True, act_cfg=SILU_CFG)
        self.down3 = conv(o3, o3, 3, stride=2, act_cfg=SILU_CFG)
        self.bottom_up4 = C3k2(o3 + o4, o4, blocks, c3k=True, act_cfg=SILU_CFG)
        self.down4 = conv(o4, o4, 3, stride=2, act_cfg=SILU_CFG)
        # one block whatever the depth: the yaml gives it 1 repeat, and
        # ultralytics scales only repeats > 1
        self.bottom_up5 = C3k2(o4 + c5, o5, 1, c3k=True, expansion=0.5, attn=True,
                               act_cfg=SILU_CFG)

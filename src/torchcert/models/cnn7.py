"""The CNN7 family of the original code (and its 6-layer and DM-large relatives).

Every model is a flat ``nn.Sequential`` whose module indices, hence ``state_dict`` keys
(``"0.weight"``, ``"1.running_mean"``, ...), equal the original's, so its checkpoints load strictly.
Convolutions are 3x3 with padding 1; a stride-2 one maps a side n to ``(n - 1) // 2 + 1`` (= n / 2 for
even n). The Linear in-features are computed from that rule; for every input on which the original
model runs this equals its formula (``(in_dim//2)**2 * 2*width``, or the hard-coded 32768 of the
ImageNet variants at width 64 and 64x64 inputs).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from torch import nn

from .layers import Flatten
from .registry import _IMAGENET64, register_model

# (out_channels as a multiple of width, stride, followed by BatchNorm2d)
ConvPlan = Sequence[Tuple[int, int, bool]]


def _down(n: int, stride: int) -> int:
    """Side length after a 3x3, padding-1 convolution of the given stride."""
    return (n - 1) // stride + 1


def _cnn(
    in_ch: int, in_dim: int, num_class: int, width: int, linear_size: int, plan: ConvPlan, bn_linear: bool
) -> nn.Sequential:
    """Conv[-BN]-ReLU blocks from ``plan``, Flatten, Linear[-BN1d]-ReLU, Linear -> (B, num_class)."""
    layers: List[nn.Module] = []
    channels, side = in_ch, in_dim
    for mult, stride, bn in plan:
        layers.append(nn.Conv2d(channels, mult * width, 3, stride=stride, padding=1))
        if bn:
            layers.append(nn.BatchNorm2d(mult * width))
        layers.append(nn.ReLU())
        channels, side = mult * width, _down(side, stride)
    layers += [Flatten(), nn.Linear(channels * side * side, linear_size)]
    if bn_linear:
        layers.append(nn.BatchNorm1d(linear_size))
    layers += [nn.ReLU(), nn.Linear(linear_size, num_class)]
    return nn.Sequential(*layers)


def _plan7(bn: bool, last_stride: int = 1, last_bn: bool = True) -> ConvPlan:
    """Five convs: width, width, 2w (stride 2), 2w, 2w (stride ``last_stride``)."""
    return [(1, 1, bn), (1, 1, bn), (2, 2, bn), (2, 1, bn), (2, last_stride, bn and last_bn)]


@register_model("cnn_7layer")
def cnn_7layer(in_ch: int, in_dim: int, num_class: int, width: int = 64, linear_size: int = 512) -> nn.Sequential:
    """CNN7 without BatchNorm: 5 convs, Linear, Linear (indices 0-13)."""
    return _cnn(in_ch, in_dim, num_class, width, linear_size, _plan7(False), bn_linear=False)


@register_model("cnn_7layer_bn")
def cnn_7layer_bn(in_ch: int, in_dim: int, num_class: int, width: int = 64, linear_size: int = 512) -> nn.Sequential:
    """CNN7 with BatchNorm after every conv, none after the hidden Linear (indices 0-18)."""
    return _cnn(in_ch, in_dim, num_class, width, linear_size, _plan7(True), bn_linear=False)


@register_model("cnn_7layer_bn2")
@register_model("cnn")
def cnn_7layer_bn2(in_ch: int, in_dim: int, num_class: int, width: int = 64, linear_size: int = 512) -> nn.Sequential:
    """CNN7 with BatchNorm after every conv and the hidden Linear (indices 0-19); ``cnn`` is an alias."""
    return _cnn(in_ch, in_dim, num_class, width, linear_size, _plan7(True), bn_linear=True)


@register_model("cnn_wide")
def cnn_wide(in_ch: int, in_dim: int, num_class: int, width: int = 128, linear_size: int = 512) -> nn.Sequential:
    """``cnn_7layer_bn2`` with width 128."""
    return cnn_7layer_bn2(in_ch, in_dim, num_class, width=width, linear_size=linear_size)


@register_model("cnn_7layer_imagenet", input_shapes=(_IMAGENET64,), num_class=200)
def cnn_7layer_imagenet(
    in_ch: int, in_dim: int, num_class: int, width: int = 64, linear_size: int = 512
) -> nn.Sequential:
    """CNN7 for 64x64 inputs: 5th conv at stride 2 and without BatchNorm, no BN1d (indices 0-17)."""
    plan = _plan7(True, last_stride=2, last_bn=False)
    return _cnn(in_ch, in_dim, num_class, width, linear_size, plan, bn_linear=False)


@register_model("cnn_7layer_bn_imagenet", input_shapes=(_IMAGENET64,), num_class=200)
def cnn_7layer_bn_imagenet(
    in_ch: int, in_dim: int, num_class: int, width: int = 64, linear_size: int = 512
) -> nn.Sequential:
    """CNN7 for 64x64 inputs: 5th conv at stride 2, BatchNorm everywhere (indices 0-19)."""
    return _cnn(in_ch, in_dim, num_class, width, linear_size, _plan7(True, last_stride=2), bn_linear=True)


def _plan6(bn: bool) -> ConvPlan:
    """Four convs: width, width, 2w (stride 2), 2w."""
    return [(1, 1, bn), (1, 1, bn), (2, 2, bn), (2, 1, bn)]


@register_model("cnn_6layer")
def cnn_6layer(in_ch: int, in_dim: int, num_class: int, width: int = 32, linear_size: int = 256) -> nn.Sequential:
    """CNN6 without BatchNorm: 4 convs, Linear, Linear (indices 0-11)."""
    return _cnn(in_ch, in_dim, num_class, width, linear_size, _plan6(False), bn_linear=False)


@register_model("cnn_6layer_bn2")
def cnn_6layer_bn2(
    in_ch: int, in_dim: int, num_class: int, width: int = 32, linear_size: int = 256
) -> nn.Sequential:
    """CNN6 with BatchNorm after every conv and the hidden Linear (indices 0-16)."""
    return _cnn(in_ch, in_dim, num_class, width, linear_size, _plan6(True), bn_linear=True)


@register_model("cnn_large")
def cnn_large(in_ch: int, in_dim: int, num_class: int) -> nn.Sequential:
    """DM-large: ``cnn_7layer`` with fixed width 64 and hidden size 512 (no BatchNorm)."""
    return _cnn(in_ch, in_dim, num_class, 64, 512, _plan7(False), bn_linear=False)

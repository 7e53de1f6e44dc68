"""Residual networks for certified training: a conv stem, residual blocks, a dense head.

``resnet_small`` is sized for CPUs (digits, MNIST); every block is ``relu(bn(conv(relu(bn(conv(x))))) + s(x))``
with ``s`` the identity, or a 1x1 strided conv with BatchNorm when the block halves the map or widens it (the
blocks of the ResNets in the CROWN-IBP and SABR code bases, narrower).
"""
from __future__ import annotations

from typing import List

import torch
from torch import nn

from .layers import Flatten
from .registry import register_model


class ResidualBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and a shortcut; ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else \
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv-BN-ReLU, residual blocks, Flatten, Linear-ReLU-Linear."""

    def __init__(self, in_ch: int, in_dim: int, num_class: int, widths: List[int], strides: List[int],
                 linear_size: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks, cin, side = [], widths[0], in_dim
        for cout, stride in zip(widths, strides):
            blocks.append(ResidualBlock(cin, cout, stride))
            cin, side = cout, (side - 1) // stride + 1
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(Flatten(), nn.Linear(cin * side * side, linear_size), nn.ReLU(),
                                  nn.Linear(linear_size, num_class))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


@register_model("resnet_small", input_shapes=((1, 8), (1, 28), (3, 32)))
def resnet_small(in_ch: int, in_dim: int, num_class: int, width: int = 8, linear_size: int = 64) -> ResNet:
    """Stem(width), blocks (width, s1), (2 width, s2), Linear(linear_size), Linear(num_class): a residual
    network that trains on a CPU (a digits run takes minutes)."""
    for key, value in (("width", width), ("linear_size", linear_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"resnet_small option {key} must be a positive integer, got {value!r}")
    return ResNet(in_ch, in_dim, num_class, [width, 2 * width], [1, 2], linear_size)


class PlainBlock(nn.Module):
    """``relu(conv2(relu(conv1(x))) + shortcut(x))`` with biased convs and no BatchNorm (folded into the convs):
    the block of the VNN-COMP ``cifar10_resnet`` networks; the shortcut is a 1x1 strided conv when the block
    halves the map or widens it, else the identity (an empty ``nn.Sequential``, as there)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride)) if stride != 1 or cin != cout \
            else nn.Sequential()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + self.shortcut(x))


class VnncompResNet(nn.Module):
    """``conv1`` (3x3, stride 2) and ReLU, stages ``layer1, layer2, ...`` of two :class:`PlainBlock` each (the first
    of a stage has stride 2), Flatten, ``linear1`` (100) and ReLU, ``linear2``. The state_dict keys are those of the
    VNN-COMP 2021 ``cifar10_resnet`` ONNX files (``conv1.weight``, ``layer1.0.shortcut.0.weight``, ...)."""

    def __init__(self, in_ch: int, in_dim: int, num_class: int, in_planes: int, planes: List[int],
                 linear_size: int = 100) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_planes, 3, 2, 1)
        side, cin = (in_dim - 1) // 2 + 1, in_planes
        for k, cout in enumerate(planes, start=1):
            self.add_module(f"layer{k}", nn.Sequential(PlainBlock(cin, cout, 2), PlainBlock(cout, cout, 1)))
            side, cin = (side - 1) // 2 + 1, cout
        self.stages = len(planes)
        self.flatten = Flatten()
        self.linear1 = nn.Linear(cin * side * side, linear_size)
        self.linear2 = nn.Linear(linear_size, num_class)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        for k in range(1, self.stages + 1):
            x = getattr(self, f"layer{k}")(x)
        return self.linear2(self.relu(self.linear1(self.flatten(x))))


@register_model("resnet_2b", input_shapes=((3, 32), (1, 28), (1, 8)))
def resnet_2b(in_ch: int, in_dim: int, num_class: int) -> VnncompResNet:
    """ResNet-2B of VNN-COMP's cifar10_resnet: conv(8, s2), one stage of 2 blocks (16), Linear(100), Linear."""
    return VnncompResNet(in_ch, in_dim, num_class, 8, [16])


@register_model("resnet_4b", input_shapes=((3, 32), (1, 28)))
def resnet_4b(in_ch: int, in_dim: int, num_class: int) -> VnncompResNet:
    """ResNet-4B of VNN-COMP's cifar10_resnet: conv(16, s2), two stages of 2 blocks (32, 32), Linear(100), Linear."""
    return VnncompResNet(in_ch, in_dim, num_class, 16, [32, 32])

"""Elementwise affine maps by constants, ``y = x * scale + shift`` with scalar or per-channel constants: the rule
of ``x - mean``, ``x / std``, ``2 * x`` ... in a traced forward (``graph.ChannelAffine`` stands for each). The maths
is BatchNorm's (``batchnorm.ScaleOp``); only where the constants come from differs."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from . import batchnorm


class ChannelAffine(nn.Module):
    """``x * scale + shift``; ``scale``/``shift`` scalars or per-channel (channel dimension 1)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float64))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _channels(self.scale, x.shape[1], x.dim()) + _channels(self.shift, x.shape[1], x.dim())


def _channels(t: torch.Tensor, channels: int, ndim: int) -> torch.Tensor:
    return t.reshape(-1).expand(channels).view((1, channels) + (1,) * (ndim - 2))


def per_channel(t: torch.Tensor, channels: int) -> torch.Tensor:
    """A scalar, ``(C,)``, ``(C, 1, 1)`` or ``(1, C, 1, 1)`` constant as ``(C,)``; ValueError for other shapes."""
    flat = t.reshape(-1)
    if flat.numel() not in (1, channels) or (t.dim() > 1 and t.shape[-1] != 1 and flat.numel() != 1):
        raise ValueError(f"an elementwise constant of shape {tuple(t.shape)} is not a scalar or per-channel "
                         f"constant of the {channels} channels")
    return flat.expand(channels).clone()


def from_module(module: ChannelAffine, in_shape: Tuple[int, ...], dtype: torch.dtype) -> batchnorm.ScaleOp:
    channels = in_shape[0]
    return batchnorm.ScaleOp(per_channel(module.scale, channels).to(dtype), per_channel(module.shift, channels).to(dtype))


output_shape = batchnorm.output_shape
forward = batchnorm.forward
ibp = batchnorm.ibp
backward = batchnorm.backward
rounding = batchnorm.rounding
error_backward = batchnorm.error_backward

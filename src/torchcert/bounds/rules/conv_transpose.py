"""nn.ConvTranspose2d (any stride, padding, output padding, dilation, groups): an affine rule with no hand-written
back-substitution. ``backward`` and ``error_backward`` are the VJPs of ``forward`` (:mod:`.vjp`); IBP and the
rounding bound apply the same transposed convolution to radii with ``|W|``. Together with its entry in
``layers.RULES`` this module is all the engine needs for the layer (the README's extension example)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..box import Box
from . import vjp
from ._window import Arithmetic, Offset, channel_view, magnitude


@dataclass(frozen=True)
class ConvTransposeOp:
    """``weight (Cin, Cout/groups, kh, kw)``, ``bias (Cout,)``, the layer's geometry, ``abs_weight = |weight|``."""

    weight: Tensor
    bias: Tensor
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    output_padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int
    abs_weight: Tensor


def from_module(module: nn.ConvTranspose2d, in_shape: Tuple[int, ...], dtype: torch.dtype) -> ConvTransposeOp:
    if len(in_shape) != 3 or module.padding_mode != "zeros":
        raise ValueError(f"{module}: needs a (C, H, W) input and zero padding; got {in_shape}")
    weight = module.weight.to(dtype)
    bias = module.bias if module.bias is not None else module.weight.new_zeros(module.out_channels)
    return ConvTransposeOp(weight, bias.to(dtype), tuple(module.stride), tuple(module.padding),
                           tuple(module.output_padding), tuple(module.dilation), module.groups, weight.abs())


def output_shape(op: ConvTransposeOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    """``(H - 1) s - 2 p + d (k - 1) + output_padding + 1`` per spatial axis."""
    size = [(n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o in
            zip(in_shape[1:], op.stride, op.padding, op.dilation, op.weight.shape[2:], op.output_padding)]
    return (op.weight.shape[1] * op.groups, size[0], size[1])


def _apply(op: ConvTransposeOp, x: Tensor, weight: Tensor, bias) -> Tensor:
    return F.conv_transpose2d(x, weight, bias, op.stride, op.padding, op.output_padding, op.groups, op.dilation)


def forward(op: ConvTransposeOp, x: Tensor) -> Tensor:
    return _apply(op, x, op.weight, op.bias)


def _linear(op: ConvTransposeOp, x: Tensor) -> Tensor:
    return _apply(op, x, op.weight, None)


def _spread(op: ConvTransposeOp, x: Tensor) -> Tensor:
    """The same transposed convolution with ``|W|`` and no bias (radii and error magnitudes)."""
    return _apply(op, x, op.abs_weight, None)


def ibp(op: ConvTransposeOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """``c' = W * c + b``, ``r' = |W| * r``."""
    return forward(op, center), _spread(op, radius)


def backward(op: ConvTransposeOp, A: Tensor, offset: Offset,
             in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    return vjp.backward(forward, op, A, offset, in_shape, output_shape(op, in_shape))


def rounding(op: ConvTransposeOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """As ``linear.rounding``: each output sums at most ``n - 1 = Cin/groups kh kw`` products and the bias, in any
    order: carried ``|W| * e``, added ``gamma_n S + n tiny`` with ``S = |W| * (|x| + e) + |b|``."""
    n = (op.weight.shape[0] // op.groups) * op.weight[0, 0].numel() + 1
    peak = _spread(op, magnitude(pre) + error) + channel_view(op.bias.abs(), 3)
    return _spread(op, error), arith.gamma(n) * peak + n * arith.tiny, peak


def error_backward(op: ConvTransposeOp, center: Tensor, radius: Tensor, pre: Box,
                   error: Tensor) -> Tuple[Tensor, Tensor]:
    """Interval coefficients on the output moved to the input: ``W^T center``, ``|W|^T radius`` (VJPs)."""
    shape = tuple(pre.lower.shape[1:])
    return vjp.transpose(_linear, op, center, shape), vjp.transpose(_spread, op, radius, shape)

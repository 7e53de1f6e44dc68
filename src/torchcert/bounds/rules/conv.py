"""nn.Conv2d (any stride, padding, dilation, groups); also used for average pooling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset, channel_view, expand, magnitude


@dataclass(frozen=True)
class ConvOp:
    """``weight (Cout, Cin/groups, kh, kw)``, ``bias (Cout,)``; ``ibp_weight`` stacks ``W`` and ``|W|``
    (``ibp_weight[Cout:]`` is ``|W|``); ``window_weight`` is the kernel over the input window one output
    reads, ``(Cout, Cin/groups, d (kh - 1) + 1, d (kw - 1) + 1)``: ``weight`` with ``d - 1`` zeros between taps
    (the weight itself when ``dilation == 1``)."""

    weight: Tensor
    bias: Tensor
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int
    ibp_weight: Tensor
    ibp_bias: Tensor
    window_weight: Tensor


def dilate_kernel(weight: Tensor, dilation: Tuple[int, int]) -> Tensor:
    """``weight (..., kh, kw)`` spread over its dilated window: tap ``(i, j)`` at ``(d_y i, d_x j)``, zeros
    elsewhere, so that a dense (dilation 1) correlation with the result equals the dilated one."""
    dy, dx = dilation
    if (dy, dx) == (1, 1):
        return weight
    kh, kw = weight.shape[-2:]
    out = weight.new_zeros(weight.shape[:-2] + (dy * (kh - 1) + 1, dx * (kw - 1) + 1))
    out[..., ::dy, ::dx] = weight
    return out


def make(weight: Tensor, bias: Tensor, stride, padding, dilation, groups: int) -> ConvOp:
    """Build the op; ``|W|`` is computed here once per bound call."""
    ibp_weight = torch.cat([weight, weight.abs()], 0)
    ibp_bias = torch.cat([bias, torch.zeros_like(bias)], 0)
    pair = torch.nn.modules.utils._pair
    dilation = pair(dilation)
    return ConvOp(weight, bias, pair(stride), pair(padding), dilation, groups, ibp_weight, ibp_bias,
                  dilate_kernel(weight, dilation))


def from_module(module: nn.Conv2d, in_shape: Tuple[int, ...], dtype: torch.dtype) -> ConvOp:
    if len(in_shape) != 3 or module.padding_mode != "zeros" or isinstance(module.padding, str):
        raise ValueError(f"{module}: needs a (C, H, W) input, zero padding and integer padding; got {in_shape}")
    bias = module.bias if module.bias is not None else module.weight.new_zeros(module.out_channels)
    return make(module.weight.to(dtype), bias.to(dtype), module.stride, module.padding,
                module.dilation, module.groups)


def _out_len(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def output_shape(op: ConvOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    kh, kw = op.weight.shape[-2:]
    h = _out_len(in_shape[1], kh, op.stride[0], op.padding[0], op.dilation[0])
    w = _out_len(in_shape[2], kw, op.stride[1], op.padding[1], op.dilation[1])
    return (op.weight.shape[0], h, w)


def forward(op: ConvOp, x: Tensor) -> Tensor:
    return F.conv2d(x, op.weight, op.bias, op.stride, op.padding, op.dilation, op.groups)


def ibp(op: ConvOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """``c' = W * c + b``, ``r' = |W| * r``: two convolutions (measured faster on CPU than one grouped
    convolution over ``[c, r]`` channels for CNN7 at batch 128)."""
    c_out = op.weight.shape[0]
    c = F.conv2d(center, op.weight, op.bias, op.stride, op.padding, op.dilation, op.groups)
    r = F.conv2d(radius, op.ibp_weight[c_out:], None, op.stride, op.padding, op.dilation, op.groups)
    return c, r


def input_window(op: ConvOp, axis: int, start: int, length: int) -> Tuple[int, int]:
    """Input rows ``(first, count)`` along ``axis`` (0: y, 1: x) reached by output rows
    ``[start, start + length)``, padding included (not yet cropped to the map)."""
    k = op.weight.shape[2 + axis]
    s, p, d = op.stride[axis], op.padding[axis], op.dilation[axis]
    return start * s - p, (length - 1) * s + d * (k - 1) + 1


def input_range(op: ConvOp, axis: int, start: int, length: int, size: int) -> Tuple[int, int, int]:
    """:func:`input_window` cropped to a map of ``size`` rows: (first row, crop start, crop stop)."""
    first, full = input_window(op, axis, start, length)
    lo, hi = max(0, -first), min(full, size - first)
    return first + lo, lo, hi


#: transposed convolutions onto at most this many channels (the network input) run as one GEMM plus
#: shifted adds: oneDNN reached a quarter of the GEMM speed there (measured, CNN7's 64 -> 3 channels)
FEW_CHANNELS = 4


def _channels_last(A: Tensor) -> bool:
    return A.dim() == 4 and A.is_contiguous(memory_format=torch.channels_last)


def _transpose_few(op: ConvOp, A: Tensor) -> Tensor:
    """Stride-1 ``conv_transpose2d`` of channels-last ``A`` onto few channels: every kernel tap of every
    input position in one GEMM, ``(taps x cin, n h w)``, then each tap added at its shift into an output
    held as ``(cin, n, H, W)`` (runs of ``w`` contiguous values; returned as an ``(n, cin, H, W)`` view).
    Measured 1.3-1.8x faster than a GEMM into ``(n h w, taps x cin)`` with channels innermost."""
    n, c, h, w = A.shape
    cin, kh, kw = op.weight.shape[1:]
    kernels = op.weight.permute(2, 3, 1, 0).reshape(kh * kw * cin, c)
    taps = (kernels @ A.permute(0, 2, 3, 1).reshape(n * h * w, c).t()).view(kh, kw, cin, n, h, w)
    out = A.new_zeros(cin, n, h + kh - 1, w + kw - 1)
    for ky in range(kh):
        for kx in range(kw):
            out[:, :, ky:ky + h, kx:kx + w] += taps[ky, kx]
    return out.transpose(0, 1)


def transpose(op: ConvOp, A: Tensor) -> Tensor:
    """``conv_transpose2d(A, W)`` without padding; channels-last out, except onto few channels. Stride 2
    with odd kernels of at least 3 x 3 (so every phase has taps) runs as four stride-1 phases (one per
    output parity, each with its sub-kernel): measured faster on CPU than oneDNN's strided transposed
    convolution."""
    kh, kw = op.weight.shape[-2:]
    plain = op.dilation == (1, 1) and op.groups == 1
    if plain and op.stride == (1, 1) and op.weight.shape[1] <= FEW_CHANNELS and _channels_last(A) \
            and not A.requires_grad:
        return _transpose_few(op, A)
    if op.stride != (2, 2) or not plain or kh % 2 == 0 or kw % 2 == 0 or kh < 3 or kw < 3:
        return F.conv_transpose2d(A, op.weight, None, op.stride, 0, 0, op.groups, op.dilation)
    h, w = (A.shape[-2] - 1) * 2 + kh, (A.shape[-1] - 1) * 2 + kw
    out = torch.empty(A.shape[0], op.weight.shape[1], h, w, dtype=A.dtype, device=A.device,
                      memory_format=torch.channels_last)
    for py in (0, 1):
        for px in (0, 1):
            out[:, :, py::2, px::2] = F.conv_transpose2d(A, op.weight[:, :, py::2, px::2], None, 1, 0, 0)
    return out


def backward(op: ConvOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """``A (S, B, Cout, h, w)`` on an output window -> ``A W`` on the input window it reaches.

    Transposed convolution without padding, then cropped to the input map (rows/cols outside it are
    the convolution's zero padding and carry no value). Bias term: ``sum_{c,y,x} A[c,y,x] b[c]``.
    """
    s, b = A.shape[:2]
    kh, kw = op.weight.shape[-2:]
    oy, ox = offset if offset is not None else (0, 0)
    flat = A.reshape((s * b,) + A.shape[2:])
    out = transpose(op, flat if A.requires_grad else flat.contiguous(memory_format=torch.channels_last))
    y0, ylo, yhi = input_range(op, 0, oy, A.shape[-2], in_shape[1])
    x0, xlo, xhi = input_range(op, 1, ox, A.shape[-1], in_shape[2])
    out = out[:, :, ylo:yhi, xlo:xhi]
    bias = A.sum((-2, -1)) @ op.bias
    return out.reshape((s, b) + out.shape[1:]), bias, (y0, x0)


def _abs_op(op: ConvOp) -> ConvOp:
    """The same convolution with ``|W|`` and no bias."""
    return make(op.ibp_weight[op.weight.shape[0]:], torch.zeros_like(op.bias), op.stride, op.padding, op.dilation,
                op.groups)


def rounding(op: ConvOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """As ``linear.rounding`` with ``|W|`` applied as a convolution; fan-in ``Cin/groups kh kw``. The bound
    holds for summation in any order (direct, im2col/GEMM, blocked), not for Winograd or FFT."""
    spread = _abs_op(op)
    size = magnitude(pre) + error
    n = op.weight[0].numel() + 1
    peak = forward(spread, size) + channel_view(op.bias.abs(), 3)
    return forward(spread, error), arith.gamma(n) * peak + n * arith.tiny, peak


def error_backward(op: ConvOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    """Interval coefficients on the whole output map moved to the whole input map: ``A W``, ``R |W|``."""
    shape = tuple(pre.lower.shape[1:])
    out = []
    for part, o in ((center, op), (radius, _abs_op(op))):
        A, _, offset = backward(o, part.contiguous(), (0, 0), shape)
        out.append(expand(A, offset, shape)[0])
    return out[0], out[1]

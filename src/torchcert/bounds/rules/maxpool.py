"""nn.MaxPool2d (no dilation, no ceil mode): ``y_o = max_{i in window(o)} x_i``.

IBP: ``[max l, max u]`` over each window. Linear relaxation, per output ``o`` with ``j`` the window element of
largest lower bound: ``y_o >= x_j`` (any element is a lower line), and ``y_o <= x_j`` when ``x_j`` dominates
(``l_j >= u_i`` for every other element ``i``, so ``y_o = x_j``), else ``y_o <= max_i u_i`` (a constant). The
back-substitution of a lower bound sends ``A+`` (and ``A-`` where ``x_j`` dominates) to ``x_j`` and adds
``A- max u`` elsewhere. Windows are read with ``unfold`` over the map padded with ``-inf`` (as max pooling pads)
and coefficients written back with ``fold`` (overlapping windows add up). Branch and bound searches max pooling
in its exact ReLU form (``bounds.relu_form``: ``max(a, b) = a + relu(b - a)``), without padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset


@dataclass(frozen=True)
class PoolOp:
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]


def from_module(module: nn.MaxPool2d, in_shape: Tuple[int, ...], dtype: torch.dtype) -> PoolOp:
    pair = torch.nn.modules.utils._pair
    if module.ceil_mode or pair(module.dilation) != (1, 1) or module.return_indices or len(in_shape) != 3:
        raise ValueError(f"{module}: supported are dilation 1, ceil_mode=False, no return_indices, (C, H, W) input")
    stride = module.stride if module.stride is not None else module.kernel_size
    return PoolOp(pair(module.kernel_size), pair(stride), pair(module.padding))


def output_shape(op: PoolOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    h = (in_shape[1] + 2 * op.padding[0] - op.kernel[0]) // op.stride[0] + 1
    w = (in_shape[2] + 2 * op.padding[1] - op.kernel[1]) // op.stride[1] + 1
    return (in_shape[0], h, w)


def forward(op: PoolOp, x: Tensor) -> Tensor:
    return F.max_pool2d(x, op.kernel, op.stride, op.padding)


def ibp(op: PoolOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    lower, upper = forward(op, center - radius), forward(op, center + radius)
    return (upper + lower) / 2, (upper - lower) / 2


def _windows(op: PoolOp, x: Tensor) -> Tensor:
    """``x (N, C, H, W)`` -> ``(N, C, kh kw, L)``: each output's window, padding read as ``-inf``."""
    n, c = x.shape[:2]
    ph, pw = op.padding
    padded = F.pad(x, (pw, pw, ph, ph), value=float("-inf")) if ph or pw else x
    cols = F.unfold(padded, op.kernel, stride=op.stride)
    return cols.view(n, c, op.kernel[0] * op.kernel[1], -1)


def _to_map(op: PoolOp, cols: Tensor, in_shape: Tuple[int, ...]) -> Tensor:
    """Inverse placement of :func:`_windows`: ``(N, C, kh kw, L)`` added into ``(N, C, H, W)``."""
    n, c = cols.shape[:2]
    ph, pw = op.padding
    h, w = in_shape[1] + 2 * ph, in_shape[2] + 2 * pw
    out = F.fold(cols.reshape(n, c * cols.shape[2], -1), (h, w), op.kernel, stride=op.stride)
    return out[:, :, ph:ph + in_shape[1], pw:pw + in_shape[2]]


@dataclass(frozen=True)
class PoolRelaxation:
    """Per output: the window index ``j`` (``(B, C, L)``) of the lower line, whether ``x_j`` dominates, and the
    constant upper line ``max u`` used where it does not."""

    index: Tensor
    dominated: Tensor
    upper: Tensor


def relaxation(op: PoolOp, pre: Box) -> PoolRelaxation:
    lows, ups = _windows(op, pre.lower), _windows(op, pre.upper)
    best, index = lows.max(dim=2)
    others = ups.scatter(2, index.unsqueeze(2), float("-inf")).max(dim=2).values
    return PoolRelaxation(index, best >= others, ups.max(dim=2).values)


def backward_relaxed(op: PoolOp, relax: PoolRelaxation, A: Tensor, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor]:
    """Lower-bound back-substitution of ``A (S, B, C, oh, ow)`` on the full output map: ``(A_in, bias (S, B))``."""
    s, b, c = A.shape[:3]
    flat = A.reshape(s, b, c, -1)
    neg = flat.clamp(max=0)
    to_j = flat.clamp(min=0) + neg * relax.dominated.to(A.dtype)
    bias = (neg * (~relax.dominated).to(A.dtype) * relax.upper.nan_to_num(0.0)).sum((2, 3))
    cols = A.new_zeros(s * b, c, op.kernel[0] * op.kernel[1], flat.shape[-1])
    cols.scatter_(2, relax.index.expand(s, b, c, -1).reshape(s * b, c, 1, -1), to_j.reshape(s * b, c, 1, -1))
    out = _to_map(op, cols, in_shape)
    return out.reshape((s, b) + out.shape[1:]), bias


def rounding(op: PoolOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """Max is exact and 1-Lipschitz in the max norm: the error carried is the window's largest, none is added."""
    carried = forward(op, error)
    return carried, torch.zeros_like(carried), torch.zeros_like(carried)


def error_backward(op: PoolOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    """The output's error is at most the largest error of its window, at most their sum: interval coefficients
    ``|A| + R`` go to every element of the window (center 0)."""
    s, b, c = center.shape[:3]
    size = (center.abs() + radius).reshape(s * b, c, 1, -1)
    cols = size.expand(-1, -1, op.kernel[0] * op.kernel[1], -1)
    spread = _to_map(op, cols.contiguous(), tuple(pre.lower.shape[1:]))
    spread = spread.reshape((s, b) + spread.shape[1:])
    return torch.zeros_like(spread), spread


def backward(op: PoolOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    raise ValueError("max pooling needs its relaxation: it is bounded by the DAG walk (bounds.dag)")

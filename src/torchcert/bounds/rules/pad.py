"""Constant padding of a feature map, ``F.pad(x, (left, right, top, bottom), value=c)`` (non-negative sizes):
affine, exact in IBP and in back-substitution (coefficients on the padding are dropped; their constant goes to
the bias)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset


class ConstantPad(nn.Module):
    """Stands for ``F.pad`` / ``nn.ZeroPad2d`` / ``nn.ConstantPad2d`` on the last two dimensions."""

    def __init__(self, sizes: Tuple[int, int, int, int], value: float = 0.0) -> None:
        super().__init__()
        self.sizes, self.value = tuple(int(s) for s in sizes), float(value)

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, self.sizes, value=self.value)


@dataclass(frozen=True)
class PadOp:
    sizes: Tuple[int, int, int, int]  # left, right, top, bottom
    value: float


def from_module(module: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype) -> PadOp:
    sizes = tuple(module.padding) if not isinstance(module, ConstantPad) else module.sizes
    value = float(getattr(module, "value", 0.0))
    if len(in_shape) != 3 or len(sizes) != 4 or min(sizes) < 0:
        raise ValueError(f"{module}: supported is non-negative constant padding of the last two dimensions of a map")
    return PadOp(tuple(int(s) for s in sizes), value)


def output_shape(op: PadOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    left, right, top, bottom = op.sizes
    return (in_shape[0], in_shape[1] + top + bottom, in_shape[2] + left + right)


def forward(op: PadOp, x: Tensor) -> Tensor:
    return F.pad(x, op.sizes, value=op.value)


def ibp(op: PadOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    return forward(op, center), F.pad(radius, op.sizes)


def _crop(op: PadOp, A: Tensor) -> Tensor:
    left, right, top, bottom = op.sizes
    return A[..., top:A.shape[-2] - bottom, left:A.shape[-1] - right]


def backward(op: PadOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """``A (S, B, C, H', W')`` on the whole padded map -> the inner ``(H, W)``; bias ``c * sum`` of the rest."""
    if offset != (0, 0) or A.shape[-2:] != output_shape(op, in_shape)[1:]:
        from ._window import expand

        A, _ = expand(A, offset, output_shape(op, in_shape))
    inner = _crop(op, A)
    bias = op.value * (A.sum((-3, -2, -1)) - inner.sum((-3, -2, -1))) if op.value else A.new_zeros(A.shape[:2])
    return inner, bias, (0, 0)


def rounding(op: PadOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """Exact: the error is carried over (zero on the padding), none is added."""
    carried = F.pad(error, op.sizes)
    return carried, torch.zeros_like(carried), torch.zeros_like(carried)


def error_backward(op: PadOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    return _crop(op, center), _crop(op, radius)

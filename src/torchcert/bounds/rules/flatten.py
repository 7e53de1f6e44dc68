"""Flatten to ``(B, -1)`` (``nn.Flatten`` with default dims or any parameter-free ``Flatten`` module)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset


@dataclass(frozen=True)
class FlattenOp:
    """Remembers the feature shape ``in_shape`` it flattens."""

    in_shape: Tuple[int, ...]


def from_module(module: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype) -> FlattenOp:
    if isinstance(module, nn.Flatten) and (module.start_dim != 1 or module.end_dim != -1):
        raise ValueError(f"{module}: only Flatten(start_dim=1, end_dim=-1) is supported")
    return FlattenOp(tuple(in_shape))


def output_shape(op: FlattenOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    n = 1
    for d in in_shape:
        n *= d
    return (n,)


def forward(op: FlattenOp, x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def ibp(op: FlattenOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    return forward(op, center), forward(op, radius)


def backward(op: FlattenOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """Reshape ``(S, B, F) -> (S, B, *in_shape)``; a feature map is then covered fully (offset 0)."""
    out = A.reshape(A.shape[:2] + tuple(in_shape))
    return out, A.new_zeros(A.shape[:2]), ((0, 0) if len(in_shape) == 3 else None)


def rounding(op: FlattenOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """A reshape is exact: the error is carried over, none is added, no new value is formed."""
    carried = forward(op, error)
    return carried, torch.zeros_like(carried), torch.zeros_like(carried)


def error_backward(op: FlattenOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    shape = center.shape[:2] + tuple(op.in_shape)
    return center.reshape(shape), radius.reshape(shape)

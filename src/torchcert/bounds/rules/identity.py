"""nn.Identity and nn.Dropout (the identity in bounds): ``y = x``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset


@dataclass(frozen=True)
class IdentityOp:
    """No parameters."""


def from_module(module: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype) -> IdentityOp:
    return IdentityOp()


def output_shape(op: IdentityOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return in_shape


def forward(op: IdentityOp, x: Tensor) -> Tensor:
    return x


def ibp(op: IdentityOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    return center, radius


def backward(op: IdentityOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    return A, A.new_zeros(A.shape[:2]), offset


def rounding(op: IdentityOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """Exact: the error is carried over, none is added, no new value is formed."""
    return error, torch.zeros_like(error), torch.zeros_like(error)


def error_backward(op: IdentityOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    return center, radius

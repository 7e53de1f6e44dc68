"""nn.Linear: ``y = W x + b``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset, magnitude


@dataclass(frozen=True)
class LinearOp:
    """``weight (out, in)``, ``bias (out,)``, ``abs_weight = |weight|`` (cached once per call)."""

    weight: Tensor
    bias: Tensor
    abs_weight: Tensor


def make(weight: Tensor, bias: Tensor) -> LinearOp:
    return LinearOp(weight, bias, weight.abs())


def from_module(module: nn.Linear, in_shape: Tuple[int, ...], dtype: torch.dtype) -> LinearOp:
    if len(in_shape) != 1:
        raise ValueError(f"{module} receives features of shape {in_shape}; add a Flatten before it")
    bias = module.bias if module.bias is not None else module.weight.new_zeros(module.out_features)
    return make(module.weight.to(dtype), bias.to(dtype))


def output_shape(op: LinearOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return (op.weight.shape[0],)


def forward(op: LinearOp, x: Tensor) -> Tensor:
    return torch.nn.functional.linear(x, op.weight, op.bias)


def ibp(op: LinearOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """``c' = W c + b``, ``r' = |W| r``."""
    return forward(op, center), radius @ op.abs_weight.t()


def backward(op: LinearOp, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """``A (S, B, out) -> (A W (S, B, in), A b (S, B))``."""
    return A @ op.weight, A @ op.bias, None


def rounding(op: LinearOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """For a float input ``x'`` with ``|x' - x| <= error``, ``x`` in ``pre``: the carried error ``|W| e``, the
    rounding ``gamma_(n+1) S + (n+1) tiny`` of ``fl(W x' + b)`` and the largest magnitude of any partial sum,
    ``S = |W| (|x| + e) + |b|`` (``n`` = fan-in; any summation order)."""
    size = magnitude(pre) + error
    n = op.weight.shape[1] + 1
    peak = size @ op.abs_weight.t() + op.bias.abs()
    return error @ op.abs_weight.t(), arith.gamma(n) * peak + n * arith.tiny, peak


def error_backward(op: LinearOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    """Interval coefficients ``[center - radius, center + radius]`` ``(S, B, out)`` moved to the input: ``A W``,
    ``R |W|``."""
    return center @ op.weight, radius @ op.abs_weight

"""ReLU: interval map and the linear relaxation used by back-substitution (the relaxation is data).

For pre-activation bounds ``l <= z <= u`` (``lr = min(l, 0)``, ``ur = max(max(u, 0), lr + 1e-8)``):
upper line ``relu(z) <= a_u z + b_u`` with ``a_u = ur / (ur - lr)``, ``b_u = -lr a_u`` (the chord; exact
for stable neurons), lower line ``relu(z) >= a_l z`` with ``a_l = 1 if a_u > 0.5 else 0`` ("adaptive";
exact for stable neurons). Any ``a_l`` in [0, 1] is a valid lower line for an unstable neuron.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset, crop


@dataclass(frozen=True)
class ReluOp:
    """No parameters."""


@dataclass(frozen=True)
class Relaxation:
    """Lines per neuron: ``lower_slope`` ``(B, *shape)`` or ``(S, B, *shape)``; upper ``(B, *shape)``."""

    lower_slope: Tensor
    upper_slope: Tensor
    upper_intercept: Tensor


def from_module(module: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype) -> ReluOp:
    return ReluOp()


def output_shape(op: ReluOp, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return in_shape


def forward(op: ReluOp, x: Tensor) -> Tensor:
    return torch.relu(x)


def ibp(op: ReluOp, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """``[relu(c - r), relu(c + r)]`` in centre/radius form."""
    lower, upper = (center - radius).relu_(), (center + radius).relu_()
    return (upper + lower).mul_(0.5), (upper - lower).mul_(0.5)


def unstable(pre: Box) -> Tensor:
    """Boolean mask of neurons with ``l < 0 < u``."""
    return (pre.lower < 0) & (pre.upper > 0)


def relaxation(pre: Box, lower_slope: Optional[Tensor] = None) -> Relaxation:
    """Relaxation for bounds ``pre``; ``lower_slope`` (values in [0, 1]) replaces the adaptive choice
    for unstable neurons (broadcastable to ``(S, B, *shape)``)."""
    lr = pre.lower.clamp(max=0)
    ur = torch.maximum(pre.upper.clamp(min=0), lr + 1e-8)
    upper_slope = ur / (ur - lr)
    upper_intercept = -lr * upper_slope
    adaptive = (upper_slope > 0.5).to(upper_slope.dtype)
    if lower_slope is not None:
        adaptive = torch.where(unstable(pre), lower_slope, adaptive)
    return Relaxation(adaptive, upper_slope, upper_intercept)


def _layout_like(t: Tensor, A: Tensor) -> Tensor:
    """``t`` with channels innermost in memory when ``A`` (a feature map) has them so: elementwise ops
    between the two then run on contiguous memory (a layout mismatch made them several times slower)."""
    if A.dim() < 5 or t.dim() < 3 or A.stride(2) != 1 or t.stride(-3) == 1:
        return t
    return t.movedim(-3, -1).contiguous().movedim(-1, -3)


def backward(relax: Relaxation, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """Lower-bound back-substitution: ``A -> A+ a_l + A- a_u = A a_l + A- (a_u - a_l)``, bias ``sum A- b_u``."""
    size = A.shape[2:]
    lower, upper, intercept = (_layout_like(crop(t, offset, size), A) for t in
                               (relax.lower_slope, relax.upper_slope, relax.upper_intercept))
    neg = A.clamp(max=0)
    bias = (neg * intercept).sum(tuple(range(2, A.dim())))
    return (A * lower).addcmul_(neg, upper - lower), bias, offset


def _secant_slopes(pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    """Range ``[t_lo, t_hi]`` of ``(relu(z') - relu(z)) / (z' - z)`` for real ``z`` in ``pre`` and float
    ``|z' - z| <= error``: 1 where both are surely positive, 0 where both are surely negative, else [0, 1]."""
    active = (pre.lower - error > 0).to(error.dtype)
    inactive = pre.upper + error < 0
    return active, torch.where(inactive, torch.zeros_like(error), torch.ones_like(error))


def rounding(op: ReluOp, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
    """``max(x', 0)`` is exact and 1-Lipschitz: the error is carried over (zero where both the float and the real
    input are surely negative), none is added, no new value is formed."""
    return error * _secant_slopes(pre, error)[1], torch.zeros_like(error), torch.zeros_like(error)


def error_backward(op: ReluOp, center: Tensor, radius: Tensor, pre: Box, error: Tensor) -> Tuple[Tensor, Tensor]:
    """Interval coefficients times a secant slope ``t`` in ``[t_lo, t_hi]`` (within [0, 1]): the product's range is
    spanned by the ends, ``[min(A_lo t_lo, A_lo t_hi), max(A_hi t_lo, A_hi t_hi)]``."""
    t_lo, t_hi = _secant_slopes(pre, error)
    lo, hi = center - radius, center + radius
    low = torch.minimum(lo * t_lo, lo * t_hi)
    high = torch.maximum(hi * t_lo, hi * t_hi)
    return (high + low) / 2, (high - low) / 2

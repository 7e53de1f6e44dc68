"""Value types for bounds: an interval ``Box`` and back-substituted ``LinearBounds``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Box:
    """Elementwise interval ``lower <= x <= upper`` (any shape, usually ``(B, ...)``)."""

    lower: Tensor
    upper: Tensor

    @property
    def center(self) -> Tensor:
        """``(upper + lower) / 2``."""
        return (self.upper + self.lower) / 2

    @property
    def radius(self) -> Tensor:
        """``(upper - lower) / 2``."""
        return (self.upper - self.lower) / 2

    @classmethod
    def from_center_radius(cls, center: Tensor, radius: Tensor) -> "Box":
        """``[center - radius, center + radius]``."""
        return cls(center - radius, center + radius)

    @classmethod
    def point(cls, x: Tensor) -> "Box":
        """The degenerate box ``[x, x]``."""
        return cls(x, x)

    def intersect(self, other: "Box") -> "Box":
        """``[max(l, l'), min(u, u')]`` (may be empty where the two do not overlap)."""
        return Box(torch.maximum(self.lower, other.lower), torch.minimum(self.upper, other.upper))

    def contains(self, x: Tensor, tol: float = 0.0) -> Tensor:
        """Boolean tensor: ``lower - tol <= x <= upper + tol`` elementwise."""
        return (x >= self.lower - tol) & (x <= self.upper + tol)


@dataclass(frozen=True)
class LinearBounds:
    """Linear bound ``A . x + bias`` on ``S`` specifications of ``B`` examples.

    ``A``: ``(S, B, *input_shape)``; ``bias``: ``(S, B)``. Over a box ``[l, u]`` its minimum is
    ``A+ . l + A- . u + bias = A . centre - |A| . radius + bias``.
    """

    A: Tensor
    bias: Tensor

    def concretize_lower(self, box: Box) -> Tensor:
        """Minimum over ``box`` of ``A . x + bias``: ``(B, S)``."""
        dims = tuple(range(2, self.A.dim()))
        value = (self.A * box.center).sum(dims) - (self.A.abs() * box.radius).sum(dims)
        return (value + self.bias).transpose(0, 1)

"""The sum or difference of two activations of the same shape, ``y = a + s b`` with ``s = +-1`` (a residual
connection). Two inputs: the engine's graph walks give it one box or one coefficient tensor per input."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, magnitude


class Merge(nn.Module):
    """``a + sign * b`` of two traced activations (stands for ``x + y`` / ``x - y`` in a forward)."""

    def __init__(self, sign: float = 1.0) -> None:
        super().__init__()
        self.sign = float(sign)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a + self.sign * b


def from_module(module: Merge, in_shape: Tuple[int, ...], dtype: torch.dtype) -> float:
    return module.sign


def output_shape(op: float, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return in_shape


def forward_many(op: float, inputs: Sequence[Tensor]) -> Tensor:
    return inputs[0] + op * inputs[1]


def ibp_many(op: float, boxes: Sequence[Tuple[Tensor, Tensor]]) -> Tuple[Tensor, Tensor]:
    """``c = c_a + s c_b``, ``r = r_a + r_b``."""
    (ca, ra), (cb, rb) = boxes
    return ca + op * cb, ra + rb


def backward_many(op: float, A: Tensor) -> List[Tensor]:
    """Coefficients on the output go to both inputs: ``A`` and ``s A``; no bias."""
    return [A, op * A]


def rounding_many(op: float, pres: Sequence[Box], errors: Sequence[Tensor], arith: Arithmetic
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    """Carried ``e_a + e_b``; one rounded addition adds ``u (|a| + |b| + e_a + e_b) + tiny``."""
    size = magnitude(pres[0]) + magnitude(pres[1]) + errors[0] + errors[1]
    return errors[0] + errors[1], arith.gamma(1) * size + arith.tiny, size


def error_backward_many(op: float, center: Tensor, radius: Tensor) -> List[Tuple[Tensor, Tensor]]:
    return [(center, radius), (op * center, radius)]

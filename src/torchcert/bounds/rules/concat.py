"""Concatenation of activations along the channel (feature) dimension 1, ``torch.cat([a, b, ...], dim=1)``:
linear and exact; coefficients on the output are split back by channel ranges."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic


class Concat(nn.Module):
    """Stands for ``torch.cat(tensors, dim=1)`` of traced activations."""

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=1)


def make(shapes: Sequence[Tuple[int, ...]]) -> Tuple[int, ...]:
    """The op: the channel count of every input; ValueError unless the other dimensions agree."""
    rest = {tuple(s[1:]) for s in shapes}
    if len(rest) != 1:
        raise ValueError(f"torch.cat along dim 1 of inputs of shapes {list(shapes)}: the other dimensions differ")
    return tuple(s[0] for s in shapes)


def output_shape(op: Tuple[int, ...], in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
    return (sum(op),) + tuple(in_shape[1:])


def forward_many(op: Tuple[int, ...], inputs: Sequence[Tensor]) -> Tensor:
    return torch.cat(list(inputs), dim=1)


def ibp_many(op: Tuple[int, ...], boxes: Sequence[Tuple[Tensor, Tensor]]) -> Tuple[Tensor, Tensor]:
    return torch.cat([c for c, _ in boxes], dim=1), torch.cat([r for _, r in boxes], dim=1)


def backward_many(op: Tuple[int, ...], A: Tensor) -> List[Tensor]:
    """``A (S, B, sum C_i, ...)`` -> one slice per input; no bias."""
    return list(A.split(list(op), dim=2))


def rounding_many(op: Tuple[int, ...], pres: Sequence[Box], errors: Sequence[Tensor], arith: Arithmetic
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    """Exact: the errors are carried over side by side, none is added."""
    carried = torch.cat(list(errors), dim=1)
    return carried, torch.zeros_like(carried), torch.zeros_like(carried)


def error_backward_many(op: Tuple[int, ...], center: Tensor, radius: Tensor) -> List[Tuple[Tensor, Tensor]]:
    return list(zip(center.split(list(op), dim=2), radius.split(list(op), dim=2)))

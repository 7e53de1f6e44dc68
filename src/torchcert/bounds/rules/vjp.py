"""Back-substitution through any affine rule from its ``forward`` alone, by ``torch.func.vjp`` (jax_verify's idea).

For an affine map ``f(x) = M x + b`` and coefficients ``A`` on its output, ``A . f(x) = (M^T A) . x + A . b``.
``M^T A`` is the vector-Jacobian product of ``f`` with cotangent ``A`` (at any point: the Jacobian of an affine
map is ``M`` everywhere), and ``b = f(0)``. The ``S x B`` rows of ``A`` are one batch of cotangents, so one VJP
moves them all. A rule whose map is not affine must not use this.
"""
from __future__ import annotations

from typing import Any, Callable, Tuple

import torch
from torch import Tensor

from ._window import Offset, expand

Forward = Callable[[Any, Tensor], Tensor]


def transpose(forward: Forward, op: Any, A: Tensor, in_shape: Tuple[int, ...]) -> Tensor:
    """``M^T A``: ``A (S, B, *out)`` on the whole output -> ``(S, B, *in)``, for the linear part ``M`` of
    ``x -> forward(op, x)``."""
    rows = A.reshape((-1,) + tuple(A.shape[2:]))
    _, pull = torch.func.vjp(lambda x: forward(op, x), rows.new_zeros((rows.shape[0],) + tuple(in_shape)))
    return pull(rows)[0].reshape(A.shape[:2] + tuple(in_shape))


def backward(forward: Forward, op: Any, A: Tensor, offset: Offset, in_shape: Tuple[int, ...],
             out_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
    """``(M^T A, A . b, offset)`` with ``A`` first written into the whole output map (``_window.expand``); the
    result covers the whole input (offset ``(0, 0)`` for maps, None for vectors)."""
    A, _ = expand(A, offset, out_shape)
    const = forward(op, A.new_zeros((1,) + tuple(in_shape)))[0]       # b = f(0), (*out)
    bias = (A * const).flatten(2).sum(2)
    return transpose(forward, op, A, in_shape), bias, ((0, 0) if len(in_shape) == 3 else None)

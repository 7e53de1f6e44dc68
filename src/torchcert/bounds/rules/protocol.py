"""What a rule is: the typed interface every rule module in ``layers.RULES`` provides.

A rule is a module of plain functions over an ``op`` it builds from the torch module (weights cast to the bound
dtype). Single-input rules implement :class:`Rule`; rules with several inputs (``Merge``, ``Concat``) implement
:class:`MultiInputRule` in addition (``*_many`` functions, one tensor per input). ReLU and max pooling also
declare a relaxation (slopes and intercepts, see ``relu.Relaxation``) that the shared back-substitution applies.

An affine rule need not write ``backward`` or ``error_backward`` by hand: :mod:`.vjp` derives both from its
``forward`` with ``torch.func.vjp`` (``conv_transpose`` does). A hand-written one is a speed-up, tested equal to
the VJP in ``tests/bounds/test_rule_protocol.py``.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence, Tuple, runtime_checkable

import torch
from torch import Tensor, nn

from ..box import Box
from ._window import Arithmetic, Offset


@runtime_checkable
class Rule(Protocol):
    """Shapes exclude the batch; ``A`` is ``(S, B, *out_shape)`` (``S`` specifications), ``offset`` the corner of
    the window of the map ``A`` covers (``_window``)."""

    def from_module(self, module: nn.Module, in_shape: Tuple[int, ...], dtype: torch.dtype) -> Any:
        """The op: what the other functions read (ValueError naming an unsupported configuration)."""

    def output_shape(self, op: Any, in_shape: Tuple[int, ...]) -> Tuple[int, ...]:
        """Feature shape of the output."""

    def forward(self, op: Any, x: Tensor) -> Tensor:
        """``y = f(x)``, ``(B, *in) -> (B, *out)``, as the torch module computes it."""

    def ibp(self, op: Any, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
        """Centre and radius of a box containing ``f`` of the box ``center ± radius``."""

    def backward(self, op: Any, A: Tensor, offset: Offset, in_shape: Tuple[int, ...]) -> Tuple[Tensor, Tensor, Offset]:
        """Affine ``f(x) = M x + b``: ``A . f(x) = A' . x + bias`` with ``A' = A M`` and ``bias = A b (S, B)``."""

    def rounding(self, op: Any, pre: Box, error: Tensor, arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]:
        """Float error: (carried input error, rounding added, largest magnitude formed) for inputs in ``pre``."""

    def error_backward(self, op: Any, center: Tensor, radius: Tensor, pre: Box,
                       error: Tensor) -> Tuple[Tensor, Tensor]:
        """Interval coefficients ``center ± radius`` on the output moved to the input."""


@runtime_checkable
class MultiInputRule(Protocol):
    """A rule that reads several activations (``Merge``, ``Concat``): the ``*_many`` counterparts of
    :class:`Rule`'s functions, one tensor per input."""

    def output_shape(self, op: Any, in_shape: Tuple[int, ...]) -> Tuple[int, ...]: ...

    def forward_many(self, op: Any, xs: Sequence[Tensor]) -> Tensor: ...

    def ibp_many(self, op: Any, boxes: Sequence[Tuple[Tensor, Tensor]]) -> Tuple[Tensor, Tensor]: ...

    def backward_many(self, op: Any, A: Tensor) -> Sequence[Tensor]: ...

    def rounding_many(self, op: Any, pres: Sequence[Box], errors: Sequence[Tensor],
                      arith: Arithmetic) -> Tuple[Tensor, Tensor, Tensor]: ...

    def error_backward_many(self, op: Any, center: Tensor, radius: Tensor) -> Sequence[Tuple[Tensor, Tensor]]: ...

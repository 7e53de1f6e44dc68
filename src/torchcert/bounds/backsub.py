"""The one shared back-substitution: push linear coefficients from a layer back to the input.

Coefficients ``A`` have shape ``(S, B, *shape)`` (``S`` specifications/neurons per example); every rule's
``backward`` returns the coefficients on its input and the constant it contributes. For a lower bound
the ReLU rule picks the lower line where ``A >= 0`` and the upper line where ``A < 0``; at the input the
box is concretised as ``A . centre - |A| . radius``, i.e. ``A+ . lower + A- . upper``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from torch import Tensor

from .box import Box
from .layers import Layer
from .rules import relu
from .rules._window import Offset, crop, expand


def relu_positions(layers: Sequence[Layer]) -> List[int]:
    """Indices in ``layers`` of the ReLU layers."""
    return [i for i, layer in enumerate(layers) if layer.rule is relu]


def backsubstitute(layers: Sequence[Layer], A: Tensor, offset: Offset,
                   relaxations: Sequence[relu.Relaxation],
                   preact_terms: Optional[Sequence[Optional[Tensor]]] = None) -> Tuple[Tensor, Tensor, Offset]:
    """Coefficients ``A`` on the output of ``layers`` -> ``(A_in, bias (S, B), offset_in)`` on the input.

    ``relaxations[j]`` is the relaxation of the ``j``-th ReLU in ``layers``; ``preact_terms[j]``, when
    given, is added to the coefficients on that ReLU's input (pre-activation) after relaxing it; the
    coefficients are first written into the whole map (they may cover only the window the later layers
    read). A window that reads nothing of its map (only padding) becomes a zero map, so every rule sees a
    non-empty tensor.
    """
    positions = relu_positions(layers)
    bias = A.new_zeros(A.shape[:2])
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index]
        if layer.rule is relu:
            j = positions.index(index)
            A, b, offset = relu.backward(relaxations[j], A, offset, layer.in_shape)
            if preact_terms is not None and preact_terms[j] is not None:
                A, offset = expand(A, offset, layer.in_shape)
                A = A + preact_terms[j]
        else:
            A, b, offset = layer.rule.backward(layer.op, A, offset, layer.in_shape)
        if A.numel() == 0 and A.shape[0] * A.shape[1] > 0:
            A, offset = expand(A, offset, layer.in_shape)
        bias = bias + b
    return A, bias, offset


def concretize_lower(A: Tensor, bias: Tensor, offset: Offset, box: Box) -> Tensor:
    """Minimum of ``A . x + bias`` over ``box`` (cropped to ``A``'s window): ``(S, B)``."""
    center = crop(box.center, offset, A.shape[2:])
    radius = crop(box.radius, offset, A.shape[2:])
    dims = tuple(range(2, A.dim()))
    return (A * center).sum(dims) - (A.abs() * radius).sum(dims) + bias


def lower_bound(layers: Sequence[Layer], A: Tensor, offset: Offset, box: Box,
                relaxations: Sequence[relu.Relaxation],
                preact_terms: Optional[Sequence[Optional[Tensor]]] = None) -> Tensor:
    """Lower bound ``(S, B)`` of ``A . layers(x)`` over ``box`` by back-substitution."""
    A_in, bias, offset_in = backsubstitute(layers, A, offset, relaxations, preact_terms)
    return concretize_lower(A_in, bias, offset_in, box)

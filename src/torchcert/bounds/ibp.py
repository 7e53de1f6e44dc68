"""Interval bound propagation in centre/radius form.

Affine ``y = W x + b``: ``c' = W c + b``, ``r' = |W| r``; ReLU: ``[relu(c - r), relu(c + r)]``.
With a specification ``C (B, S, K)`` the last Linear layer is merged with it first
(``W' = C W``, ``b' = C b``), which is tighter than bounding the logits and applying ``C`` afterwards.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from torch import Tensor, nn

from .box import Box
from . import dag
from .layers import Layer, build_layers, chain, reads
from .rules import linear, relu


def _merged_spec_step(layer: Layer, C: Tensor, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """Interval step through ``C W`` (``(B, S, in)``) and bias ``C b``."""
    weight = C @ layer.op.weight
    bias = C @ layer.op.bias
    c = (weight @ center.unsqueeze(-1)).squeeze(-1) + bias
    r = (weight.abs() @ radius.unsqueeze(-1)).squeeze(-1)
    return c, r


def _spec_step(C: Tensor, center: Tensor, radius: Tensor) -> Tuple[Tensor, Tensor]:
    """Interval step through ``C`` applied to the (flattened) output."""
    center, radius = center.flatten(1).unsqueeze(-1), radius.flatten(1).unsqueeze(-1)
    return (C @ center).squeeze(-1), (C.abs() @ radius).squeeze(-1)


def propagate(layers: List[Layer], box: Box, C: Optional[Tensor] = None,
              relu_inputs: Optional[List[Box]] = None) -> Box:
    """IBP through ``layers``; appends the pre-activation box of every ReLU to ``relu_inputs``."""
    center, radius = box.center, box.radius
    merge = C is not None and layers and layers[-1].rule is linear
    body = layers[:-1] if merge else layers
    if not chain(layers):  # residual connections: every output kept for its readers
        boxes = dag.ibp_boxes(layers, box, stop=len(body))
        if relu_inputs is not None:
            relu_inputs.extend(dag.input_box(layers, boxes, box, i) for i in dag.relu_layers(body))
        source = reads(layers)[len(body)][0] if merge else len(body) - 1
        center, radius = (box.center, box.radius) if source < 0 else boxes[source]
        body = []
    for layer in body:
        if relu_inputs is not None and layer.rule is relu:
            relu_inputs.append(Box.from_center_radius(center, radius))
        center, radius = layer.rule.ibp(layer.op, center, radius)
    if merge:
        center, radius = _merged_spec_step(layers[-1], C.to(center.dtype), center, radius)
    elif C is not None:
        center, radius = _spec_step(C.to(center.dtype), center, radius)
    return Box.from_center_radius(center, radius)


def _check(model: nn.Module, box: Box, C: Optional[Tensor]) -> None:
    if box.lower.shape != box.upper.shape:
        raise ValueError(f"box bounds differ in shape: {tuple(box.lower.shape)} vs {tuple(box.upper.shape)}")
    if C is not None and (C.dim() != 3 or C.shape[0] != box.lower.shape[0]):
        raise ValueError(f"C must have shape (B, S, K) with B={box.lower.shape[0]}, got {tuple(C.shape)}")


def ibp(model: nn.Module, box: Box, C: Optional[Tensor] = None, bn_stats: Optional[dict] = None) -> Box:
    """IBP bounds of ``model`` over ``box`` (``(B, *in_shape)``): ``(B, K)``, or ``(B, S)`` of ``C f``.

    Train-mode BatchNorm needs ``bn_stats`` from :func:`capture_bn_stats`. Differentiable w.r.t. the
    parameters (and the captured statistics).
    """
    _check(model, box, C)
    layers = build_layers(model, tuple(box.lower.shape[1:]), box.lower.dtype, bn_stats)
    return propagate(layers, box, C)


def ibp_with_relu_inputs(model: nn.Module, box: Box, C: Optional[Tensor] = None,
                         bn_stats: Optional[dict] = None) -> Tuple[Box, List[Box]]:
    """Like :func:`ibp`, also returning the pre-activation box of every ReLU, in order."""
    _check(model, box, C)
    layers = build_layers(model, tuple(box.lower.shape[1:]), box.lower.dtype, bn_stats)
    relu_inputs: List[Box] = []
    out = propagate(layers, box, C, relu_inputs)
    return out, relu_inputs

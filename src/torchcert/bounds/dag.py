"""IBP and CROWN on networks with residual connections: the layer list read as a DAG.

Every layer records the layers it reads (``layers.reads``). IBP evaluates the layers in order, keeping every
output box for the layers that read it. Back-substitution walks the layers in reverse order with a local
``{layer: coefficients}`` map: each layer moves the coefficients on its output to its inputs (a ``Merge``
``a + s b`` sends ``A`` to ``a`` and ``s A`` to ``b``), and coefficients reaching one layer from several readers
are summed (fan-out). Coefficients on feature maps are kept on the whole map (dense rows, no patches): this path
serves correctness on any graph; chains keep the faster patch path of ``intermediate``.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .backsub import concretize_lower
from .box import Box
from .layers import Layer, reads
from .rules import maxpool, relu
from .rules._window import expand

#: coefficients in one tensor of neuron rows (rows x widest map), as the chain path's dense budget
ROW_BUDGET = 4 * 2 ** 20


def ibp_boxes(layers: Sequence[Layer], box: Box, relu_bounds: Optional[Dict[int, Box]] = None,
              stop: Optional[int] = None) -> List[Tuple[Tensor, Tensor]]:
    """``(center, radius)`` of every layer's output up to ``stop`` (exclusive; default all); a ReLU layer's input
    is intersected with ``relu_bounds[index]`` when given."""
    inputs = reads(layers)
    out: List[Tuple[Tensor, Tensor]] = []
    first = (box.center, box.radius)
    for i, layer in enumerate(layers[:stop]):
        args = [first if j < 0 else out[j] for j in inputs[i]]
        if hasattr(layer.rule, "ibp_many"):  # several inputs (Merge, Concat)
            out.append(layer.rule.ibp_many(layer.op, args))
            continue
        c, r = args[0]
        if relu_bounds is not None and i in relu_bounds:
            pre = Box.from_center_radius(c, r).intersect(relu_bounds[i])
            c, r = pre.center, pre.radius
        out.append(layer.rule.ibp(layer.op, c, r))
    return out


def input_box(layers: Sequence[Layer], boxes: Sequence[Tuple[Tensor, Tensor]], box: Box, i: int) -> Box:
    """The box of layer ``i``'s (first) input from :func:`ibp_boxes`."""
    j = reads(layers)[i][0]
    c, r = (box.center, box.radius) if j < 0 else boxes[j]
    return Box.from_center_radius(c, r)


def pool_relaxations(layers: Sequence[Layer], boxes: Sequence[Tuple[Tensor, Tensor]], box: Box
                     ) -> Dict[int, object]:
    """The relaxation of every max-pooling layer that ``boxes`` (from :func:`ibp_boxes`) reach, from the IBP box
    of its input."""
    return {i: maxpool.relaxation(layer.op, input_box(layers, boxes, box, i))
            for i, layer in enumerate(layers[:len(boxes)]) if layer.rule is maxpool}


def backsubstitute(layers: Sequence[Layer], start: int, A: Tensor, relaxations: Dict[int, relu.Relaxation],
                   preact_terms: Optional[Dict[int, Tensor]] = None) -> Tuple[Tensor, Tensor]:
    """Coefficients ``A (S, B, *shape)`` on layer ``start``'s output -> ``(A_in, bias (S, B))`` on the input.
    ``relaxations[i]`` for every ReLU and max-pooling layer ``i`` up to ``start``; ``preact_terms[i]`` is added to the
    coefficients on ReLU ``i``'s input after relaxing it."""
    inputs = reads(layers)
    pending: Dict[int, Tensor] = {start: A}
    bias = A.new_zeros(A.shape[:2])
    for i in range(start, -1, -1):
        if i not in pending and preact_terms is not None and i in preact_terms:  # a ReLU nothing reads
            pending[i] = A.new_zeros(A.shape[:2] + tuple(layers[i].out_shape))
        if i not in pending:
            continue
        layer, coeffs = layers[i], pending.pop(i)
        if hasattr(layer.rule, "backward_many"):
            parts, b = layer.rule.backward_many(layer.op, coeffs), None
        else:
            offset = (0, 0) if len(layer.out_shape) == 3 else None
            if layer.rule is relu:
                moved, b, offset = relu.backward(relaxations[i], coeffs, offset, layer.in_shape)
            elif layer.rule is maxpool:
                moved, b = maxpool.backward_relaxed(layer.op, relaxations[i], coeffs, layer.in_shape)
            else:
                moved, b, offset = layer.rule.backward(layer.op, coeffs, offset, layer.in_shape)
            moved, _ = expand(moved, offset, layer.in_shape)
            if layer.rule is relu and preact_terms is not None and i in preact_terms:
                moved = moved + preact_terms[i]
            parts = [moved]
        if b is not None:
            bias = bias + b
        for j, part in zip(inputs[i], parts):
            pending[j] = pending[j] + part if j in pending else part
    return pending[-1], bias


def relu_layers(layers: Sequence[Layer]) -> List[int]:
    return [i for i, layer in enumerate(layers) if layer.rule is relu]


def layer_bounds(layers: Sequence[Layer], box: Box, intermediate: str, relu_bounds: Optional[Sequence[Box]],
                 select) -> List[Box]:
    """Pre-activation box of every ReLU: IBP from the earlier ReLUs' boxes, and with ``intermediate="crown"``
    a CROWN bound for the neurons ``select(reference)`` marks; intersected with ``relu_bounds``."""
    positions = relu_layers(layers)
    if intermediate == "given":
        return list(relu_bounds)
    found: Dict[int, Box] = {}
    relaxations: Dict[int, object] = {}
    inputs = reads(layers)
    for j, k in enumerate(positions):
        boxes = ibp_boxes(layers, box, found, stop=k)
        pre = input_box(layers, boxes, box, k)
        if intermediate == "crown" and j > 0 and inputs[k][0] >= 0:  # a ReLU on the input: exact box
            with torch.no_grad():
                relaxations.update(pool_relaxations(layers, boxes, box))
                pre = _crown_neurons(layers, inputs[k][0], box, relaxations, pre, select(pre))
        if relu_bounds is not None:
            pre = pre.intersect(relu_bounds[j])
        found[k] = pre
        relaxations[k] = relu.relaxation(pre)
    return [found[k] for k in positions]


def _crown_neurons(layers: Sequence[Layer], node: int, box: Box, relaxations: Dict[int, relu.Relaxation],
                   reference: Box, mask: Tensor) -> Box:
    """CROWN bounds of the neurons of layer ``node``'s output where ``mask``, ``reference`` elsewhere."""
    lower, upper = reference.lower.clone(), reference.upper.clone()
    flat = mask.reshape(mask.shape[0], -1)
    count = int(flat.sum(1).max()) if flat.numel() else 0
    if count == 0:
        return Box(lower, upper)
    shape, batch = tuple(lower.shape[1:]), lower.shape[0]
    order = torch.argsort(flat.to(torch.int8), dim=1, descending=True, stable=True)[:, :count]
    rows = max(1, ROW_BUDGET // (2 * batch * max(math.prod(layer.in_shape) for layer in layers[:node + 1])))
    for first in range(0, count, rows):
        idx = order[:, first:first + rows]
        valid = flat.gather(1, idx)
        s = idx.shape[1]
        unit = torch.zeros(batch, s, math.prod(shape), dtype=lower.dtype, device=lower.device)
        unit.scatter_(2, idx.unsqueeze(-1), valid.unsqueeze(-1).to(lower.dtype))
        unit = unit.transpose(0, 1).reshape((s, batch) + shape)
        A_in, bias = backsubstitute(layers, node, torch.cat([unit, -unit]), relaxations)
        bound = concretize_lower(A_in, bias, None, box)
        for target, values in ((lower, bound[:s]), (upper, -bound[s:])):
            view = target.view(batch, -1)
            view.scatter_(1, idx, torch.where(valid, values.t(), view.gather(1, idx)))
    return Box(lower, upper)


def final_bound(layers: Sequence[Layer], box: Box, A: Tensor, bounds: Sequence[Box],
                lower_slopes: Optional[Sequence[Optional[Tensor]]] = None,
                preact_terms: Optional[Sequence[Optional[Tensor]]] = None) -> Tensor:
    """Lower bound ``(S, B)`` of ``A . f(x)`` (+ split terms) for spec rows ``A (S, B, *out_shape)``."""
    positions = relu_layers(layers)
    slopes = lower_slopes if lower_slopes is not None else [None] * len(positions)
    relaxations: Dict[int, object] = {k: relu.relaxation(b, s) for k, b, s in zip(positions, bounds, slopes)}
    if any(layer.rule is maxpool for layer in layers):
        relaxations.update(pool_relaxations(layers, ibp_boxes(layers, box, dict(zip(positions, bounds))), box))
    terms = None
    if preact_terms is not None:
        terms = {k: t for k, t in zip(positions, preact_terms) if t is not None}
    A_in, bias = backsubstitute(layers, len(layers) - 1, A, relaxations, terms)
    return concretize_lower(A_in, bias, None, box)

"""CROWN and CROWN-IBP: linear relaxation of every ReLU and back-substitution to the input.

Intermediate (pre-ReLU) bounds, layer by layer: a reference box by IBP from the previous ReLU's final
bounds; with ``intermediate="ibp"`` (CROWN-IBP) that box is used, with ``"crown"`` every neuron the
reference cannot prove stable gets a CROWN bound (back-substitution of that neuron), the others keep the
reference box (their relaxation is exact either way; ``neurons="unstable"``, the default). ``neurons="all"``
gives every neuron a CROWN bound (plain dense CROWN: auto_LiRPA with sparse intermediate bounds off);
``neurons="hybrid"`` is auto_LiRPA's default rule: "unstable", but "all" for a layer where more than 90%
of the neurons are unstable by the reference. ``intermediate="given"`` uses ``relu_bounds`` as
they are (e.g. computed once by :func:`crown_relu_bounds` at the root of branch and bound).
External ``relu_bounds`` are intersected with the computed boxes before they are used further.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .backsub import lower_bound, relu_positions
from .box import Box
from .ibp import propagate
from .intermediate import crown_neurons
from . import dag
from .layers import Layer, build_layers, graph_walk
from .rules import relu

INTERMEDIATE = ("crown", "ibp", "given")
NEURONS = ("unstable", "all", "hybrid")


def _reference(layers: Sequence[Layer], start: int, stop: int, box: Box) -> Box:
    """IBP of ``layers[start:stop]`` from ``box``."""
    return propagate(list(layers[start:stop]), box)


def _select(reference: Box, neurons: str) -> Tensor:
    """Mask ``(B, *shape)`` of the neurons that get a CROWN bound."""
    mask = relu.unstable(reference)
    if neurons == "all":
        return torch.ones_like(mask)
    if neurons == "hybrid":
        many = mask.flatten(1).float().mean(1) > 0.9
        return mask | many.view((-1,) + (1,) * (mask.dim() - 1))
    return mask


def _check_options(relu_bounds: Optional[Sequence[Box]], count: int, intermediate: str, neurons: str) -> None:
    if intermediate not in INTERMEDIATE:
        raise ValueError(f"intermediate must be one of {INTERMEDIATE}, got {intermediate!r}")
    if neurons not in NEURONS:
        raise ValueError(f"neurons must be one of {NEURONS}, got {neurons!r}")
    if relu_bounds is not None and len(relu_bounds) != count:
        raise ValueError(f"relu_bounds needs one Box per ReLU ({count}), got {len(relu_bounds)}")
    if intermediate == "given" and relu_bounds is None:
        raise ValueError('intermediate="given" needs relu_bounds (one Box per ReLU)')


def layer_bounds(layers: Sequence[Layer], box: Box, intermediate: str = "crown",
                 relu_bounds: Optional[Sequence[Box]] = None, neurons: str = "unstable",
                 chunk: Optional[int] = None) -> List[Box]:
    """Pre-activation box of every ReLU in ``layers`` (see the module docstring)."""
    positions = relu_positions(layers)
    _check_options(relu_bounds, len(positions), intermediate, neurons)
    if graph_walk(layers):  # residual connections or max pooling: the graph walk (dense rows)
        return dag.layer_bounds(layers, box, intermediate, relu_bounds, lambda pre: _select(pre, neurons))
    if intermediate == "given":
        return list(relu_bounds)
    bounds: List[Box] = []
    relaxations: List[relu.Relaxation] = []
    start, current = 0, box
    for j, k in enumerate(positions):
        pre = _reference(layers, start, k, current)
        if intermediate == "crown" and j > 0:
            with torch.no_grad():
                pre = crown_neurons(layers[:k], box, relaxations, pre, _select(pre, neurons), chunk)
        if relu_bounds is not None:
            pre = pre.intersect(relu_bounds[j])
        bounds.append(pre)
        relaxations.append(relu.relaxation(pre))
        start, current = k, pre
    return bounds


def _spec_rows(C: Tensor, dtype: torch.dtype) -> Tensor:
    """``C (B, S, K) -> (S, B, K)``."""
    return C.to(dtype).transpose(0, 1)


def final_bound(layers: Sequence[Layer], box: Box, C: Tensor, bounds: Sequence[Box],
                lower_slopes: Optional[Sequence[Optional[Tensor]]] = None,
                preact_terms: Optional[Sequence[Optional[Tensor]]] = None) -> Tensor:
    """Lower bound ``(B, S)`` of ``C f(x) + sum_i <preact_terms_i, z_i(x)>`` over ``box``."""
    for what, given in (("lower_slopes", lower_slopes), ("preact_terms", preact_terms)):
        if given is not None and len(given) != len(bounds):
            raise ValueError(f"{what} needs one entry per ReLU ({len(bounds)}), got {len(given)}")
    slopes = lower_slopes if lower_slopes is not None else [None] * len(bounds)
    relaxations = [relu.relaxation(b, s) for b, s in zip(bounds, slopes)]
    if not layers:
        raise ValueError("the model has no layers to bound")
    out_shape = tuple(layers[-1].out_shape)
    A = _spec_rows(C, box.lower.dtype)
    if A.shape[-1] != _numel(out_shape):
        raise ValueError(f"C has {A.shape[-1]} columns but the model has outputs of shape {out_shape}")
    A = A.reshape(A.shape[:2] + out_shape)
    if graph_walk(layers):
        return dag.final_bound(layers, box, A, bounds, lower_slopes, preact_terms).t()
    offset = (0, 0) if len(out_shape) == 3 else None
    return lower_bound(layers, A, offset, box, relaxations, preact_terms).t()


def _numel(shape: Tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def crown_relu_bounds(model: nn.Module, box: Box, intermediate: str = "crown",
                      relu_bounds: Optional[Sequence[Box]] = None, bn_stats: Optional[dict] = None,
                      neurons: str = "unstable", chunk: Optional[int] = None) -> List[Box]:
    """Pre-activation bounds ``(B, *shape)`` of every ReLU of ``model`` over ``box``, in order."""
    layers = build_layers(model, tuple(box.lower.shape[1:]), box.lower.dtype, bn_stats)
    return layer_bounds(layers, box, intermediate, relu_bounds, neurons, chunk)


def crown(model: nn.Module, box: Box, C: Tensor, intermediate: str = "crown",
          relu_bounds: Optional[Sequence[Box]] = None,
          lower_slopes: Optional[Sequence[Optional[Tensor]]] = None,
          preact_terms: Optional[Sequence[Optional[Tensor]]] = None,
          bn_stats: Optional[dict] = None, bound_upper: bool = False, neurons: str = "unstable",
          chunk: Optional[int] = None) -> Box:
    """CROWN (``intermediate="crown"``) or CROWN-IBP (``"ibp"``) bounds on ``C f(x)``: ``(B, S)``.

    ``C``: ``(B, S, K)``. ``relu_bounds``: one Box ``(B, *shape)`` per ReLU, intersected with the computed
    pre-activation bounds (a split neuron: ``lower = 0`` for active, ``upper = 0`` for inactive); with
    ``intermediate="given"`` they are the bounds. ``lower_slopes``: one tensor per ReLU (or None),
    broadcastable to ``(S, B, *shape)``, values in [0, 1], replacing the adaptive lower slope of the
    unstable neurons in the final back-substitution (alpha-CROWN). ``preact_terms``: one tensor per ReLU
    (or None) broadcastable to ``(S, B, *shape)``, added to the back-substituted coefficient of that ReLU's
    pre-activation ``z_i``: the lower bound is then of ``C f(x) + sum_i <preact_terms_i, z_i(x)>``
    (beta-CROWN split multipliers). The lower bound is differentiable w.r.t. the parameters, the slopes
    and the terms (CROWN intermediate bounds are computed without gradient). The upper bound (CROWN of
    ``-C f``, adaptive slopes, no terms) is computed only if ``bound_upper``; otherwise it is ``+inf``.
    """
    layers = build_layers(model, tuple(box.lower.shape[1:]), box.lower.dtype, bn_stats)
    bounds = layer_bounds(layers, box, intermediate, relu_bounds, neurons, chunk)
    lower = final_bound(layers, box, C, bounds, lower_slopes, preact_terms)
    upper = -final_bound(layers, box, -C, bounds) if bound_upper else torch.full_like(lower, float("inf"))
    return Box(lower, upper)

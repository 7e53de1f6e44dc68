"""alpha-CROWN: optimise the lower ReLU slopes of the final back-substitution.

Every lower line ``relu(z) >= a z`` with ``a`` in [0, 1] is valid for an unstable neuron, so the CROWN
bound with any such slopes is sound. Starting from the adaptive slopes (so the first iterate is CROWN),
projected Adam ascends the sum of the lower bounds; per specification and example the best bound over
all iterates is returned (never worse than CROWN). Intermediate bounds are computed once and kept fixed.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from .box import Box
from .crown import final_bound, layer_bounds
from .layers import build_layers
from .rules import relu


def _initial_slopes(bounds: Sequence[Box], specs: int) -> List[Tensor]:
    """Adaptive lower slopes, one ``(S, B, *shape)`` leaf tensor per ReLU."""
    slopes = []
    for b in bounds:
        adaptive = relu.relaxation(b).lower_slope.detach()
        slopes.append(adaptive.unsqueeze(0).repeat((specs,) + (1,) * adaptive.dim()).requires_grad_())
    return slopes


def alpha_crown(model: nn.Module, box: Box, C: Tensor, iterations: int = 20, lr: float = 0.1,
                relu_bounds: Optional[Sequence[Box]] = None,
                preact_terms: Optional[Sequence[Optional[Tensor]]] = None,
                bn_stats: Optional[dict] = None, intermediate: str = "crown",
                neurons: str = "unstable") -> Box:
    """alpha-CROWN lower bounds of ``C f(x)`` (``C (B, S, K)``) over ``box``: Box with ``lower (B, S)``
    and ``upper = +inf``. ``relu_bounds``/``preact_terms``/``intermediate``/``neurons`` as in
    :func:`torchcert.bounds.crown`. Model parameters receive no gradient.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    layers = build_layers(model, tuple(box.lower.shape[1:]), box.lower.dtype, bn_stats)
    with torch.no_grad():
        bounds = layer_bounds(layers, box, intermediate, relu_bounds, neurons)
    bounds = [Box(b.lower.detach(), b.upper.detach()) for b in bounds]
    slopes = _initial_slopes(bounds, C.shape[1])
    if not slopes:  # no ReLU: the network is affine and CROWN is exact
        with torch.no_grad():
            lower = final_bound(layers, box, C, bounds, None, preact_terms)
        return Box(lower, torch.full_like(lower, float("inf")))
    optimizer = torch.optim.Adam(slopes, lr=lr)
    best = None
    for step in range(iterations + 1):
        with torch.enable_grad():
            lower = final_bound(layers, box, C, bounds, slopes, preact_terms)
            objective = -lower.sum()
        best = lower.detach() if best is None else torch.maximum(best, lower.detach())
        if step == iterations or not objective.requires_grad:
            break
        grads = torch.autograd.grad(objective, slopes, allow_unused=True)
        for slope, grad in zip(slopes, grads):
            slope.grad = grad
        optimizer.step()
        with torch.no_grad():
            for slope in slopes:
                slope.clamp_(0.0, 1.0)
    return Box(best, torch.full_like(best, float("inf")))

"""Searching for counterexamples inside the box: the smallest margin ``min_j (C f(x))_j`` found at concrete points.

Used by branch and bound (starting from the minimisers of the domains' linear bounds, and from random points)
to falsify early; the verdict always comes from a plain forward pass at the returned point.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from .verdict import spec_values


def min_margins(model: nn.Module, x: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """``min_j (C f(x))_j`` for each point: x (N, *in), C (1, M, K) -> (N,) float64, by a plain forward pass
    (the spec applied in float64 to the network's logits, so a margin's sign is the network's comparison)."""
    with torch.no_grad():
        logits = model(x)
    return spec_values(logits, C).min(dim=1).values


def random_points(lower: torch.Tensor, upper: torch.Tensor, count: int,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``count`` uniform points of the box (1, *in) -> (count, *in)."""
    u = torch.rand((count, *lower.shape[1:]), generator=generator, dtype=lower.dtype, device="cpu").to(lower.device)
    return lower + u * (upper - lower)


def margin_pgd(model: nn.Module, start: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, C: torch.Tensor,
               steps: int = 20, step_size: float = 0.1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Signed-gradient descent on the minimum margin from each start point, projected on the box.

    start (N, *in); the step is ``step_size·(upper - lower)/2`` per coordinate, as in the original PGD.
    Returns the best point of every run (N, *in) and its margin (N,).
    """
    scale = step_size * (upper - lower) / 2
    x = start.detach().clone()
    best_x, best = x.clone(), min_margins(model, x, C)
    for _ in range(steps):
        x.requires_grad_(True)
        with torch.enable_grad():
            logits = model(x)
            value = torch.einsum("mk,nk->nm", C[0].to(logits.dtype), logits).min(dim=1).values
            grad = torch.autograd.grad(value.sum(), x)[0]
        with torch.no_grad():
            exact = spec_values(logits, C).min(dim=1).values
            better = exact < best
            best = torch.where(better, exact, best)
            best_x[better] = x.detach()[better]
            x = torch.max(torch.min(x.detach() - scale * grad.sign(), upper), lower)
    final = min_margins(model, x, C)
    better = final < best
    best_x[better] = x[better]
    return best_x, torch.where(better, final, best)

"""Bounding a batch of branch-and-bound domains: α-CROWN with β multipliers for the split constraints.

For a domain with split signs ``s`` (one per neuron, 0 where unsplit) and multipliers ``β >= 0``, every x of the
domain satisfies ``s·z(x) >= 0``, so ``C f(x) >= C f(x) - Σ_i β_i s_i z_i(x)`` there; CROWN bounds the right-hand
side from below over the relaxation (``preact_terms = -β·s``). Both the lower ReLU slopes α ∈ [0, 1] and β are
free, so they are improved jointly by projected gradient ascent (Adam), and the best bound of every spec over the
iterations is kept (each iterate is a valid bound).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from torchcert import bounds
from torchcert.bounds import Box

from .domains import NeuronIndex, split_relu_bounds, split_signs


@dataclass(frozen=True)
class OptimSettings:
    """Gradient steps per bounding call and Adam learning rates of α (slopes) and β (split multipliers)."""

    iterations: int = 20
    lr_alpha: float = 0.1
    lr_beta: float = 0.05


def initial_alphas(relu_bounds: Sequence[Box], num_specs: int) -> List[torch.Tensor]:
    """CROWN's adaptive lower slope (1 where u >= -l, else 0) per ReLU, shaped (1, M, *shape_i)."""
    return [(b.upper >= -b.lower).to(b.lower.dtype).unsqueeze(1).expand(-1, num_specs, *b.lower.shape[1:]).clone()
            for b in relu_bounds]


def expand_box(box: Box, count: int) -> Box:
    """The same input box repeated for ``count`` domains: (1, *in) -> (count, *in)."""
    return Box(box.lower.expand(count, *box.lower.shape[1:]), box.upper.expand(count, *box.upper.shape[1:]))


def domain_bound(model: nn.Module, box: Box, C: torch.Tensor, relu_bounds: Sequence[Box],
                 alphas: Sequence[torch.Tensor], betas: Optional[Sequence[torch.Tensor]] = None,
                 signs: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """Lower bounds (D, M) of ``C f`` on each domain, with the given pre-activation bounds (not recomputed).

    box (D, *in); C (D, M, K); relu_bounds Box (D, *shape_i); alphas/betas (D, M, *shape_i); signs
    (D, 1, *shape_i). ``bounds.crown`` takes slopes and terms spec-first, (M, D, *shape_i).
    """
    terms = None
    if betas is not None:
        terms = [(-b * s).transpose(0, 1) for b, s in zip(betas, signs)]
    slopes = [a.transpose(0, 1) for a in alphas]
    out = bounds.crown(model, box, C, intermediate="given", relu_bounds=list(relu_bounds), lower_slopes=slopes,
                       preact_terms=terms)
    return out.lower


def optimise_domains(model: nn.Module, box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
                     splits: torch.Tensor, alpha_init: Sequence[torch.Tensor], settings: OptimSettings,
                     floor: Optional[torch.Tensor] = None,
                     deadline: Optional[float] = None) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """Best lower bounds (D, M) over ``settings.iterations`` projected-gradient steps, and the final alphas.

    box: (1, *in); C: (1, M, K); splits (D, U) int8; alpha_init per ReLU (1 or D, M, *shape_i);
    floor (D, M): bounds already known (e.g. the parent's), kept when better. Stops early once all are > 0, or
    once ``time.perf_counter()`` passes ``deadline`` (after the first bound: every iterate is a valid bound).
    """
    count, dtype = splits.shape[0], box.lower.dtype
    boxes, specs = expand_box(box, count), C.expand(count, *C.shape[1:])
    relu_bounds = [Box(b.lower.detach(), b.upper.detach()) for b in split_relu_bounds(root, index, splits)]
    signs = split_signs(index, splits, dtype)
    alphas = [a.detach().expand(count, *a.shape[1:]).clone().requires_grad_(True) for a in alpha_init]
    betas = [torch.zeros(count, C.shape[1], *s.shape[2:], dtype=dtype, device=s.device).requires_grad_(True)
             for s in signs]
    has_split = [bool(s.any()) for s in signs]
    if not alphas:  # no ReLU: the network is affine, its CROWN bound is exact
        with torch.no_grad():
            lower = domain_bound(model, boxes, specs, relu_bounds, alphas, betas, signs)
        return (lower if floor is None else torch.maximum(floor, lower)), []
    params = [{"params": alphas, "lr": settings.lr_alpha}]
    if any(has_split):
        params.append({"params": [b for b, h in zip(betas, has_split) if h], "lr": settings.lr_beta})
    optimiser = torch.optim.Adam(params)
    best = floor.clone() if floor is not None else None
    for step in range(max(settings.iterations, 1)):
        lower = domain_bound(model, boxes, specs, relu_bounds, alphas, betas, signs)
        best = lower.detach() if best is None else torch.maximum(best, lower.detach())
        if step == settings.iterations - 1 or bool((best > 0).all()):
            break
        if deadline is not None and time.perf_counter() > deadline:
            break
        optimiser.zero_grad()
        (-lower.sum()).backward()
        optimiser.step()
        with torch.no_grad():
            for a in alphas:
                a.clamp_(0.0, 1.0)
            for b in betas:
                b.clamp_(min=0.0)
    return best, [a.detach() for a in alphas]


def bound_minimisers(model: nn.Module, box: Box, C: torch.Tensor, relu_bounds: Sequence[Box],
                     alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """Input points (D, *in) minimising the linear lower bound of each domain's worst spec.

    The CROWN bound over a box is ``Σ A⁺·lower + A⁻·upper + b``, so its gradient with respect to ``lower``
    (``upper``) is ``A⁺`` (``A⁻``); the minimiser sits at ``lower`` where A > 0 and at ``upper`` where A < 0.
    These are promising starting points for an attack (beta-CROWN's trick).
    """
    count = relu_bounds[0].lower.shape[0] if relu_bounds else 1
    low = box.lower.detach().expand(count, *box.lower.shape[1:]).clone().requires_grad_(True)
    up = box.upper.detach().expand(count, *box.upper.shape[1:]).clone().requires_grad_(True)
    with torch.enable_grad():
        lower = domain_bound(model, Box(low, up), C.expand(count, *C.shape[1:]), relu_bounds, alphas)
        worst = lower.min(dim=1).values.sum()
        g_low, g_up = torch.autograd.grad(worst, [low, up], allow_unused=True)
    mid = (low + up).detach() / 2
    if g_low is None or g_up is None:
        return mid
    point = torch.where(g_low > 0, low.detach(), mid)
    return torch.where(g_up < 0, up.detach(), point)

"""Choosing which unstable ReLU to split: a sensitivity score filtered by actually bounding the children (FSB).

1. Score every unsplit root-unstable neuron of every domain by how much the CROWN lower bound of the domain's
   worst spec reacts to its pre-activation bounds, ``|∂lb/∂l|·|l| + |∂lb/∂u|·u`` (a first-order estimate of the
   gain of setting ``l`` or ``u`` to 0, which is what a split does), plus a small BaBSR-like tie-break by the
   height of the triangle relaxation ``-l·u/(u - l)``.
2. Keep the ``k`` best candidates per domain, bound both children of each with CROWN (one batched call), and
   pick the candidate whose worse child has the highest bound (filtered smart branching).

Heuristics are chosen by name from :data:`BRANCHING` (``fsb``, the default; ``sensitivity``: step 1 alone;
``widest``: the tallest triangle relaxation).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import torch
from torch import nn

from torchcert.bounds import Box

from .domain_bounds import domain_bound, expand_box
from .domains import NeuronIndex, children, flat_bounds, split_relu_bounds


def _sensitivity(model: nn.Module, box: Box, C: torch.Tensor, relu_bounds: Sequence[Box],
                 alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """``|∂lb/∂l|·|l| + |∂lb/∂u|·|u|`` per neuron, (D, total); zeros if the bounds are not differentiable."""
    lows = [b.lower.detach().clone().requires_grad_(True) for b in relu_bounds]
    ups = [b.upper.detach().clone().requires_grad_(True) for b in relu_bounds]
    count = lows[0].shape[0]
    with torch.enable_grad():
        lower = domain_bound(model, expand_box(box, count), C.expand(count, *C.shape[1:]),
                             [Box(lo, up) for lo, up in zip(lows, ups)], alphas)
        grads = torch.autograd.grad(lower.min(dim=1).values.sum(), lows + ups, allow_unused=True)
    low, up = flat_bounds(relu_bounds)
    score = torch.zeros_like(low)
    g_low = [torch.zeros_like(t) if g is None else g for g, t in zip(grads[:len(lows)], lows)]
    g_up = [torch.zeros_like(t) if g is None else g for g, t in zip(grads[len(lows):], ups)]
    score = score + torch.cat([g.flatten(1) for g in g_low], 1).abs() * low.abs()
    return score + torch.cat([g.flatten(1) for g in g_up], 1).abs() * up.abs()


def neuron_scores(model: nn.Module, box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
                  splits: torch.Tensor, alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """Scores (D, U) of the root-unstable neurons; ``-inf`` for neurons already split in the domain."""
    relu_bounds = split_relu_bounds(root, index, splits)
    low, up = flat_bounds(relu_bounds)
    low, up = low[:, index.unstable], up[:, index.unstable]
    height = (-low * up / (up - low).clamp(min=1e-12)).clamp(min=0)
    sens = _sensitivity(model, box, C, relu_bounds, alphas)[:, index.unstable]
    score = sens + 1e-4 * height
    return score.masked_fill(splits != 0, float("-inf"))


def choose_neurons(model: nn.Module, box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
                   splits: torch.Tensor, alphas: Sequence[torch.Tensor], candidates: int = 3) -> torch.Tensor:
    """Position in [0, U) of the neuron to split in each domain, (D,). Every domain must have an unsplit one."""
    score = neuron_scores(model, box, C, root, index, splits, alphas)
    k = max(1, min(candidates, int((splits == 0).sum(dim=1).min())))
    top = torch.topk(score, k, dim=1).indices  # (D, k)
    if k == 1:
        return top[:, 0]
    count = splits.shape[0]
    parents = splits.repeat_interleave(k, dim=0)  # (D*k, U), candidate j of domain d at row d*k + j
    kids = children(parents, top.flatten())        # (2*D*k, U)
    kid_alphas = _repeat(alphas, 2 * k, count)
    lower = domain_bound(model, expand_box(box, kids.shape[0]), C.expand(kids.shape[0], *C.shape[1:]),
                         split_relu_bounds(root, index, kids), kid_alphas)
    worst = lower.min(dim=1).values.view(2, count, k).min(dim=0).values  # (D, k)
    worst = torch.nan_to_num(worst, nan=float("-inf"))
    return top.gather(1, worst.argmax(dim=1, keepdim=True)).squeeze(1)


def _repeat(alphas: Sequence[torch.Tensor], times: int, count: int) -> List[torch.Tensor]:
    """Alphas of D domains (D or 1, M, ...) repeated for the 2k children layout (2, D, k) flattened."""
    out = []
    for a in alphas:
        a = a.expand(count, *a.shape[1:])
        per_domain = a.repeat_interleave(times // 2, dim=0)  # (D*k, ...)
        out.append(torch.cat([per_domain, per_domain], dim=0))
    return out


def choose_by_sensitivity(model: nn.Module, box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
                          splits: torch.Tensor, alphas: Sequence[torch.Tensor], candidates: int = 3) -> torch.Tensor:
    """The best-scored neuron of :func:`neuron_scores` in each domain, without bounding its children (D,)."""
    return neuron_scores(model, box, C, root, index, splits, alphas).argmax(dim=1)


def choose_widest(model: nn.Module, box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
                  splits: torch.Tensor, alphas: Sequence[torch.Tensor], candidates: int = 3) -> torch.Tensor:
    """The unsplit neuron whose triangle relaxation is tallest, ``-l·u/(u - l)`` (BaBSR's intercept term, no
    gradients): (D,)."""
    low, up = flat_bounds(split_relu_bounds(root, index, splits))
    low, up = low[:, index.unstable], up[:, index.unstable]
    height = (-low * up / (up - low).clamp(min=1e-12)).clamp(min=0)
    return height.masked_fill(splits != 0, float("-inf")).argmax(dim=1)


#: branching heuristics by name (``BabSettings.branching``); each maps the open domains to one neuron each
BRANCHING: Dict[str, Callable[..., torch.Tensor]] = {
    "fsb": choose_neurons, "sensitivity": choose_by_sensitivity, "widest": choose_widest,
}


def get_branching(name: str) -> Callable[..., torch.Tensor]:
    """The heuristic called ``name``; ValueError listing the valid names."""
    if name not in BRANCHING:
        raise ValueError(f"unknown branching heuristic {name!r}; valid: {', '.join(sorted(BRANCHING))}")
    return BRANCHING[name]

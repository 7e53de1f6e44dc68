"""Exact solution of a fully split domain by linear programming (float64, HiGHS).

When every root-unstable ReLU of a domain is split, each ReLU has a fixed phase on the domain (active: identity,
inactive: zero), so the network restricted to the domain is affine, ``f(x) = G x + g``, and so are the split
pre-activations ``z(x) = J x + c``. The minimum of spec j over the domain is then the LP

    min_x  C_j (G x + g)   s.t.  lower <= x <= upper,   s_i (J_i x + c_i) >= 0  for each split neuron i,

which is exact (and infeasible when the domain is empty).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from torchcert.bounds import Box

from .domains import NeuronIndex, dense_signs, flat_bounds


@dataclass(frozen=True)
class LeafSolution:
    """Exact minimum over the domain of the worst spec (``inf`` when empty) and a minimiser (1, *in) or None."""

    value: float
    point: Optional[torch.Tensor]


def float64_copy(model: nn.Module) -> nn.Module:
    """A float64 deep copy of ``model`` in eval mode, for exact affine maps."""
    return copy.deepcopy(model).to(torch.float64).eval()


def _masked_forward(model: nn.Module, x: torch.Tensor, masks: Sequence[torch.Tensor]) -> tuple:
    """Forward pass with ReLU i replaced by multiplication with ``masks[i]``; returns (output, [pre-activations])."""
    pre: List[torch.Tensor] = []
    for layer in model:
        if isinstance(layer, nn.ReLU):
            pre.append(x.flatten(1))
            x = x * masks[len(pre) - 1]
        else:
            x = layer(x)
    return x, pre


def _phase_masks(root: Sequence[Box], index: NeuronIndex, split_row: torch.Tensor) -> List[torch.Tensor]:
    """Per ReLU a 0/1 float64 mask (1, *shape): active if l >= 0 or split active, else 0."""
    low, _ = flat_bounds(root)
    signs = dense_signs(index, split_row.view(1, -1))
    active = ((low >= 0) | (signs > 0)).to(torch.float64)
    return [active[:, start:start + int(np.prod(shape))].view(1, *shape)
            for shape, start in zip(index.shapes, index.offsets)]


def solve_leaf(model64: nn.Module, box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
               split_row: torch.Tensor) -> LeafSolution:
    """Exact min over specs of ``C f`` on a fully split domain; ``model64`` from :func:`float64_copy`.

    box: (1, *in); C: (1, M, K); split_row (U,) int8 with no zero entry.
    """
    from scipy.optimize import linprog

    low = box.lower.detach().to(torch.float64).cpu()
    up = box.upper.detach().to(torch.float64).cpu()
    n = low.numel()
    basis = torch.cat([torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)]).view(n + 1, *low.shape[1:])
    masks = [m.cpu() for m in _phase_masks(root, index, split_row)]
    with torch.no_grad():
        out, pre = _masked_forward(model64.cpu(), basis, masks)
    spec = C[0].detach().to(torch.float64).cpu()
    margins = out @ spec.T                                     # (n+1, M)
    G, g = (margins[1:] - margins[:1]).T.numpy(), margins[0].numpy()
    z = torch.cat(pre, dim=1)[:, index.unstable]               # (n+1, U)
    J, c = (z[1:] - z[:1]).T.numpy(), z[0].numpy()
    s = split_row.to(torch.float64).cpu().numpy()
    A_ub, b_ub = -s[:, None] * J, s * c                        # s (J x + c) >= 0
    var_bounds = np.stack([low.flatten().numpy(), up.flatten().numpy()], axis=1)
    best = LeafSolution(float("inf"), None)
    for j in range(G.shape[0]):
        res = linprog(G[j], A_ub=A_ub if len(s) else None, b_ub=b_ub if len(s) else None,
                      bounds=var_bounds, method="highs")
        if res.status == 2:                                    # infeasible: the domain is empty
            return LeafSolution(float("inf"), None)
        if res.status != 0:
            raise RuntimeError(f"LP solver failed on a fully split domain: {res.message}")
        value = float(res.fun + g[j])
        if value < best.value:
            point = torch.from_numpy(np.clip(res.x, var_bounds[:, 0], var_bounds[:, 1])).view_as(low)
            best = LeafSolution(value, point)
    return best

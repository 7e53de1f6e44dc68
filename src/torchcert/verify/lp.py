"""Exact solution of a fully split domain by linear programming (float64, HiGHS).

When every root-unstable ReLU of a domain is split, each ReLU has a fixed phase on the domain (active: identity,
inactive: zero), so the network restricted to the domain is affine, ``f(x) = G x + g``, and so are the split
pre-activations ``z(x) = J x + c``. The minimum of spec j over the domain is then the LP

    min_x  C_j (G x + g)   s.t.  lower <= x <= upper,   s_i (J_i x + c_i) >= 0  for each split neuron i,

which is exact (and infeasible when the domain is empty). The affine pieces come from the bound engine's own layer
list (``torchcert.bounds.layers``, nested containers flattened, BatchNorm folded), built once in float64: the
network is not walked a second way. The reported value is not the solver's objective but the bound the solver's
dual multipliers prove: for any ``lambda >= 0``, ``min_box (G_j + lambda^T A) x - lambda^T b + g_j`` is a lower
bound of the LP, evaluated here in float64, so solver tolerances cannot make a leaf look better than it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from torchcert.bounds import Box
from torchcert.bounds.layers import Layer, build_layers, forward
from torchcert.bounds.rules import maxpool

from .domains import NeuronIndex, dense_signs, flat_bounds


@dataclass(frozen=True)
class LeafSolution:
    """Proved minimum over the domain of the worst spec (``inf`` when proved empty, ``-inf`` when the solver could
    not decide) and a minimiser (1, *in) or None."""

    value: float
    point: Optional[torch.Tensor]


def leaf_layers(model: nn.Module, box: Box) -> List[Layer]:
    """The bound engine's layers of ``model`` (eval mode) in float64, for inputs shaped like ``box``. ValueError
    if a layer other than a ReLU is not affine (max pooling: branch and bound uses its ReLU form), since a leaf
    with every ReLU fixed is solved as an affine function of the input."""
    layers = build_layers(model, tuple(box.lower.shape[1:]), torch.float64)
    nonlinear = [layer.name for layer in layers if layer.rule is maxpool]
    if nonlinear:
        raise ValueError(f"exact leaves need ReLUs as the only nonlinearity; found max pooling {nonlinear}")
    return layers


def _masked_forward(layers: Sequence[Layer], x: torch.Tensor, masks: Sequence[torch.Tensor]) -> tuple:
    """Forward pass through ``layers`` (residual connections included) with ReLU i replaced by multiplication
    with ``masks[i]``; returns (output, [flattened pre-activations])."""
    pre: List[torch.Tensor] = []

    def fixed_phase(j: int, z: torch.Tensor) -> torch.Tensor:
        pre.append(z.flatten(1))
        return z * masks[j]

    return forward(layers, x, fixed_phase), pre


def _phase_masks(root: Sequence[Box], index: NeuronIndex, split_row: torch.Tensor) -> List[torch.Tensor]:
    """Per ReLU a 0/1 float64 mask (1, *shape): active if l >= 0 or split active, else 0."""
    if not root:
        return []
    low, _ = flat_bounds(root)
    signs = dense_signs(index, split_row.view(1, -1))
    active = ((low >= 0) | (signs > 0)).to(torch.float64)
    return [active[:, start:start + int(np.prod(shape))].view(1, *shape)
            for shape, start in zip(index.shapes, index.offsets)]


def _dual_bound(cost: np.ndarray, A_ub: np.ndarray, b_ub: np.ndarray, var_bounds: np.ndarray,
                marginals: Optional[np.ndarray]) -> float:
    """``min_box (cost + lambda^T A_ub) x - lambda^T b_ub`` with ``lambda = max(-marginals, 0)``: a lower bound
    of ``min cost^T x`` s.t. ``A_ub x <= b_ub``, x in the box, valid for any ``lambda >= 0``."""
    lam = np.zeros(len(b_ub)) if marginals is None else np.maximum(-np.asarray(marginals), 0.0)
    reduced = cost + lam @ A_ub if len(b_ub) else cost
    box_min = np.where(reduced > 0, reduced * var_bounds[:, 0], reduced * var_bounds[:, 1]).sum()
    return float(box_min - (lam @ b_ub if len(b_ub) else 0.0))


def _proven_empty(A_ub: np.ndarray, b_ub: np.ndarray, var_bounds: np.ndarray) -> bool:
    """True when ``{x in box : A_ub x <= b_ub}`` is empty, proved by the dual bound of the phase-one LP
    ``min t`` s.t. ``A_ub x - t <= b_ub``, ``0 <= t <= T`` (T: the largest violation over the box) being > 0."""
    from scipy.optimize import linprog

    lo = np.where(A_ub > 0, A_ub * var_bounds[:, 0], A_ub * var_bounds[:, 1]).sum(1)
    hi = np.where(A_ub > 0, A_ub * var_bounds[:, 1], A_ub * var_bounds[:, 0]).sum(1)
    top = float(np.max(np.maximum(hi - b_ub, 0.0))) + 1.0
    if float(np.max(lo - b_ub)) > 0:  # one constraint alone fails everywhere in the box
        return True
    A = np.hstack([A_ub, -np.ones((len(b_ub), 1))])
    bounds = np.vstack([var_bounds, [[0.0, top]]])
    cost = np.zeros(A.shape[1])
    cost[-1] = 1.0
    res = linprog(cost, A_ub=A, b_ub=b_ub, bounds=bounds, method="highs")
    return res.status == 0 and _dual_bound(cost, A, b_ub, bounds, res.ineqlin.marginals) > 0


def solve_leaf(layers: Sequence[Layer], box: Box, C: torch.Tensor, root: Sequence[Box], index: NeuronIndex,
               split_row: torch.Tensor) -> LeafSolution:
    """Exact min over specs of ``C f`` on a fully split domain; ``layers`` from :func:`leaf_layers`.

    box: (1, *in); C: (1, M, K); split_row (U,) int8 with no zero entry.
    """
    from scipy.optimize import linprog

    low = box.lower.detach().to(torch.float64).cpu()
    up = box.upper.detach().to(torch.float64).cpu()
    n = low.numel()
    device = box.lower.device
    on_cpu = dict(dtype=torch.float64, device="cpu")  # explicit: the LP is solved on the CPU whatever the default
    basis = torch.cat([torch.zeros(1, n, **on_cpu), torch.eye(n, **on_cpu)])
    masks = [m.to(device, torch.float64) for m in _phase_masks(root, index, split_row)]
    with torch.no_grad():
        out, pre = _masked_forward(layers, basis.view(n + 1, *low.shape[1:]).to(device), masks)
    out, pre = out.cpu(), [p.cpu() for p in pre]
    spec = C[0].detach().to(torch.float64).cpu()
    margins = out.flatten(1) @ spec.T                          # (n+1, M)
    G, g = (margins[1:] - margins[:1]).T.numpy(), margins[0].numpy()
    z = torch.cat(pre, dim=1)[:, index.unstable.cpu()] if pre else torch.zeros(n + 1, 0, **on_cpu)
    J, c = (z[1:] - z[:1]).T.numpy(), z[0].numpy()
    s = split_row.to(torch.float64).cpu().numpy()
    A_ub, b_ub = -s[:, None] * J, s * c                        # s (J x + c) >= 0
    var_bounds = np.stack([low.flatten().numpy(), up.flatten().numpy()], axis=1)
    best = LeafSolution(float("inf"), None)
    for j in range(G.shape[0]):
        res = linprog(G[j], A_ub=A_ub if len(s) else None, b_ub=b_ub if len(s) else None,
                      bounds=var_bounds, method="highs")
        if res.status == 2:                                    # infeasible: the domain is empty, if proved so
            if _proven_empty(A_ub, b_ub, var_bounds):
                return LeafSolution(float("inf"), None)
            slack = 1e-6 * (1.0 + np.abs(b_ub))                 # else a slightly larger domain: a lower bound
            res = linprog(G[j], A_ub=A_ub, b_ub=b_ub + slack, bounds=var_bounds, method="highs")
            if res.status == 0:
                value = _dual_bound(G[j], A_ub, b_ub + slack, var_bounds, res.ineqlin.marginals) + float(g[j])
                best = min(best, LeafSolution(value, None), key=lambda leaf: leaf.value)
                continue
        if res.status != 0:  # the solver could not decide: the leaf stays open (the search ends "unknown")
            return LeafSolution(-float("inf"), None)
        marginals = res.ineqlin.marginals if len(s) else None
        value = _dual_bound(G[j], A_ub, b_ub, var_bounds, marginals) + float(g[j])
        if value < best.value:
            point = torch.from_numpy(np.clip(res.x, var_bounds[:, 0], var_bounds[:, 1])).view_as(low)
            best = LeafSolution(value, point)
    return best

"""Exact minimum margin of a small ReLU MLP over a box by mixed-integer programming (test oracle).

Big-M formulation with interval bounds ``l <= z <= u`` per neuron: ``a >= z, a >= 0, a <= z - l (1 - d),
a <= u d`` with binary ``d`` (valid for stable neurons too), solved by HiGHS in float64, one MILP per margin.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn


def _affine_layers(model: nn.Sequential) -> List[Tuple[np.ndarray, np.ndarray]]:
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
            for m in model if isinstance(m, nn.Linear)]


def _intervals(layers, low: np.ndarray, up: np.ndarray):
    """Interval pre-activation bounds of every hidden layer."""
    out = []
    for W, b in layers[:-1]:
        c, r = (up + low) / 2, (up - low) / 2
        zc, zr = W @ c + b, np.abs(W) @ r
        out.append((zc - zr - 1e-9, zc + zr + 1e-9))
        low, up = np.maximum(zc - zr, 0), np.maximum(zc + zr, 0)
    return out


def exact_min_margin(model: nn.Sequential, low: torch.Tensor, up: torch.Tensor, C: torch.Tensor) -> float:
    """min over x in [low, up] (flat (n,)) of min_j (C f(x))_j for an MLP Linear-ReLU-...-Linear."""
    layers = _affine_layers(model)
    low_np, up_np = low.double().flatten().numpy(), up.double().flatten().numpy()
    pre = _intervals(layers, low_np, up_np)
    n = low_np.size
    sizes = [W.shape[0] for W, _ in layers[:-1]]
    # variable layout: x | for each hidden layer: z, a, d
    offs, start = [], n
    for h in sizes:
        offs.append(start)
        start += 3 * h
    nvar = start
    lb, ub = np.full(nvar, -np.inf), np.full(nvar, np.inf)
    lb[:n], ub[:n] = low_np, up_np
    integ = np.zeros(nvar)
    rows, lo_c, hi_c = [], [], []

    def add(row, lo, hi):
        rows.append(row); lo_c.append(lo); hi_c.append(hi)

    prev = slice(0, n)
    for k, ((W, b), (l, u), h) in enumerate(zip(layers[:-1], pre, sizes)):
        z, a, d = offs[k], offs[k] + h, offs[k] + 2 * h
        lb[z:z + h], ub[z:z + h] = l, u
        lb[a:a + h], ub[a:a + h] = 0, np.maximum(u, 0)
        lb[d:d + h], ub[d:d + h], integ[d:d + h] = 0, 1, 1
        for i in range(h):
            row = np.zeros(nvar); row[z + i] = 1; row[prev] = -W[i]; add(row, b[i], b[i])
            row = np.zeros(nvar); row[a + i] = 1; row[z + i] = -1; add(row, 0, np.inf)
            row = np.zeros(nvar); row[a + i] = 1; row[z + i] = -1; row[d + i] = -l[i]; add(row, -np.inf, -l[i])
            row = np.zeros(nvar); row[a + i] = 1; row[d + i] = -u[i]; add(row, -np.inf, 0)
        prev = slice(a, a + h)
    W, b = layers[-1]
    spec = C[0].double().numpy()
    cons = LinearConstraint(np.array(rows), np.array(lo_c), np.array(hi_c)) if rows else None
    best = np.inf
    for j in range(spec.shape[0]):
        cost = np.zeros(nvar)
        cost[prev] = spec[j] @ W
        res = milp(cost, constraints=cons, integrality=integ, bounds=Bounds(lb, ub),
                   options={"mip_rel_gap": 1e-9})
        if res.status != 0:
            raise RuntimeError(res.message)
        best = min(best, float(res.fun + spec[j] @ b))
    return best

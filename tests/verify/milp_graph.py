"""Exact minimum margin of a small network given as a graph (residual sums, concatenations, max pooling) by
mixed-integer programming: the test oracle for the DAG walk and branch and bound on such networks.

Independent of the bound rules: the graph's structure comes from tracing (``graph.operations``), but every
affine node's matrix is read off the torch module itself (its forward on basis vectors, one input at a time),
interval bounds are recomputed here in numpy, ReLU is the big-M encoding of ``milp.py`` and ``y = max_j x_j`` over
a pooling window is ``y >= x_j``, ``y <= x_j + (U - l_j)(1 - d_j)``, ``sum_j d_j = 1`` with binary ``d``.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from torchcert.bounds.graph import operations
from torchcert.bounds.layers import has_rule


class _Program:
    """Variables with bounds and integrality, and linear constraints ``lo <= row . v <= hi``."""

    def __init__(self) -> None:
        self.lb: List[float] = []
        self.ub: List[float] = []
        self.integer: List[int] = []
        self.rows: List[dict] = []
        self.lo: List[float] = []
        self.hi: List[float] = []

    def add_vars(self, low: np.ndarray, up: np.ndarray, integer: bool = False) -> np.ndarray:
        start = len(self.lb)
        self.lb += list(low)
        self.ub += list(up)
        self.integer += [int(integer)] * len(low)
        return np.arange(start, start + len(low))

    def add(self, coeffs: dict, lo: float, hi: float) -> None:
        self.rows.append(coeffs)
        self.lo.append(lo)
        self.hi.append(hi)

    def solve_min(self, cost: dict) -> float:
        n = len(self.lb)
        A = np.zeros((len(self.rows), n))
        for k, row in enumerate(self.rows):
            for j, v in row.items():
                A[k, j] += v
        c = np.zeros(n)
        for j, v in cost.items():
            c[j] += v
        res = milp(c, constraints=LinearConstraint(A, self.lo, self.hi), integrality=np.array(self.integer),
                   bounds=Bounds(self.lb, self.ub), options={"mip_rel_gap": 1e-9})
        if res.status != 0:
            raise RuntimeError(res.message)
        return float(res.fun)


def _affine_pieces(module: nn.Module, shapes: List[Tuple[int, ...]]) -> Tuple[List[np.ndarray], np.ndarray]:
    """``module(x_1, ..., x_m) = sum_i M_i x_i + b``: each ``M_i`` from basis vectors on input ``i``."""
    zeros = [torch.zeros((1,) + s, dtype=torch.float64) for s in shapes]
    with torch.no_grad():
        b = module(*zeros).flatten().numpy()
        mats = []
        for i, s in enumerate(shapes):
            n = int(np.prod(s))
            basis = torch.eye(n, dtype=torch.float64).view((n,) + s)
            args = [basis if k == i else z.expand((n,) + z.shape[1:]) for k, z in enumerate(zeros)]
            mats.append((module(*args).flatten(1).numpy() - b).T)  # (out, in_i)
    return mats, b


def _pool_windows(module: nn.MaxPool2d, shape: Tuple[int, ...]) -> List[List[int]]:
    """Flat input indices each output of the max pooling reads (padding left out)."""
    index = torch.arange(1, int(np.prod(shape)) + 1, dtype=torch.float64).view((1,) + shape)
    pair = nn.modules.utils._pair
    cols = F.unfold(index, pair(module.kernel_size), pair(module.dilation), pair(module.padding),
                    pair(module.stride or module.kernel_size))                      # (1, C kh kw, L)
    c = shape[0]
    cols = cols.view(c, -1, cols.shape[-1])                                          # (C, kh kw, L)
    return [[int(v) - 1 for v in cols[ch, :, pos] if v > 0] for ch in range(c) for pos in range(cols.shape[-1])]


def exact_min_margin_graph(model: nn.Module, low: torch.Tensor, up: torch.Tensor, C: torch.Tensor) -> float:
    """min over x in [low, up] (``(1, *in)``) of ``min_j (C f(x))_j``, ``C (1, M, K)``; float64 ``model``."""
    prog = _Program()
    x_low, x_up = low[0].double().flatten().numpy(), up[0].double().flatten().numpy()
    values = {-1: (prog.add_vars(x_low, x_up), x_low, x_up, tuple(low.shape[1:]))}
    for k, (name, module, inputs) in enumerate(operations(model, has_rule)):
        ins = [values[i] for i in inputs]
        if isinstance(module, nn.ReLU):
            z, l, u, shape = ins[0]
            a = prog.add_vars(np.maximum(l, 0), np.maximum(u, 0))
            d = prog.add_vars(np.zeros(len(l)), np.ones(len(l)), integer=True)
            for i in range(len(l)):
                prog.add({a[i]: 1, z[i]: -1}, 0, np.inf)
                prog.add({a[i]: 1, z[i]: -1, d[i]: -l[i]}, -np.inf, -l[i])
                prog.add({a[i]: 1, d[i]: -u[i]}, -np.inf, 0)
            values[k] = (a, np.maximum(l, 0), np.maximum(u, 0), shape)
        elif isinstance(module, nn.MaxPool2d):
            z, l, u, shape = ins[0]
            out_shape = tuple(module(torch.zeros((1,) + shape)).shape[1:])
            windows = _pool_windows(module, shape)
            y_low = np.array([max(l[j] for j in w) for w in windows])
            y_up = np.array([max(u[j] for j in w) for w in windows])
            y = prog.add_vars(y_low, y_up)
            for o, w in enumerate(windows):
                d = prog.add_vars(np.zeros(len(w)), np.ones(len(w)), integer=True)
                prog.add({int(di): 1 for di in d}, 1, 1)
                for j, dj in zip(w, d):
                    prog.add({y[o]: 1, z[j]: -1}, 0, np.inf)
                    big = y_up[o] - l[j]
                    prog.add({y[o]: 1, z[j]: -1, dj: big}, -np.inf, big)
            values[k] = (y, y_low, y_up, out_shape)
        else:
            mats, b = _affine_pieces(module, [v[3] for v in ins])
            mid = b + sum(M @ ((v[1] + v[2]) / 2) for M, v in zip(mats, ins))
            rad = sum(np.abs(M) @ ((v[2] - v[1]) / 2) for M, v in zip(mats, ins))
            l, u = mid - rad - 1e-9, mid + rad + 1e-9
            y = prog.add_vars(l, u)
            for o in range(len(b)):
                row = {y[o]: 1.0}
                for M, v in zip(mats, ins):
                    for j in np.nonzero(M[o])[0]:
                        row[v[0][j]] = row.get(v[0][j], 0.0) - M[o, j]
                prog.add(row, b[o], b[o])
            with torch.no_grad():
                shape = tuple(module(*[torch.zeros((1,) + v[3], dtype=torch.float64) for v in ins]).shape[1:])
            values[k] = (y, l, u, shape)
    out = values[max(values)][0]
    spec = C[0].double().numpy()
    return min(prog.solve_min({out[i]: spec[j, i] for i in range(len(out))}) for j in range(spec.shape[0]))

"""On tiny ReLU nets the CROWN / alpha-CROWN lower bounds never exceed the exact minimum.

The exact minimum of ``c . f(x)`` over the box is the minimum, over activation patterns, of a linear
programme: under a fixed pattern the net is affine and the pattern is a set of linear constraints.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from nets import mlp, random_box
from torchcert.bounds import Box, alpha_crown, crown, crown_relu_bounds, ibp


def _pattern_affine(model, pattern):
    """Affine maps (W_i, b_i) of every pre-activation and of the output under ``pattern``."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    W, b = np.eye(linears[0].in_features), np.zeros(linears[0].in_features)
    pre = []
    for i, lin in enumerate(linears):
        Wl, bl = lin.weight.detach().numpy(), lin.bias.detach().numpy()
        W, b = Wl @ W, Wl @ b + bl
        if i < len(linears) - 1:
            pre.append((W, b))
            d = np.asarray(pattern[i], dtype=float)
            W, b = d[:, None] * W, d * b
    return pre, (W, b)


def exact_minimum(model, c, lower, upper, fixed=None):
    """min c.f(x) over [lower, upper] (and over the neurons ``fixed`` {(layer, i): active})."""
    sizes = [m.out_features for m in model if isinstance(m, torch.nn.Linear)][:-1]
    best = np.inf
    for flat in itertools.product([0, 1], repeat=sum(sizes)):
        pattern = np.split(np.array(flat), np.cumsum(sizes)[:-1])
        if fixed and any(pattern[layer][i] != act for (layer, i), act in fixed.items()):
            continue
        pre, (W, b) = _pattern_affine(model, pattern)
        A = [np.where(p[:, None] == 1, -Wp, Wp) for p, (Wp, _) in zip(pattern, pre)]
        rhs = [np.where(p == 1, bp, -bp) for p, (_, bp) in zip(pattern, pre)]
        res = linprog(c @ W, A_ub=np.vstack(A), b_ub=np.concatenate(rhs), bounds=list(zip(lower, upper)))
        if res.status == 0:
            best = min(best, res.fun + c @ b)
    return best


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.1, 2.0))
def test_bounds_never_exceed_the_exact_minimum(seed, width):
    model = mlp(seed, (2, 3, 3, 2))
    box = random_box(seed, (1, 2), width)
    c = torch.randn(1, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    exact = exact_minimum(model, c[0, 0].numpy(), box.lower[0].numpy(), box.upper[0].numpy())
    for lower in (ibp(model, box, c).lower, crown(model, box, c).lower, crown(model, box, c, intermediate="ibp").lower,
                  alpha_crown(model, box, c, iterations=30, lr=0.2).lower):
        assert lower.item() <= exact + 1e-7


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_split_bounds_never_exceed_the_exact_minimum_of_the_split(seed, active):
    model = mlp(seed, (2, 4, 3, 2))
    box = random_box(seed, (1, 2), 1.5)
    c = torch.randn(1, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    root = crown_relu_bounds(model, box)
    lower, upper = root[0].lower.clone(), root[0].upper.clone()
    (lower if active else upper)[0, 0] = 0.0
    split = [Box(lower, upper), root[1]]
    exact = exact_minimum(model, c[0, 0].numpy(), box.lower[0].numpy(), box.upper[0].numpy(), {(0, 0): int(active)})
    assume(np.isfinite(exact))  # otherwise the split region is empty
    for bound in (crown(model, box, c, relu_bounds=split).lower,
                  alpha_crown(model, box, c, iterations=20, relu_bounds=split).lower):
        assert bound.item() <= exact + 1e-7


def test_exact_minimum_reference_is_attained_by_sampling():
    """The LP reference itself: never above the sampled minimum, and close to it."""
    model = mlp(1, (2, 3, 3, 2))
    box = random_box(1, (1, 2), 1.0)
    c = np.array([1.0, -1.0])
    exact = exact_minimum(model, c, box.lower[0].numpy(), box.upper[0].numpy())
    xs = box.lower + torch.rand(20000, 2, dtype=torch.float64) * (box.upper - box.lower)
    sampled = (model(xs).detach().numpy() @ c).min()
    assert exact <= sampled + 1e-9 and sampled - exact < 1e-2

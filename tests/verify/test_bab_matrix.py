"""Branch and bound against an exact MILP on random conv networks of the full layer matrix (float64).

Networks from ``random_nets.matrix_net(small=True)``: dilation, unread borders, size-1 kernel dimensions with
stride 2, padding-only borders, nested containers, no ReLU. The oracle is the MILP of the same function rewritten
as a dense MLP (``random_nets.dense_mlp``). Each case runs with attacks, without them (falsified verdicts then come
from exact LP leaves) and in bound mode; ε sits between what CROWN proves and what PGD breaks.
"""
from __future__ import annotations

import pytest
import torch

from random_nets import FAMILIES, dense_mlp, matrix_net
from torchcert.bounds import Box, margin_matrix
from torchcert.verify.bab import BabSettings, branch_and_bound

from .milp import exact_min_margin
from .test_bab_exact import _hard_eps

pytest.importorskip("scipy")


def check_case(seed: int, family: str, frac: float, patient: bool = True) -> str:
    """Verdicts must match the MILP; without attacks (exact leaves only) a ``timeout`` is allowed unless
    ``patient`` (a slow completeness path is not a wrong answer, but the default cases must decide)."""
    model, shape = matrix_net(seed, family, small=True)
    x = torch.randn((1,) + shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        label = model(x).argmax(1)
    C = margin_matrix(label, 3).double()
    eps = _hard_eps(model, x, C, frac)
    box = Box(x - eps, x + eps)
    exact = exact_min_margin(dense_mlp(model, shape), box.lower.flatten(), box.upper.flatten(), C)
    expected = "verified" if exact > 0 else "falsified"
    for settings in (BabSettings(timeout=60), BabSettings(timeout=60, attacks=False),
                     BabSettings(timeout=5, bound_mode=True)):
        result = branch_and_bound(model, box, C, settings)
        where = (seed, family, eps, exact, settings.attacks, settings.bound_mode, result)
        timed_out = result.status == "timeout" and (settings.bound_mode or not (patient or settings.attacks))
        if timed_out:  # still searching or tightening: the bound must hold
            assert result.lower_bound <= exact + 1e-7 and result.upper_bound >= exact - 1e-7, where
            continue
        if abs(exact) < 1e-9:
            assert result.status != ("falsified" if exact >= 0 else "verified"), where
        else:
            assert result.status == expected, where
        assert result.lower_bound <= exact + 1e-7, where
        if result.status == "falsified":
            cex = result.counterexample
            assert bool(((cex >= box.lower) & (cex <= box.upper)).all()), where
            with torch.no_grad():
                assert float((C[0] @ model(cex)[0]).min()) < 0, where
        if settings.bound_mode:
            assert result.lower_bound == pytest.approx(exact, abs=1e-6), where
    return expected


@pytest.mark.parametrize("family", FAMILIES)
def test_bab_matches_milp_over_the_layer_matrix(family):
    verdicts = [check_case(3000 + i, family, frac) for i, frac in enumerate([0.6, 1.1])]
    assert verdicts, family


@pytest.mark.slow
def test_bab_milp_sweep():
    """A fresh sweep: 60 networks, every family, ε on both sides of the exact threshold."""
    verdicts = {"verified": 0, "falsified": 0}
    for i in range(60):
        verdicts[check_case(70_000 + i, FAMILIES[i % len(FAMILIES)], (0.5, 0.9, 1.05, 1.3)[i % 4], False)] += 1
    assert min(verdicts.values()) >= 10, verdicts

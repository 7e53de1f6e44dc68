"""Branch and bound is exact on tiny ReLU networks: its verdicts match a MILP oracle in every case."""
from __future__ import annotations

from typing import Tuple

import pytest
import torch
from torch import nn

from torchcert import bounds
from torchcert.bounds import Box, margin_matrix
from torchcert.verify.attack import margin_pgd, random_points
from torchcert.verify.bab import BabSettings, branch_and_bound

from random_nets import dense_mlp

from .milp import exact_min_margin

pytest.importorskip("scipy")


def _net(seed: int, depth: int) -> Tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """A random float64 MLP (``depth`` hidden layers of 6-9 units, 3 classes), a centre and its label."""
    gen = torch.Generator().manual_seed(seed)
    n, width = 2 + seed % 3, 6 + seed % 4
    layers, features = [], n
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, 3))
    model = nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / p.shape[-1] ** 0.5)
    x = torch.randn(1, n, generator=gen, dtype=torch.float64)
    return model, x, model(x).argmax(1)


def _hard_eps(model: nn.Module, x: torch.Tensor, C: torch.Tensor, frac: float) -> float:
    """An eps between the largest one CROWN proves and the smallest one PGD breaks (bisection on each)."""
    def crown_ok(eps: float) -> bool:
        return bool((bounds.crown(model, Box(x - eps, x + eps), C).lower > 0).all())

    def pgd_breaks(eps: float) -> bool:
        low, up = x - eps, x + eps
        gen = torch.Generator().manual_seed(0)
        _, margins = margin_pgd(model, random_points(low, up, 16, gen), low, up, C, steps=30)
        return bool(margins.min() <= 0)

    lo_c, hi_c, lo_a, hi_a = 0.0, 4.0, 0.0, 4.0
    for _ in range(8):
        mid = (lo_c + hi_c) / 2
        lo_c, hi_c = (mid, hi_c) if crown_ok(mid) else (lo_c, mid)
        mid = (lo_a + hi_a) / 2
        lo_a, hi_a = (lo_a, mid) if pgd_breaks(mid) else (mid, hi_a)
    return lo_c + frac * (hi_a - lo_c)


def _check_cases(cases, timeout: float = 60.0) -> dict:
    """Run BaB and the MILP on each (seed, depth, frac, attacks) case; returns the count of each verdict."""
    verdicts = {"verified": 0, "falsified": 0}
    for seed, depth, frac, attacks in cases:
        model, x, label = _net(seed, depth)
        C = margin_matrix(label, 3).double()
        eps = _hard_eps(model, x, C, frac)
        box = Box(x - eps, x + eps)
        exact = exact_min_margin(model, box.lower, box.upper, C)
        result = branch_and_bound(model, box, C, BabSettings(timeout=timeout, attacks=attacks))
        expected = "verified" if exact > 0 else "falsified"
        assert result.status == expected, (seed, eps, exact, result)
        assert result.lower_bound <= exact + 1e-7, (seed, exact, result.lower_bound)
        if expected == "falsified":
            cex = result.counterexample
            assert cex is not None and bool(((cex >= box.lower) & (cex <= box.upper)).all())
            with torch.no_grad():
                assert float((C[0] @ model(cex)[0]).min()) <= 0
        verdicts[expected] += 1
    return verdicts


# Two-hidden-layer nets with attacks on; one-hidden-layer nets also with attacks off, so that falsified verdicts
# must come from the exact LP at fully split leaves (the completeness path).
FAST_CASES = [(seed, 2, frac, True) for seed, frac in enumerate([0.5, 0.95, 0.3, 0.7, 0.97, 0.6])] + \
             [(100 + seed, 1, frac, False) for seed, frac in enumerate([1.02, 0.97, 0.8, 1.05, 0.9, 0.85, 1.1])]


def test_bab_matches_milp_on_random_networks():
    verdicts = _check_cases(FAST_CASES)
    assert verdicts["verified"] >= 5 and verdicts["falsified"] >= 5, verdicts


@pytest.mark.slow
def test_bab_matches_milp_without_attacks_on_deeper_networks():
    """Completeness on two hidden layers without any attack: falsified only through exact leaves."""
    verdicts = _check_cases([(200 + seed, 2, frac, False) for seed, frac in enumerate([1.02, 0.97] * 6)])
    assert verdicts["verified"] >= 2 and verdicts["falsified"] >= 2, verdicts


def test_bound_mode_reaches_the_exact_minimum():
    """Bound mode (tuning statistics) keeps tightening past counterexamples; with time it ends at the minimum."""
    for seed in range(4):
        model, x, label = _net(300 + seed, 1)
        C = margin_matrix(label, 3).double()
        eps = _hard_eps(model, x, C, 1.1 if seed % 2 else 0.9)
        box = Box(x - eps, x + eps)
        exact = exact_min_margin(model, box.lower, box.upper, C)
        result = branch_and_bound(model, box, C, BabSettings(timeout=60, bound_mode=True))
        assert result.status == ("verified" if exact > 0 else "falsified"), (seed, exact, result)
        assert result.lower_bound == pytest.approx(exact, abs=1e-6), (seed, exact, result)
        assert result.upper_bound >= exact - 1e-6


def test_bab_exact_on_small_conv_networks():
    """Convolutions go through the same bounds and the same exact leaves (oracle: the equivalent MLP's MILP)."""
    from torchcert.models import Flatten

    verdicts = {"verified": 0, "falsified": 0}
    for seed, frac, attacks in [(0, 0.5, True), (1, 1.05, False), (2, 0.9, True), (3, 1.02, False), (4, 0.8, False)]:
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), Flatten(), nn.Linear(8, 6),
                              nn.ReLU(), nn.Linear(6, 3)).double().eval()
        x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
        label = model(x).argmax(1)
        C = margin_matrix(label, 3).double()
        eps = _hard_eps(model, x, C, frac)
        box = Box(x - eps, x + eps)
        exact = exact_min_margin(dense_mlp(model, (1, 4, 4)), box.lower.flatten(), box.upper.flatten(), C)
        result = branch_and_bound(model, box, C, BabSettings(timeout=60, attacks=attacks))
        expected = "verified" if exact > 0 else "falsified"
        assert result.status == expected, (seed, exact, result)
        assert result.lower_bound <= exact + 1e-7
        verdicts[expected] += 1
    assert min(verdicts.values()) >= 1, verdicts

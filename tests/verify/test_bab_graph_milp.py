"""Exact answers on small residual, concatenating and max-pooling networks (a MILP over the traced graph, see
``milp_graph``): branch and bound's verdicts and bound-mode minima equal the MILP's (max pooling searched in its
ReLU form); every bound (IBP, CROWN, alpha-CROWN) stays below the exact minimum."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from torchcert.bounds import Box, alpha_crown, crown, ibp, margin_matrix
from torchcert.verify.bab import BabSettings, bab_refusal, branch_and_bound

from .test_bab_exact import _hard_eps

pytest.importorskip("scipy")
from .milp_graph import exact_min_margin_graph  # noqa: E402


class ConvBlock(nn.Module):
    """Conv stem, a residual block halving the map (1x1 stride-2 shortcut), concatenation with a pooled copy of the
    stem's map along channels, a dense head."""

    def __init__(self, seed: int, pool: str) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(1, 2, 3, 1, 1)
        self.a, self.b = nn.Conv2d(2, 2, 3, 2, 1), nn.Conv2d(2, 2, 3, 1, 1)
        self.shortcut = nn.Conv2d(2, 2, 1, 2)
        self.pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)
        self.head = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        r = torch.relu(self.b(torch.relu(self.a(h))) + self.shortcut(h))
        return self.head(torch.flatten(torch.cat([r, self.pool(h)], dim=1), 1))


class DenseSkip(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.c = nn.Linear(3, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.c(torch.relu(self.b(h) - h) + h)


def _case(kind: str, seed: int):
    if kind == "dense":
        model, x = DenseSkip(seed).double().eval(), torch.randn(1, 3, dtype=torch.float64)
    else:
        model = ConvBlock(seed, "avg" if kind == "conv" else "max").double().eval()
        x = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return model, x, margin_matrix(model(x).argmax(1), 3).double()


@pytest.mark.parametrize("kind,seed,frac", [("dense", 0, 0.5), ("dense", 1, 1.05), ("dense", 2, 0.9),
                                            ("conv", 0, 0.5), ("conv", 1, 1.05), ("conv", 2, 0.9),
                                            ("pool", 0, 0.5), ("pool", 1, 1.05), ("pool", 2, 0.9)])
def test_branch_and_bound_matches_the_milp(kind, seed, frac):
    model, x, C = _case(kind, seed)
    eps = _hard_eps(model, x, C, frac)
    box = Box(x - eps, x + eps)
    exact = exact_min_margin_graph(model, box.lower, box.upper, C)
    result = branch_and_bound(model, box, C, BabSettings(timeout=60))
    assert result.status == ("verified" if exact > 0 else "falsified"), (eps, exact, result)
    assert result.lower_bound <= exact + 1e-7
    if result.status == "falsified":
        with torch.no_grad():
            assert float((C[0] @ model(result.counterexample)[0]).min()) < 0


@pytest.mark.parametrize("kind", ["dense", "conv", "pool"])
def test_bound_mode_reaches_the_milp_minimum(kind):
    model, x, C = _case(kind, 3)
    eps = _hard_eps(model, x, C, 1.0)
    box = Box(x - eps, x + eps)
    exact = exact_min_margin_graph(model, box.lower, box.upper, C)
    result = branch_and_bound(model, box, C, BabSettings(timeout=60, bound_mode=True))
    assert result.lower_bound == pytest.approx(exact, abs=1e-6), (exact, result)


@pytest.mark.parametrize("seed", range(3))
def test_max_pool_bounds_stay_below_the_exact_minimum(seed):
    model, x, C = _case("pool", seed)
    for eps in (0.02, 0.1, 0.3):
        box = Box(x - eps, x + eps)
        exact = exact_min_margin_graph(model, box.lower, box.upper, C)
        points = box.lower + (box.upper - box.lower) * torch.rand(2000, 1, 4, 4, dtype=torch.float64)
        with torch.no_grad():
            sampled = float((model(points) @ C[0].T).min())
        assert exact <= sampled + 1e-9
        for bound in (ibp(model, box, C), crown(model, box, C), alpha_crown(model, box, C, iterations=10)):
            assert float(bound.lower.detach().min()) <= exact + 1e-9, (eps, exact, bound.lower)
    assert bab_refusal(model, box) is None

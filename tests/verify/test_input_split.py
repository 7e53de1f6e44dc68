"""Input splitting for a conjunction ``AND_j g_j(x) <= 0``: proves an infeasible one that no single bound over the
whole box proves, and finds a counterexample away from the box centre."""
from __future__ import annotations

import copy

import torch
from torch import nn

from torchcert.verify.input_split import closed_boxes, input_split, split_widest


def _margins(rows, offsets) -> nn.Sequential:
    """g(x) = R relu(x + 2) + o - 2 R 1 = R x + o on the box [-1, 1]^2 (the ReLU is stable: a network, linear here)."""
    first = nn.Linear(2, 2)
    last = nn.Linear(2, len(rows))
    with torch.no_grad():
        first.weight.copy_(torch.eye(2))
        first.bias.fill_(2.0)
        last.weight.copy_(torch.tensor(rows))
        last.bias.copy_(torch.tensor(offsets) - 2.0 * torch.tensor(rows).sum(dim=1))
    return nn.Sequential(first, nn.ReLU(), last).eval()


BOX = (torch.full((1, 2), -1.0), torch.full((1, 2), 1.0))


def test_infeasible_conjunction_needs_splits_and_is_proved():
    g = _margins([[1.0, 0.0], [-1.0, 0.0]], [0.0, 0.1])  # x0 <= 0 and x0 >= 0.1: impossible
    bound = copy.deepcopy(g).double()
    assert not bool(closed_boxes(bound, *BOX, torch.float32)[0])  # no row is positive on the whole box
    status, x = input_split(g, bound, *BOX, timeout=30)
    assert status == "verified" and x is None


def test_feasible_conjunction_gives_a_strict_counterexample():
    g = _margins([[1.0, 0.0], [-1.0, 0.0]], [0.0, -0.1])  # -0.1 < x0 < 0 satisfies both
    status, x = input_split(g, copy.deepcopy(g).double(), *BOX, timeout=30)
    assert status == "falsified"
    assert bool((g(x) < 0).all()) and bool((x >= BOX[0]).all() and (x <= BOX[1]).all())


def test_split_widest_halves_cover_the_parent():
    lo, hi = torch.tensor([[0.0, 0.0], [0.0, -4.0]]), torch.tensor([[1.0, 3.0], [2.0, 0.0]])
    kids_lo, kids_hi = split_widest(lo, hi)
    assert kids_lo.tolist() == [[0.0, 0.0], [0.0, -4.0], [0.0, 1.5], [0.0, -2.0]]
    assert kids_hi.tolist() == [[1.0, 1.5], [2.0, -2.0], [1.0, 3.0], [2.0, 0.0]]

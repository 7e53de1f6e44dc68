"""CROWN-IBP and CROWN against golden values of the original code (auto_LiRPA 0.7.1, eval mode)."""
from __future__ import annotations

import pytest
import torch

from bounds_helpers import golden_model, load_case
from torchcert.bounds import Box, crown

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["A", "B", "D"])
def test_crown_ibp_matches_golden(golden_dir, name):
    case = load_case(golden_dir, name)
    model = golden_model(case).eval()
    lb = crown(model, Box(case["x_lb"], case["x_ub"]), case["C"], intermediate="ibp").lower
    torch.testing.assert_close(lb, case["eval"]["crown_ibp_lb"], **TOL)
    lb.sum().backward()
    assert model[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name,neurons,key", [
    ("A", "all", "crown_lb_dense"), ("A", "hybrid", "crown_lb"),
    ("B", "all", "crown_lb_dense"), ("B", "hybrid", "crown_lb"),
    ("D", "all", "crown_lb_dense"), ("D", "unstable", "crown_lb"),
])
def test_crown_matches_golden(golden_dir, name, neurons, key):
    case = load_case(golden_dir, name)
    model = golden_model(case).eval()
    with torch.no_grad():
        lb = crown(model, Box(case["x_lb"], case["x_ub"]), case["C"], neurons=neurons).lower
    torch.testing.assert_close(lb, case["eval"][key], rtol=1e-4, atol=1e-4)


def test_golden_case_a_distinguishes_dense_from_hybrid(golden_dir):
    """The two intermediate-bound rules differ on case A: a test of either one can fail."""
    case = load_case(golden_dir, "A")
    assert (case["eval"]["crown_lb_dense"] - case["eval"]["crown_lb"]).abs().max() > 5e-4

"""The verdict rules: strict misclassification, the rounding tolerance, dual-certified LP leaves."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from torchcert.bounds import Box, margin_matrix
from torchcert.verify.lp import _dual_bound
from torchcert.verify.verdict import bound_copy, misclassified, model_dtype, spec_values, tolerance


def test_misclassified_is_strict():
    logits = torch.tensor([[1.0, 1.0, 0.0], [1.0, 2.0, 0.0], [3.0, 2.0, 3.0]])
    assert misclassified(logits, 0).tolist() == [False, True, False]
    assert misclassified(logits, 1).tolist() == [False, False, True]


def test_spec_values_keep_the_sign_of_float32_comparisons():
    a = torch.tensor([[1.0, float(np.nextafter(np.float32(1.0), np.float32(2.0)))]])
    C = margin_matrix(torch.tensor([0]), 2)
    assert float(spec_values(a, C)) < 0 and float(spec_values(a[:, [0, 0]], C)) == 0


def test_tolerance_grows_with_the_network_precision():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    box = Box(torch.zeros(1, 8), torch.ones(1, 8))
    C = margin_matrix(torch.tensor([1]), 3)
    tau32 = tolerance(bound_copy(model), box, C, torch.float32)
    tau64 = tolerance(bound_copy(model), box, C, torch.float64)
    assert model_dtype(bound_copy(model)) == torch.float64 and model_dtype(model) == torch.float32
    assert tau32.shape == (1, 2) and bool((tau32 > 1e6 * tau64).all()) and bool((tau64 > 0).all())


def test_dual_bound_is_below_the_lp_minimum_and_tight():
    from scipy.optimize import linprog

    rng = np.random.default_rng(0)
    for _ in range(20):
        n, m = 5, 4
        cost, A = rng.normal(size=n), rng.normal(size=(m, n))
        b = A @ rng.uniform(-0.5, 0.5, size=n) + rng.uniform(0, 0.3, size=m)  # feasible
        box = np.stack([-np.ones(n), np.ones(n)], axis=1)
        res = linprog(cost, A_ub=A, b_ub=b, bounds=box, method="highs")
        assert res.status == 0
        bound = _dual_bound(cost, A, b, box, res.ineqlin.marginals)
        assert bound <= res.fun + 1e-12 and bound == pytest.approx(res.fun, abs=1e-7)
        assert _dual_bound(cost, A, b, box, np.zeros(m)) <= res.fun + 1e-12  # any lambda >= 0 is a bound


def test_empty_domains_are_proved_empty():
    from torchcert.verify.lp import _proven_empty

    box = np.array([[-1.0, 1.0], [-1.0, 1.0]])
    A = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert _proven_empty(A, np.array([-0.2, -0.2]), box)        # x0 <= -0.2 and x0 >= 0.2
    assert not _proven_empty(A, np.array([0.2, 0.2]), box)      # |x0| <= 0.2
    assert _proven_empty(np.array([[1.0, 1.0]]), np.array([-3.0]), box)  # out of the box alone

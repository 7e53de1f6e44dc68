"""Regression tests for the wrong verdicts of ``shared/soundness`` (one test per root cause, float64 unless said).

Each network is built here with explicit weights (the reproducers' layouts); every test failed before the fix.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from torchcert.bounds import Box, alpha_crown, crown, crown_relu_bounds
from torchcert.verify import BabSettings, branch_and_bound, verify_sample

pytest.importorskip("scipy")
D = torch.float64
MARGIN = torch.tensor([[[1.0, -1.0]]], dtype=D)


def _linear(i: int, o: int, w, b) -> nn.Linear:
    m = nn.Linear(i, o).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor(w, dtype=D))
        m.bias.copy_(torch.tensor(b, dtype=D))
    return m


def _conv(cin: int, cout: int, k, w: float, b: float, **kw) -> nn.Conv2d:
    m = nn.Conv2d(cin, cout, k, **kw).double()
    with torch.no_grad():
        m.weight.fill_(w)
        m.bias.fill_(b)
    return m


@pytest.mark.parametrize("neurons", ["unstable", "all", "hybrid"])
def test_dilated_conv_bounds_equal_its_undilated_kernel(neurons):
    """Bug 1: the patch fast paths read a dilated kernel as a contiguous window."""
    torch.manual_seed(0)
    first = nn.Conv2d(1, 2, 3, padding=1).double()
    dilated = nn.Conv2d(2, 2, 3, padding=2, dilation=2).double()
    dense = nn.Conv2d(2, 2, 5, padding=2).double()
    with torch.no_grad():
        dense.weight.zero_()
        dense.weight[..., ::2, ::2] = dilated.weight
        dense.bias.copy_(dilated.bias)
    head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(2 * 5 * 5, 2).double())
    x = torch.randn(1, 1, 5, 5, dtype=D)
    box = Box(x - 0.5, x + 0.5)
    a = nn.Sequential(first, nn.ReLU(), dilated, head).eval()
    b = nn.Sequential(first, nn.ReLU(), dense, head).eval()
    with torch.no_grad():
        for left, right in zip(crown_relu_bounds(a, box, neurons=neurons), crown_relu_bounds(b, box, neurons=neurons)):
            torch.testing.assert_close(left.lower, right.lower, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(crown(a, box, MARGIN, neurons=neurons).lower,
                                   crown(b, box, MARGIN, neurons=neurons).lower, rtol=1e-10, atol=1e-10)


def _unread_net() -> nn.Sequential:
    """margin(x) = 0.005 - 10 relu(10.001 - x00) on x in [10, 11]^(2x2): the stride-3 conv reads pixel (0, 0) only."""
    return nn.Sequential(_conv(1, 1, 1, 1.0, 0.0), nn.ReLU(), _conv(1, 1, 1, 1.0, 0.0, stride=3), nn.Flatten(),
                         _linear(1, 1, [[-1.0]], [10.001]), nn.ReLU(),
                         _linear(1, 2, [[-10.0], [0.0]], [0.005, 0.0])).eval()


def test_split_terms_on_a_partly_read_map_do_not_broadcast():
    """Bug 2: full-map split terms were added to coefficients cropped to the window the next conv reads."""
    model = _unread_net()
    box = Box(torch.full((1, 1, 2, 2), 10.0, dtype=D), torch.full((1, 1, 2, 2), 11.0, dtype=D))
    bounds = crown_relu_bounds(model, box)
    terms = [torch.zeros((1, 1) + tuple(b.lower.shape[1:]), dtype=D) for b in bounds]
    plain = crown(model, box, MARGIN, "given", relu_bounds=bounds).lower
    split = crown(model, box, MARGIN, "given", relu_bounds=bounds, preact_terms=terms).lower
    torch.testing.assert_close(split, plain, rtol=0, atol=1e-15)
    assert float(plain.detach()) <= -0.005 + 1e-12
    result = branch_and_bound(model, box, MARGIN, BabSettings(timeout=30))
    assert result.status == "falsified" and result.lower_bound <= -0.005 + 1e-12
    sample = verify_sample(model, box.lower, box.upper, 0, timeout=30, generator=torch.Generator().manual_seed(0))
    assert sample.status == "falsified"


def _nested_net(nested: bool) -> nn.Sequential:
    """margin(x) = 10.2 - relu(relu(x - 100) + 10) on [99, 101]: minimum -0.8 at x = 101."""
    block = [_linear(1, 1, [[1.0]], [10.0]), nn.ReLU()]
    middle = [nn.Sequential(*block)] if nested else block
    return nn.Sequential(_linear(1, 1, [[1.0]], [-100.0]), nn.ReLU(), *middle,
                         _linear(1, 2, [[-1.0], [0.0]], [10.2, 0.0])).eval()


@pytest.mark.parametrize("nested", [False, True])
def test_exact_leaves_read_the_engine_layers(nested):
    """Bug 3: the leaf LP walked only the top-level children, applying a nested ReLU for real."""
    model = _nested_net(nested)
    box = Box(torch.tensor([[99.0]], dtype=D), torch.tensor([[101.0]], dtype=D))
    result = branch_and_bound(model, box, MARGIN, BabSettings(timeout=30, attacks=False))
    assert result.status == "falsified" and result.lower_bound <= -0.8 + 1e-9
    bound = branch_and_bound(model, box, MARGIN, BabSettings(timeout=30, attacks=False, bound_mode=True))
    assert bound.lower_bound <= -0.8 + 1e-9
    sample = verify_sample(model, box.lower, box.upper, 0, pgd_steps=0, timeout=30, bab=BabSettings(attacks=False))
    assert sample.status == "falsified"


def _box(shape, width=0.5, seed=1) -> Box:
    x = torch.randn((1,) + shape, dtype=D, generator=torch.Generator().manual_seed(seed))
    return Box(x - width, x + width)


def test_former_crashes_give_bounds():
    """Kernels with a size-1 dimension under stride 2, borders reading only padding, no ReLU, unread rows."""
    torch.manual_seed(0)
    for kernel in [(1, 1), (1, 3), (3, 1)]:
        m = nn.Sequential(nn.Conv2d(1, 1, kernel, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).double()
        box = _box((1, 5, 5))
        m(box.lower)
        assert torch.isfinite(crown(m.eval(), box, MARGIN).lower).all()
    m = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 1, padding=1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(16, 2)).double().eval()
    assert torch.isfinite(crown(m, _box((1, 2, 2)), MARGIN, neurons="all").lower).all()
    affine = nn.Sequential(nn.Linear(3, 2)).double().eval()
    box = _box((3,))
    torch.testing.assert_close(alpha_crown(affine, box, MARGIN).lower, crown(affine, box, MARGIN).lower)
    label = int(affine(box.center).argmax())
    assert verify_sample(affine, box.lower, box.upper, label, timeout=5, pgd_steps=0).status in ("verified",
                                                                                               "falsified")
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2), nn.ReLU(),
                      nn.Flatten(), nn.Linear(18, 2)).double().eval()
    assert branch_and_bound(m, _box((1, 8, 8), 0.1), MARGIN, BabSettings(timeout=10, attacks=False)).status in \
        ("verified", "falsified")


def test_a_tie_is_not_a_counterexample():
    """Two identical logits everywhere: never falsified (and never verified)."""
    model = nn.Sequential(_linear(2, 2, [[1.0, -2.0], [-1.0, 1.0]], [0.0, 0.0]), nn.ReLU(),
                          _linear(2, 2, [[1.0, 1.0], [1.0, 1.0]], [0.0, 0.0])).eval()
    lo, hi = torch.zeros(1, 2, dtype=D), torch.ones(1, 2, dtype=D)
    result = verify_sample(model, lo, hi, 0, timeout=10, generator=torch.Generator().manual_seed(0))
    assert result.status not in ("falsified", "verified") and result.counterexample is None


def _rounding_trap() -> nn.Sequential:
    """A float32 net whose real-arithmetic margin is +2e-5 on [1, 1.001] against logits ~1e3 (its float32 forward
    misclassifies points of that box)."""
    g = torch.Generator().manual_seed(1)
    a = 1000 + 100 * torch.rand(1, generator=g).item()
    c = a + 0.01 * torch.rand(1, generator=g).item()
    model = nn.Sequential(nn.Linear(1, 2)).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[a], [c]]))
        w = model[0].weight.double()
        model[0].bias.copy_(torch.tensor([-(float(w[0, 0]) - float(w[1, 0])) * 1.001 + 2e-5, 0.0]))
    return model


def test_float32_rounding_is_not_verified():
    """No verdict may be "verified"; a falsified verdict comes with a float32 counterexample."""
    model = _rounding_trap()
    lo, hi = torch.tensor([[1.0]]), torch.tensor([[1.001]])
    for seed in range(4):
        result = verify_sample(model, lo, hi, 0, timeout=10, generator=torch.Generator().manual_seed(seed))
        assert result.status != "verified", result
        if result.status == "falsified":
            with torch.no_grad():
                logits = model(result.counterexample)
            assert float(logits[0, 1]) > float(logits[0, 0])


def test_overflow_and_underflow_are_never_verified():
    """float32 nets whose forward overflows to inf, or underflows to zero, at points of the box: the rounding
    bound is infinite (overflow) or covers the absolute error near zero (underflow), so neither is verified."""
    from torchcert.bounds.rounding import arithmetic, forward_error

    over = nn.Sequential(nn.Conv2d(2, 2, 1, groups=2), nn.ReLU(), nn.Conv2d(2, 2, 1, groups=2), nn.Flatten()).eval()
    with torch.no_grad():  # logit0 = 5 + relu(x0), logit1 = 1e-38 relu(1e38 x1): the second overflows at x1 = 4
        over[0].weight.copy_(torch.tensor([1.0, 1e38]).view(2, 1, 1, 1))
        over[0].bias.zero_()
        over[2].weight.copy_(torch.tensor([1.0, 1e-38]).view(2, 1, 1, 1))
        over[2].bias.copy_(torch.tensor([5.0, 0.0]))
    lo, hi = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1), torch.tensor([1.0, 4.0]).view(1, 2, 1, 1)
    assert torch.isinf(forward_error(over, Box(lo, hi), arithmetic(torch.float32))).all()
    t = 2.0 ** -149
    under = nn.Sequential(nn.Linear(3, 2, bias=False)).eval()
    with torch.no_grad():  # margin t (x0 + x1 - x2) >= 0.05 t in reals; float32 rounds t * 0.3 to 0
        under[0].weight.copy_(torch.tensor([[t, t, 0.0], [0.0, 0.0, t]], dtype=torch.float64).float())
    lo2, hi2 = torch.tensor([[0.3, 0.3, 0.5]]), torch.tensor([[0.8, 0.45, 0.55]])
    for model, low, high in ((over, lo, hi), (under, lo2, hi2)):
        bab = branch_and_bound(model, Box(low, high), torch.tensor([[[1.0, -1.0]]]),
                               BabSettings(timeout=10, attacks=False))
        sample = verify_sample(model, low, high, 0, timeout=10, pgd_steps=0)
        assert bab.status != "verified" and sample.status != "verified", (bab, sample)


class _BatchSkew(nn.Module):
    """The margin of logit 0 over logit 1 drops by 1 when more than one input is run at once: a stand-in for
    float kernels whose results depend on the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - (x.shape[0] > 1) * torch.tensor([1.0, 0.0], dtype=x.dtype)


def test_counterexamples_are_rechecked_alone():
    plain = nn.Sequential(_linear(2, 2, [[1.0, 0.0], [0.0, 1.0]], [0.5, 0.0])).eval()
    model = nn.Sequential(plain[0], _BatchSkew()).eval()  # the user's network; bounds are of ``plain``
    box = Box(torch.zeros(1, 2, dtype=D), torch.full((1, 2), 0.2, dtype=D))  # margin 0.5 + x0 - x1 >= 0.3 alone
    result = branch_and_bound(model, box, MARGIN, BabSettings(timeout=10), bound_model=plain)
    assert result.status != "falsified", result
    assert result.upper_bound >= 0.3 - 1e-12


def test_lower_bound_holds_without_exact_leaves():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double().eval()
    box = Box(torch.full((1, 2), -1.0, dtype=D), torch.full((1, 2), 1.0, dtype=D))
    points = box.lower + 2 * torch.rand(20000, 2, generator=torch.Generator().manual_seed(0), dtype=D)
    with torch.no_grad():
        reached = float((model(points) @ MARGIN[0].T).min())
    for bound_mode in (False, True):
        for attacks in (False, True):
            result = branch_and_bound(model, box, MARGIN, BabSettings(timeout=5, exact_leaves=False,
                                                                      bound_mode=bound_mode, attacks=attacks))
            assert result.lower_bound <= reached, (bound_mode, attacks, result)


def test_float32_bounds_still_refuse_the_rounding_case():
    """With float32 bounds (the speed option) the allowance for their own rounding keeps the case unverified."""
    from torchcert.verify.verdict import bound_copy

    model = _rounding_trap()
    lo, hi = torch.tensor([[1.0]]), torch.tensor([[1.001]])
    result = verify_sample(model, lo, hi, 0, timeout=5, pgd_steps=0, bound_model=bound_copy(model, torch.float32),
                           bab=BabSettings(attacks=False))
    assert result.status != "verified"

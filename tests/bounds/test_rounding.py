"""The forward-error bound (``bounds.rounding``) holds: a float32 forward pass never strays further from the
float64 one (a stand-in for real arithmetic, 2^29 times more precise) than ``forward_error`` says."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nets import random_box, sample_points
from random_nets import matrix_net
from torchcert.bounds import Box
from torchcert.bounds.rounding import forward_error, unit_roundoff


@pytest.mark.parametrize("seed", range(12))
def test_float32_forward_stays_within_the_bound(seed):
    model64, shape = matrix_net(400 + seed)
    with torch.no_grad():  # large weights and inputs make rounding visible
        for p in model64.parameters():
            p.mul_(3.0)
    box = random_box(seed, (2,) + shape, 0.5)
    box = Box(box.lower * 40, box.upper * 40)
    model32 = matrix_net(400 + seed)[0]
    model32.load_state_dict(model64.state_dict())
    model32 = model32.float()
    e = forward_error(model32, Box(box.lower.float(), box.upper.float()), unit_roundoff(torch.float32))
    points = sample_points(box, 64, seed).flatten(0, 1).float()  # float32 points of the box
    with torch.no_grad():
        gap = (model32(points).double() - model64(points.double())).abs().view(-1, 2, e.shape[1])
    assert bool((gap <= e).all()), float((gap - e).max())
    assert float(gap.max()) > 0, "the case must round at all to test the bound"
    assert float(e.max()) < 1e3 * float(gap.max()) + 1e-3, "the bound should not be absurdly loose here"


def test_unit_roundoff_per_dtype():
    assert unit_roundoff(torch.float32) == 2.0 ** -24
    assert unit_roundoff(torch.float64) == 2.0 ** -53
    with pytest.raises(ValueError, match="no rounding model"):
        unit_roundoff(torch.int32)


def test_batchnorm_and_linear_rounding_of_an_mlp_is_bounded():
    torch.manual_seed(0)
    model64 = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.ReLU(), nn.Linear(30, 4)).double().eval()
    with torch.no_grad():
        model64[1].running_mean.uniform_(-50, 50)
        model64[1].running_var.uniform_(0.01, 4)
    model32 = nn.Sequential(nn.Linear(20, 30), nn.BatchNorm1d(30), nn.ReLU(), nn.Linear(30, 4)).eval()
    model32.load_state_dict(model64.state_dict())
    model32 = model32.float()
    x = 30 * torch.randn(1, 20, dtype=torch.float64)
    box = Box((x - 5).float().double(), (x + 5).float().double())
    e = forward_error(model32, box, unit_roundoff(torch.float32))
    points = sample_points(box, 500, 0).flatten(0, 1).float()
    with torch.no_grad():
        gap = (model32(points).double() - model64(points.double())).abs()
    assert bool((gap <= e).all()) and float(gap.max()) > 0


@pytest.mark.parametrize("seed", range(8))
def test_spec_bound_with_crown_pre_activations_holds_and_is_tighter(seed):
    """With ``C`` and CROWN's pre-activation boxes the bound is on ``C f`` directly: still above every sampled
    ``|C (f32 - f64)|``, and no looser than ``|C|`` times the per-logit bound."""
    from torchcert.bounds import crown_relu_bounds

    model64, shape = matrix_net(500 + seed)
    with torch.no_grad():
        for p in model64.parameters():
            p.mul_(3.0)
    box = random_box(seed, (2,) + shape, 0.3)
    box = Box(box.lower.float().double() * 20, box.upper.float().double() * 20)
    model32 = matrix_net(500 + seed)[0]
    model32.load_state_dict(model64.state_dict())
    model32 = model32.float()
    C = torch.randn(2, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        rb = crown_relu_bounds(model64, box)
    u = unit_roundoff(torch.float32)
    tight = forward_error(model32, box, u, C, rb)
    loose = torch.einsum("bmk,bk->bm", C.abs(), forward_error(model32, box, u))
    assert bool((tight <= loose * (1 + 1e-9)).all())
    points = sample_points(box, 64, seed).float()
    n = points.shape[0]
    with torch.no_grad():
        diff = model32(points.flatten(0, 1)).double() - model64(points.flatten(0, 1).double())
    gap = torch.einsum("bmk,nbk->nbm", C, diff.view(n, 2, -1)).abs()
    assert bool((gap <= tight).all()), float((gap - tight).max())

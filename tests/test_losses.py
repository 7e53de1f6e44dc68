"""Losses: closed forms, endpoints (α = 1 is the IBP loss, α = 0 the adversarial one), SABR box, registry."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchcert.bounds import Box
from torchcert.losses import (LOSSES, LossTerms, cc_ibp_loss, exp_ibp_loss, get_loss, ibp_loss, l1_penalty,
                              margins, mtl_ibp_loss, sabr_box)


def _logits_and_C(batch=5, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, k, generator=g, dtype=torch.float64)
    labels = torch.randint(0, k, (batch,), generator=g)
    eye = torch.eye(k, dtype=torch.float64)
    C = torch.stack([torch.stack([eye[y] - eye[j] for j in range(k) if j != y]) for y in labels.tolist()])
    return logits, labels, C


def test_ibp_loss_closed_form():
    lb = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype=torch.float64)
    expected = torch.log1p(torch.exp(-lb).sum(1)).mean()
    assert torch.allclose(ibp_loss(lb), expected)


def test_ibp_loss_of_exact_margins_is_cross_entropy():
    """With lb = C·z (no slack) the IBP loss is the ordinary cross-entropy of z."""
    logits, labels, C = _logits_and_C()
    assert torch.allclose(ibp_loss(margins(C, logits)), F.cross_entropy(logits, labels))


def test_cc_ibp_endpoints():
    logits, labels, C = _logits_and_C(seed=1)
    adv_margin = margins(C, logits)
    lb = adv_margin - torch.rand_like(adv_margin)
    assert torch.allclose(cc_ibp_loss(lb, adv_margin, 1.0), ibp_loss(lb))
    assert torch.allclose(cc_ibp_loss(lb, adv_margin, 0.0), F.cross_entropy(logits, labels))
    mid = cc_ibp_loss(lb, adv_margin, 0.3)
    assert torch.allclose(mid, ibp_loss(0.3 * lb + 0.7 * adv_margin))
    assert F.cross_entropy(logits, labels) <= mid <= ibp_loss(lb)


@pytest.mark.parametrize("fn", [mtl_ibp_loss, exp_ibp_loss])
def test_mtl_exp_endpoints_and_order(fn):
    robust, adv = torch.tensor(2.5, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    assert torch.allclose(fn(robust, adv, 1.0), robust)
    assert torch.allclose(fn(robust, adv, 0.0), adv)
    assert adv < fn(robust, adv, 0.4) < robust


def test_mtl_and_exp_values():
    robust, adv = torch.tensor(2.0), torch.tensor(0.5)
    assert math.isclose(mtl_ibp_loss(robust, adv, 0.25).item(), 0.25 * 2.0 + 0.75 * 0.5, rel_tol=1e-6)
    assert math.isclose(exp_ibp_loss(robust, adv, 0.25).item(), 2.0 ** 0.25 * 0.5 ** 0.75, rel_tol=1e-6)


def test_sabr_box_inside_attack_box_and_contains_projected_point():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 4, 4, generator=g)
    eps, radius = 0.2, torch.tensor(0.05).view(1, 1, 1, 1)
    attack = Box((x - eps).clamp(min=0), (x + eps).clamp(max=1))
    x_adv = attack.lower + torch.rand(x.shape, generator=g) * (attack.upper - attack.lower)
    small = sabr_box(x_adv, attack, radius, torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    assert bool((small.lower >= attack.lower - 1e-7).all() and (small.upper <= attack.upper + 1e-7).all())
    assert bool(((small.upper - small.lower) <= 2 * radius + 1e-7).all())
    assert bool(small.contains(x_adv.clamp(attack.lower + radius, attack.upper - radius), 1e-7).all())


def test_sabr_box_projection_prefers_upper_end_when_box_is_too_thin():
    """Where lower + r > upper - r (clipped attack box thinner than 2r) the centre is upper - r."""
    lower, upper = torch.tensor([[0.0]]), torch.tensor([[0.05]])
    small = sabr_box(torch.tensor([[0.0]]), Box(lower, upper), torch.tensor(0.1), torch.tensor(0.0), torch.tensor(1.0))
    assert torch.allclose(small.lower, torch.tensor([[0.0]])) and torch.allclose(small.upper, torch.tensor([[0.05]]))


def test_l1_penalty_counts_conv_and_linear_weights_only():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    expected = model[0].weight.abs().sum() + model[3].weight.abs().sum()
    assert torch.allclose(l1_penalty(model), expected)


def test_registry_dispatch_and_unknown_name():
    lb = torch.tensor([[0.5, -0.5]])
    adv = torch.tensor([[1.0, 0.2]])
    terms = LossTerms(lb, adv, ibp_loss(lb), torch.tensor(0.3))
    assert torch.allclose(get_loss("cc-ibp").combine(terms, 0.2), cc_ibp_loss(lb, adv, 0.2))
    assert torch.allclose(get_loss("mtl-ibp").combine(terms, 0.2), mtl_ibp_loss(terms.robust_loss, terms.adv_loss, 0.2))
    assert get_loss("sabr").small_box and not get_loss("cc-ibp").small_box
    assert set(LOSSES) == {"ibp", "cc-ibp", "mtl-ibp", "exp-ibp", "sabr"}
    with pytest.raises(ValueError, match="valid names"):
        get_loss("crown")

"""Max pooling: IBP and CROWN hold at reached points on random nets (chains and residual graphs), point boxes are
exact, and branch and bound refuses it with a clear reason while the verification cascade still bounds it."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from nets import random_box
from random_nets import assert_rounding_bound, reached_values
from torchcert.bounds import Box, alpha_crown, crown, crown_relu_bounds, ibp


def _pool_net(seed: int) -> nn.Sequential:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    k, s, p = rng.choice([(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
    side = 6
    out = (side + 2 * p - k) // s + 1
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(k, s, p),
                         nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * out * out, 3)
                         ).double().eval()


class PoolRes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.c1, self.c2 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1)
        self.pool, self.relu = nn.MaxPool2d(2), nn.ReLU()
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.relu(self.c1(x)))
        return self.fc(torch.flatten(self.relu(self.c2(h)) + h, 1))


@pytest.mark.parametrize("seed", range(8))
def test_max_pooling_bounds_hold(seed):
    model = _pool_net(seed) if seed < 6 else PoolRes().double().eval()
    shape = (1, 6, 6)
    box = random_box(seed, (2,) + shape, 0.1 + 0.3 * (seed % 3))
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    n, b, values, pre = reached_values(model, box, C, shape, seed)
    with torch.no_grad():
        lowers = {"ibp": ibp(model, box, C).lower}
        for neurons in ("unstable", "all"):
            got = crown(model, box, C, neurons=neurons, bound_upper=True)
            lowers[neurons] = got.lower
            assert bool((got.upper >= values - 1e-9).all()), neurons
        for j, (bx, z) in enumerate(zip(crown_relu_bounds(model, box), pre)):
            z = z.view((n, b) + tuple(bx.lower.shape[1:]))
            assert bool((z >= bx.lower - 1e-9).all() and (z <= bx.upper + 1e-9).all()), j
    lowers["alpha"] = alpha_crown(model, box, C, iterations=4).lower
    for name, lower in lowers.items():
        assert bool((lower <= values + 1e-9).all()), name
    point = Box(box.center, box.center)
    with torch.no_grad():
        torch.testing.assert_close(crown(model, point, C).lower, torch.einsum("bsk,bk->bs", C, model(box.center)))


def test_branch_and_bound_decides_max_pooling_and_refuses_padded_pools():
    """Branch and bound searches max pooling as ReLUs (``relu_form``); padded pooling is refused with the reason
    and the cascade leaves such samples undecided rather than guess."""
    from torchcert.bounds.relu_form import relu_form
    from torchcert.verify import BabSettings, branch_and_bound, verify_sample

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(3, 2, 3, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)).double().eval()
    x = torch.rand(3, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(relu_form(model, (1, 6, 6))(x), model(x), rtol=0, atol=0)
    box = Box(x[:1] - 0.3, x[:1] + 0.3)
    result = branch_and_bound(model, box, torch.tensor([[[1.0, -1.0, 0.0]]], dtype=torch.float64),
                              BabSettings(timeout=30))
    assert result.status in ("verified", "falsified")
    padded = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, padding=1), nn.Flatten(),
                           nn.Linear(2 * 3 * 3, 3)).double().eval()
    with pytest.raises(ValueError, match="max pooling as ReLUs only without padding"):
        branch_and_bound(padded, box, torch.tensor([[[1.0, -1.0, 0.0]]], dtype=torch.float64), BabSettings(timeout=5))
    label = int(padded(x[:1]).argmax())
    assert verify_sample(padded, box.lower, box.upper, label, timeout=5, pgd_steps=0).status in ("verified", "unknown")


def test_rounding_bound_holds_through_max_pooling():
    model64 = _pool_net(2)
    with torch.no_grad():
        for p in model64.parameters():
            p.mul_(5.0)
    model32 = _pool_net(2).float()
    model32.load_state_dict(model64.state_dict())
    assert_rounding_bound(model64, model32, random_box(2, (2, 1, 6, 6), 0.4), 30)


def test_crown_beats_ibp_somewhere_with_max_pooling():
    """The relaxation is not just IBP: on some box CROWN's bound is strictly tighter."""
    better = 0
    for seed in range(6):
        model = _pool_net(seed)
        box = random_box(seed, (2, 1, 6, 6), 0.05)
        C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            better += int((crown(model, box, C).lower > ibp(model, box, C).lower + 1e-9).sum())
    assert better > 0


def test_a_pool_registered_under_two_names_is_rewritten_everywhere():
    """A max pooling kept as an attribute and inside a Sequential is one module under two names: the ReLU form
    replaces it at both, so branch and bound's leaves are affine and its verdict is the MILP's."""
    from torchcert.bounds.relu_form import relu_form
    from torchcert.verify import BabSettings, branch_and_bound

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(3)
            self.pool = nn.MaxPool2d((1, 2))
            self.features = nn.Sequential(nn.Conv2d(1, 2, 3, 1, 1), nn.ReLU(), self.pool)
            self.fc = nn.Linear(2 * 4 * 2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.features(x), 1))

    model = Shared().double().eval()
    rewritten = relu_form(model, (1, 4, 4))
    assert not any(isinstance(m, nn.MaxPool2d) for _, m, _ in rewritten.operations)
    from verify.milp_graph import exact_min_margin_graph

    x = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    C = torch.tensor([[[1.0, -1.0]]], dtype=torch.float64) * (1 if model(x)[0, 0] > model(x)[0, 1] else -1)
    for eps in (0.05, 0.5):
        box = Box(x - eps, x + eps)
        exact = exact_min_margin_graph(model, box.lower, box.upper, C)
        result = branch_and_bound(model, box, C, BabSettings(timeout=60, attacks=False))
        assert result.status == ("verified" if exact > 0 else "falsified"), (eps, exact, result)
        assert result.lower_bound <= exact + 1e-7

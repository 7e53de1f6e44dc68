"""Any module torch.fx traces into supported operations is bounded like the equivalent nn.Sequential."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nets import random_box, sample_points
from random_nets import Normalised, assert_rounding_bound
from torchcert.bounds import Box, alpha_crown, crown, ibp
from torchcert.bounds.graph import operations, sequential_leaves
from torchcert.bounds.layers import has_rule
from torchcert.verify import BabSettings, branch_and_bound


class Functional(nn.Module):
    """Convs and a head with functional ReLU, ``x.view(x.size(0), -1)``, ``torch.flatten`` and ``x.shape[0]``."""

    def __init__(self, flatten: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.fc1, self.fc2 = nn.Linear(4 * 3 * 3, 6), nn.Linear(6, 3)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = self.block(x).relu()
        if self.flatten == "view":
            x = x.view(x.size(0), -1)
        elif self.flatten == "reshape":
            x = x.reshape(x.shape[0], -1)
        else:
            x = torch.flatten(x, 1)
        return self.fc2(torch.relu(F.dropout(self.fc1(x), 0.5, self.training)))

    def as_sequential(self) -> nn.Sequential:
        return nn.Sequential(self.conv1, nn.ReLU(), self.block, nn.ReLU(), nn.Flatten(), self.fc1, nn.ReLU(),
                             self.fc2)


def _model(flatten: str) -> Functional:
    torch.manual_seed(0)
    model = Functional(flatten).double()
    with torch.no_grad():
        model.block[1].running_mean.uniform_(-0.5, 0.5)
        model.block[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("flatten", ["view", "reshape", "torch.flatten"])
def test_functional_forward_is_bounded_like_its_sequential(flatten):
    model = _model(flatten)
    reference = model.as_sequential().eval()
    box = random_box(1, (2, 1, 6, 6), 0.3)
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    names = [name for name, _, _ in operations(model, has_rule)]
    assert names[:3] == ["conv1", "relu", "block.0"]
    with torch.no_grad():
        for fn in (ibp, crown):
            assert torch.equal(fn(model, box, C).lower, fn(reference, box, C).lower)
        values = torch.einsum("bsk,nbk->nbs", C, model(sample_points(box, 32, 0).flatten(0, 1)).view(64, 2, -1))
        assert bool((crown(model, box, C).lower <= values + 1e-9).all())
    torch.testing.assert_close(alpha_crown(model, box, C, iterations=3).lower,
                               alpha_crown(reference, box, C, iterations=3).lower)


def test_branch_and_bound_reads_the_traced_graph():
    model = _model("view")
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    label = int(model(x).argmax())
    C = torch.eye(3, dtype=torch.float64)[label].unsqueeze(0) - torch.eye(3, dtype=torch.float64)
    C = torch.cat([C[:label], C[label + 1:]]).unsqueeze(0)
    box = Box(x - 0.05, x + 0.05)
    a = branch_and_bound(model, box, C, BabSettings(timeout=20, attacks=False))
    b = branch_and_bound(model.as_sequential().eval(), box, C, BabSettings(timeout=20, attacks=False))
    assert a.status == b.status and a.status in ("verified", "falsified")


def test_traced_nested_sequential_equals_its_leaves():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), nn.Linear(4, 2))

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    traced = [(n.replace("inner.", ""), m, reads) for n, m, reads in operations(Wrapper(), has_rule)]
    assert traced == [(n, m, (i - 1,)) for i, (n, m) in enumerate(sequential_leaves(model))]


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.fc(x))


class Sigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


def test_unsupported_graphs_name_the_node():
    box = Box(torch.zeros(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="do not support the operation.*sigmoid.*supported functions"):
        ibp(Sigmoid(), box)

    class Reshape(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(3, 1)

    with pytest.raises(ValueError, match=r"view/reshape only to \(batch, -1\)"):
        ibp(Reshape(), box)


def test_constant_affine_operations_are_bounded_soundly():
    torch.manual_seed(0)
    model = Normalised().double().eval()
    box = random_box(2, (2, 2, 4, 4), 0.4)
    C = torch.randn(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    points = sample_points(box, 64, 0)
    with torch.no_grad():
        values = torch.einsum("bsk,nbk->nbs", C, model(points.flatten(0, 1)).view(128, 2, -1))
        point = crown(model, Box(box.lower, box.lower), C)
        torch.testing.assert_close(point.lower, torch.einsum("bsk,bk->bs", C, model(box.lower)))
        for fn in (ibp, crown):
            assert bool((fn(model, box, C).lower <= values + 1e-9).all()), fn.__name__

    class Residual2(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    with pytest.raises(ValueError, match="do not support the operation.*mul.*by constants"):
        ibp(Residual2(), Box(torch.zeros(1, 3), torch.ones(1, 3)))


def test_rounding_bound_covers_constant_affine_operations():
    torch.manual_seed(0)
    model64 = Normalised().double().eval()
    with torch.no_grad():
        model64.conv.weight.mul_(40)
    model32 = Normalised().eval()
    model32.load_state_dict(model64.state_dict())
    assert_rounding_bound(model64, model32, random_box(3, (2, 2, 4, 4), 0.4), 30)


def test_constants_that_do_not_broadcast_per_channel_are_refused():
    """``x + c`` with a 1-D ``c`` on a map broadcasts over the width, not the channels: refused, never misread."""

    class WidthBias(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("c", torch.arange(3.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.flatten(x + self.c, 1)

    box = Box(torch.zeros(1, 3, 3, 3), torch.ones(1, 3, 3, 3))
    with pytest.raises(ValueError, match="supported only as a scalar or one value per channel"):
        ibp(WidthBias(), box)


class ScaledConvs(nn.Module):
    """Constant scalings between convolutions: the patch path of CROWN passes them like BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 3)
        self.fc = nn.Linear(2 * 3 * 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x) * 2 - 0.1)
        x = F.relu(self.c2(x / 3) + 0.2)
        return self.fc(torch.flatten(F.relu(0.5 * self.c3(x)), 1))


def test_constant_affine_between_convolutions_takes_the_patch_path():
    torch.manual_seed(0)
    model = ScaledConvs().double().eval()
    box = random_box(4, (2, 1, 5, 5), 0.3)
    C = torch.randn(2, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    points = sample_points(box, 64, 1)
    with torch.no_grad():
        values = torch.einsum("bsk,nbk->nbs", C, model(points.flatten(0, 1)).view(128, 2, -1))
        for neurons in ("unstable", "all"):
            assert bool((crown(model, box, C, neurons=neurons).lower <= values + 1e-9).all())


class Padded(nn.Module):
    """``F.pad`` (zero and non-zero constants, uneven sides) and nn.ZeroPad2d between convolutions."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.c1, self.c2 = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)
        self.zero = nn.ZeroPad2d((1, 0, 2, 1))
        self.fc = nn.Linear(2 * 7 * 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c1(F.pad(x, (1, 1, 1, 1))))
        h = F.relu(self.c2(F.pad(h, (0, 1, 1, 0), value=0.5)))
        return self.fc(torch.flatten(self.zero(h), 1))


def test_padding_is_bounded_exactly_and_soundly():
    model = Padded().double().eval()
    box = random_box(6, (2, 1, 5, 5), 0.3)
    C = torch.randn(2, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    points = sample_points(box, 64, 2)
    with torch.no_grad():
        values = torch.einsum("bsk,nbk->nbs", C, model(points.flatten(0, 1)).view(128, 2, -1))
        for fn in (ibp, crown):
            assert bool((fn(model, box, C).lower <= values + 1e-9).all())
            torch.testing.assert_close(fn(model, Box(box.lower, box.lower), C).lower,
                                       torch.einsum("bsk,bk->bs", C, model(box.lower)))


def test_rounding_bound_and_branch_and_bound_through_padding():
    from torchcert.verify import BabSettings, branch_and_bound

    model64 = Padded().double().eval()
    model32 = Padded().eval()
    model32.load_state_dict(model64.state_dict())
    assert_rounding_bound(model64, model32, random_box(7, (2, 1, 5, 5), 0.3), 20, samples=32)
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    one = Box(x - 0.02, x + 0.02)
    result = branch_and_bound(model64, one, torch.tensor([[[1.0, -1.0]]], dtype=torch.float64),
                              BabSettings(timeout=20, attacks=False))
    with torch.no_grad():
        margin = float(model64(x)[0, 0] - model64(x)[0, 1])
    assert result.status in ("verified", "falsified") and result.lower_bound <= margin + 1e-9


def test_concatenation_along_other_dimensions_is_refused():
    class CatLast(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x], dim=-1)

    with pytest.raises(ValueError, match="torch.cat along dim 1"):
        ibp(CatLast(), Box(torch.zeros(1, 3), torch.ones(1, 3)))

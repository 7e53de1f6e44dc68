"""Any module torch.fx traces into supported operations is bounded like the equivalent nn.Sequential."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nets import random_box, sample_points
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
    names = [name for name, _ in operations(model, has_rule)]
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

    traced = [(n.replace("inner.", ""), m) for n, m in operations(Wrapper(), has_rule)]
    assert traced == sequential_leaves(model)


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
    with pytest.raises(ValueError, match="residual connections are not supported yet"):
        ibp(Residual(), box)
    with pytest.raises(ValueError, match="do not support the operation.*sigmoid.*supported functions"):
        ibp(Sigmoid(), box)

    class Reshape(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.view(3, 1)

    with pytest.raises(ValueError, match=r"view/reshape only to \(batch, -1\)"):
        ibp(Reshape(), box)

"""Networks with residual connections (the layer list as a DAG): every bound holds, and the DAG walk equals the
chain walk where both apply (float64)."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from nets import random_box, sample_points
from random_nets import assert_rounding_bound, matrix_net, reached_values
from torchcert.bounds import Box, alpha_crown, crown, crown_relu_bounds, ibp
from torchcert.bounds import dag
from torchcert.bounds.crown import final_bound, layer_bounds
from torchcert.bounds.layers import build_layers, chain


class ResNet(nn.Module):
    """Conv stem, ``blocks`` residual blocks (identity or 1x1 stride-2 conv shortcut, BatchNorm, a subtraction),
    and a head; drawn from ``seed``."""

    def __init__(self, seed: int, blocks: int = 2) -> None:
        super().__init__()
        rng = random.Random(seed)
        torch.manual_seed(seed)
        width = rng.choice([2, 3])
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.convs = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        self.strides, self.signs = [], []
        for _ in range(blocks):
            stride = rng.choice([1, 2])
            self.convs.append(nn.Sequential(nn.Conv2d(width, width, 3, stride, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                            nn.Conv2d(width, width, 3, 1, 1)))
            self.shortcuts.append(nn.Conv2d(width, width, 1, stride) if stride == 2 else nn.Identity())
            self.signs.append(rng.choice([1.0, -1.0]))
        side = 6
        for s in [2 if isinstance(m, nn.Conv2d) else 1 for m in self.shortcuts]:
            side = (side - 1) // s + 1
        self.fc1, self.fc2 = nn.Linear(width * side * side, 5), nn.Linear(5, 3)
        self.relu = nn.ReLU()  # one module called at every activation (its hooks see each call)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem(x))
        for conv, shortcut, sign in zip(self.convs, self.shortcuts, self.signs):
            x = self.relu(conv(x) + shortcut(x)) if sign > 0 else self.relu(shortcut(x) - conv(x))
        return self.fc2(self.relu(self.fc1(torch.flatten(x, 1))))


class DenseSkip(nn.Module):
    """An MLP whose hidden layer is added back twice (fan-out of one activation to three readers)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.a(x))
        g = self.relu(self.b(h) + h)
        return self.c(g - h + g)


def _case(seed: int, kind: str):
    if kind == "resnet":
        model, shape = ResNet(seed).double().eval(), (1, 6, 6)
    else:
        model, shape = DenseSkip(seed).double().eval(), (4,)
    box = random_box(seed, (2,) + shape, 0.05 + 0.3 * (seed % 3))
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return model, shape, box, C


@pytest.mark.parametrize("kind", ["resnet", "dense"])
@pytest.mark.parametrize("seed", range(6))
def test_every_bound_holds_on_residual_networks(seed, kind):
    model, shape, box, C = _case(seed, kind)
    assert not chain(build_layers(model, shape, torch.float64))
    n, b, values, pre = reached_values(model, box, C, shape, seed)
    with torch.no_grad():
        lowers = {"ibp": ibp(model, box, C).lower}
        for intermediate in ("crown", "ibp"):
            for neurons in ("unstable", "all", "hybrid"):
                got = crown(model, box, C, intermediate, neurons=neurons, bound_upper=True)
                lowers[f"{intermediate}-{neurons}"] = got.lower
                assert bool((got.upper >= values - 1e-9).all()), f"{intermediate}-{neurons} upper"
        bounds = crown_relu_bounds(model, box)
        for j, (bx, z) in enumerate(zip(bounds, pre)):
            z = z.view((n, b) + tuple(bx.lower.shape[1:]))
            assert bool((z >= bx.lower - 1e-9).all() and (z <= bx.upper + 1e-9).all()), f"relu {j}"
        terms = [torch.randn((2,) + tuple(bx.lower.shape), dtype=torch.float64) for bx in bounds]
        split = crown(model, box, C, "given", relu_bounds=bounds, preact_terms=terms).lower
    lowers["alpha"] = alpha_crown(model, box, C, iterations=5).lower
    for name, lower in lowers.items():
        assert bool((lower <= values + 1e-9).all()), name
    extra = sum(torch.einsum("sb...,nb...->nbs", t, z.view((n, b) + tuple(t.shape[2:]))) for t, z in zip(terms, pre))
    assert bool((split <= values + extra + 1e-9).all())
    assert bool((lowers["crown-unstable"] >= lowers["ibp"] - 1e-6).any())


@pytest.mark.parametrize("kind", ["resnet", "dense"])
def test_a_point_box_is_exact(kind):
    model, shape, box, C = _case(11, kind)
    point = Box(box.center, box.center)
    with torch.no_grad():
        expected = torch.einsum("bsk,bk->bs", C, model(box.center))
        for fn in (ibp, crown):
            torch.testing.assert_close(fn(model, point, C).lower, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_dag_walk_equals_the_chain_walk_on_chains(seed):
    """The generic DAG back-substitution, run on a chain, gives the chain engine's CROWN bounds."""
    model, shape = matrix_net(9000 + seed, "mixed")
    box = random_box(seed, (2,) + shape, 0.3)
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    layers = build_layers(model, shape, torch.float64)
    assert chain(layers)
    with torch.no_grad():
        reference = layer_bounds(layers, box, "crown", neurons="all")
        walked = dag.layer_bounds(layers, box, "crown", None, lambda pre: torch.ones_like(pre.lower, dtype=torch.bool))
        for a, b in zip(walked, reference):
            torch.testing.assert_close(a.lower, b.lower, rtol=1e-9, atol=1e-9)
            torch.testing.assert_close(a.upper, b.upper, rtol=1e-9, atol=1e-9)
        A = C.transpose(0, 1).reshape((2, 2) + tuple(layers[-1].out_shape))
        torch.testing.assert_close(dag.final_bound(layers, box, A, reference).t(),
                                   final_bound(layers, box, C, reference), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["resnet", "dense"])
def test_rounding_bound_holds_on_residual_networks(kind):
    model64, shape, box, _ = _case(5, kind)
    with torch.no_grad():
        for p in model64.parameters():
            p.mul_(4.0)
    model32 = (ResNet(5) if kind == "resnet" else DenseSkip(5)).eval()
    model32.load_state_dict(model64.state_dict())
    assert_rounding_bound(model64, model32, box, 20)


class TinySkip(nn.Module):
    """Two inputs, a residual hidden layer: small enough for an exact answer by branch and bound."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.c = nn.Linear(2, 5), nn.Linear(5, 5), nn.Linear(5, 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.a(x))
        return self.c(self.relu(self.b(h) - h))


@pytest.mark.parametrize("seed", range(4))
def test_branch_and_bound_on_residual_networks(seed):
    """Bound mode runs to the exact minimum (every leaf an LP over the DAG's affine pieces): it matches a dense
    grid's minimum to the grid's resolution and never exceeds it; verify_sample's verdicts are consistent."""
    from torchcert.verify import BabSettings, branch_and_bound, verify_sample

    model = TinySkip(seed).double().eval()
    box = Box(torch.full((1, 2), -1.0, dtype=torch.float64), torch.full((1, 2), 1.0, dtype=torch.float64))
    C = torch.tensor([[[1.0, -1.0]]], dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 401, dtype=torch.float64)] * 2, indexing="ij"), -1)
    with torch.no_grad():
        margins = (model(grid.view(-1, 2)) @ C[0].T).view(-1)
    result = branch_and_bound(model, box, C, BabSettings(timeout=60, bound_mode=True))
    assert result.status != "timeout"
    assert result.lower_bound <= float(margins.min()) + 1e-9
    assert result.lower_bound >= float(margins.min()) - 0.05
    sample = verify_sample(model, box.lower, box.upper, 0, timeout=30)
    if sample.status == "verified":
        assert float(margins.min()) > 0
    if sample.status == "falsified":
        with torch.no_grad():
            logits = model(sample.counterexample)
        assert float(logits[0, 1]) > float(logits[0, 0])


def test_graphs_that_are_not_the_modules_function_are_refused():
    """In-place operations on an activation read again, alpha in torch.add, tracing that loses an alias: refused;
    a branch nothing reads is dropped; a ReLU on the network input gets its exact box."""
    import torch.nn.functional as F

    box = Box(-torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64))

    class Net(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b, self.kind = nn.Linear(3, 3), nn.Linear(3, 2), kind

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            if self.kind == "inplace":
                return self.b(F.relu(h, inplace=True) + h)
            if self.kind == "alpha":
                return self.b(torch.add(h, x, alpha=2))
            if self.kind == "alias":
                g = h
                g += 1
                return self.b(g + h)
            if self.kind == "dead":
                F.relu(self.a(h))
                return self.b(h + x)
            return self.b(F.relu(h) + F.relu(x))  # "input relu"

    for kind, message in (("inplace", "in-place"), ("alpha", "alpha"), ("alias", "does not compute")):
        with pytest.raises(ValueError, match=message):
            ibp(Net(kind).double().eval(), box)
    C = torch.ones(1, 1, 2, dtype=torch.float64)
    for kind in ("dead", "input relu"):
        model = Net(kind).double().eval()
        point = Box(box.center + 0.3, box.center + 0.3)
        torch.testing.assert_close(crown(model, point, C).lower, model(point.lower).sum(1, keepdim=True))
        assert bool((crown(model, box, C).lower <= (model(sample_points(box, 64, 0).flatten(0, 1)) @ C[0].T).min()
                     + 1e-9).all())
    with pytest.raises(ValueError, match="preact_terms needs one entry per ReLU"):
        crown(Net("dead").double().eval(), box, C, preact_terms=[None, None])


class Inception(nn.Module):
    """Two branches concatenated along channels (``torch.cat(..., dim=1)``), then a dense concat of features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(8)
        self.a, self.b = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 3, 1)
        self.c = nn.Conv2d(5, 2, 3)
        self.fc1, self.fc2 = nn.Linear(2 * 4 * 4, 4), nn.Linear(4 + 32, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.relu(self.a(x)), self.relu(self.b(x))], dim=1)
        f = torch.flatten(self.relu(self.c(h)), 1)
        return self.fc2(torch.cat((self.relu(self.fc1(f)), f), 1))


def test_concatenation_is_bounded_exactly_and_soundly():
    from torchcert.verify import BabSettings, branch_and_bound

    model = Inception().double().eval()
    shape = (1, 6, 6)
    box = random_box(8, (2,) + shape, 0.3)
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    n, b, values, pre = reached_values(model, box, C, shape, 8)
    with torch.no_grad():
        for neurons in ("unstable", "all"):
            assert bool((crown(model, box, C, neurons=neurons).lower <= values + 1e-9).all())
        assert bool((ibp(model, box, C).lower <= values + 1e-9).all())
        for bx, z in zip(crown_relu_bounds(model, box), pre):
            z = z.view((n, b) + tuple(bx.lower.shape[1:]))
            assert bool((z >= bx.lower - 1e-9).all() and (z <= bx.upper + 1e-9).all())
        point = Box(box.center, box.center)
        torch.testing.assert_close(crown(model, point, C).lower, torch.einsum("bsk,bk->bs", C, model(box.center)))
    model32 = Inception().eval()
    model32.load_state_dict(model.state_dict())
    assert_rounding_bound(model, model32, box, 20, samples=32)
    one = Box(box.center[:1] - 0.01, box.center[:1] + 0.01)
    result = branch_and_bound(model, one, C[:1], BabSettings(timeout=20, attacks=False))
    assert result.status in ("verified", "falsified")

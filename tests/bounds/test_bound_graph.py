"""A BoundGraph (the network traced once) gives the same bounds as the module traced at every call, follows weight
updates and copies, checks its trace once per shape, and refuses a module whose submodules changed."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from torchcert.bounds import BoundGraph, Box, alpha_crown, crown, ibp
from torchcert.bounds.layers import build_layers

from test_residual import ResNet, _case


@pytest.mark.parametrize("kind", ["resnet", "dense"])
def test_bounds_through_a_bound_graph_equal_the_plain_module(kind):
    model, _, box, C = _case(3, kind)
    graph = BoundGraph(model)
    for method in (ibp, crown, lambda m, b, c: crown(m, b, c, intermediate="ibp"),
                   lambda m, b, c: alpha_crown(m, b, c, iterations=3)):
        torch.testing.assert_close(method(graph, box, C).lower, method(model, box, C).lower, rtol=0, atol=0)
    torch.testing.assert_close(graph(box.center), model(box.center))


def test_a_sequential_graph_equals_its_module():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4)).double()
    model.eval()
    box = Box(torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.ones(2, 1, 4, 4, dtype=torch.float64))
    graph = BoundGraph(model)
    assert not graph.traced
    C = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
    torch.testing.assert_close(crown(graph, box, C).lower, crown(model, box, C).lower, rtol=0, atol=0)


def test_weight_updates_and_copies_are_followed():
    """The graph holds the module's own submodules: a weight change is seen; a deep copy reads the copy."""
    model, _, box, C = _case(1, "resnet")
    graph = BoundGraph(model)
    before = ibp(graph, box, C).lower
    twin = copy.deepcopy(graph)
    with torch.no_grad():
        model.fc2.weight.mul_(3.0)
    after = ibp(graph, box, C).lower
    torch.testing.assert_close(after, ibp(model, box, C).lower, rtol=0, atol=0)
    assert not torch.equal(after, before)
    torch.testing.assert_close(ibp(twin, box, C).lower, before, rtol=0, atol=0)  # the copy kept its weights


def test_what_the_trace_depends_on_is_followed():
    """A replaced submodule, a scalar attribute the forward branches on, a hook: the graph is traced (and checked)
    again, so it gives the plain module's bounds, or refuses as the plain module does."""
    model, _, box, C = _case(2, "resnet")
    graph = BoundGraph(model)
    ibp(graph, box, C)
    model.fc2 = nn.Linear(model.fc2.in_features, 3).double()
    torch.testing.assert_close(crown(graph, box, C).lower, crown(model, box, C).lower, rtol=0, atol=0)

    class Switch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.flip = nn.Linear(2, 2), False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return -self.fc(x) if self.flip else self.fc(x)

    net = Switch().double().eval()
    graph, small = BoundGraph(net), Box(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    before = ibp(graph, small).lower
    net.flip = True
    torch.testing.assert_close(ibp(graph, small).lower, ibp(net, small).lower, rtol=0, atol=0)
    assert not torch.equal(ibp(graph, small).lower, before)
    net.fc.register_forward_hook(lambda module, inputs, output: output + 1)
    for bounded in (net, graph):
        with pytest.raises(ValueError, match="does not compute"):
            ibp(bounded, small)


def test_a_forward_that_branches_on_training_mode_is_refused_in_training_mode():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.b(h * 0.01 if self.training else h)

    net = Branchy().double().train()
    graph = BoundGraph(net)
    small = Box(torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="training and in eval mode"):
        ibp(graph, small)
    net.eval()
    torch.testing.assert_close(crown(graph, small, torch.eye(2).double()[None]).lower,
                               crown(net, small, torch.eye(2).double()[None]).lower, rtol=0, atol=0)


def test_the_trace_is_checked_once_per_shape_even_in_training_mode(monkeypatch):
    """The aliasing case (``g = h; g += 1``) traces to another function; a training-mode graph still refuses it,
    and a sound graph is compared with the module's forward once per input shape and dtype."""
    from torchcert.bounds import layers

    class Alias(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            g = h
            g += 1
            return self.b(g + h)

    box = Box(-torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="does not compute"):
        ibp(BoundGraph(Alias().train()), box)

    calls = []
    original = layers.check_traced
    monkeypatch.setattr(layers, "check_traced", lambda *args: calls.append(args[2:]) or original(*args))
    model, shape, box, C = _case(0, "resnet")
    graph = BoundGraph(model)
    for _ in range(3):
        ibp(graph, box, C)
        crown(graph, box, C)
    assert calls == [(shape, torch.float64)]
    build_layers(graph, (1, 8, 8), torch.float64)
    assert calls[-1] == ((1, 8, 8), torch.float64) and len(calls) == 2


def test_wrapping_twice_wraps_the_network_once():
    model = ResNet(0).double().eval()
    assert BoundGraph(BoundGraph(model)).net is model


class Scaled(nn.Module):
    """``fc((x - mean) / std * scale)`` with buffers and a learnable parameter read by the traced forward."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.1, -0.2, 0.3]))
        self.register_buffer("std", torch.tensor([0.5, 1.0, 2.0]))
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu((x - self.mean) / self.std * self.scale))


def test_constants_read_by_the_forward_are_live():
    """Buffers reloaded, a parameter changed by an optimiser, a dtype change: the graph reads them at each bound
    (it equals the plain module's bounds), and the parameter gets a gradient through the bounds."""
    torch.manual_seed(0)
    model = Scaled().eval()
    graph = BoundGraph(model)
    box = Box(-torch.ones(2, 3), torch.ones(2, 3))
    ibp(graph, box)
    model.load_state_dict({**model.state_dict(), "mean": torch.tensor([-2.0, -3.0, -4.0]),
                           "std": torch.tensor([0.1, 0.2, 0.3])})
    with torch.no_grad():
        model.scale.fill_(10.0)
    for method in (ibp, crown):
        C = torch.eye(2).expand(2, 2, 2)
        torch.testing.assert_close(method(graph, box, C).lower, method(model, box, C).lower, rtol=0, atol=0)
    ibp(graph, box).lower.sum().backward()
    assert model.scale.grad is not None and float(model.scale.grad.abs()) > 0
    graph.double()  # buffers are replaced by .to(): still read live
    box64 = Box(box.lower.double(), box.upper.double())
    torch.testing.assert_close(ibp(graph, box64).lower, ibp(model, box64).lower, rtol=0, atol=0)

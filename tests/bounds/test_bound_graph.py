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


def test_a_changed_module_is_refused():
    model, _, box, C = _case(2, "resnet")
    graph = BoundGraph(model)
    ibp(graph, box, C)
    model.fc2 = nn.Linear(model.fc2.in_features, 3).double()
    with pytest.raises(ValueError, match="modules changed"):
        ibp(graph, box, C)


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

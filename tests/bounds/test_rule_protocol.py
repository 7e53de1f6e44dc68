"""Every rule is a ``Rule``; every hand-written back-substitution of an affine rule equals the VJP of its forward
(the fallback); a rule with only a forward (ConvTranspose2d) is bounded soundly through every method."""
from __future__ import annotations

import copy
import random

import pytest
import torch
from torch import nn

from nets import sample_points
from random_nets import assert_rounding_bound, dense_mlp
from torchcert.bounds import Box, alpha_crown, crown, ibp
from torchcert.bounds.layers import RULES, build_layers
from torchcert.bounds.rules import conv_transpose, vjp
from torchcert.bounds.rules._window import expand
from torchcert.bounds.rules.affine import ChannelAffine
from torchcert.bounds.rules.pad import ConstantPad
from torchcert.bounds.rules.protocol import MultiInputRule, Rule


def test_every_rule_in_the_table_implements_the_protocol():
    for kind, rule in RULES.items():
        assert isinstance(rule, MultiInputRule if hasattr(rule, "forward_many") else Rule), kind


def _bn(channels: int, gen: torch.Generator) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels).double().eval()
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.randn(channels, generator=gen, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(channels, generator=gen, dtype=torch.float64) + 0.5)
    return bn


def _affine_modules(seed: int):
    """(module, in_shape) pairs of every affine single-input rule, with odd geometry drawn from ``seed``."""
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cin, side = rng.choice([2, 4]), rng.choice([5, 6, 7])
    groups = rng.choice([1, 2])
    return [
        (nn.Linear(7, 5).double(), (7,)),
        (nn.Conv2d(cin, 4, rng.choice([1, 2, 3]), rng.choice([1, 2]), rng.choice([0, 1]),
                   dilation=rng.choice([1, 2]), groups=groups).double(), (cin, side, side)),
        (nn.AvgPool2d(rng.choice([2, 3]), rng.choice([1, 2]), padding=rng.choice([0, 1])), (cin, side, side)),
        (_bn(cin, gen), (cin, side, side)),
        (ChannelAffine(torch.randn(cin, 1, 1, generator=gen), torch.randn(cin, 1, 1, generator=gen)),
         (cin, side, side)),
        (ConstantPad((1, 0, 2, 1), rng.choice([0.0, 0.7])), (cin, side, side)),
        (nn.Flatten(), (cin, side, side)),
        (nn.ConvTranspose2d(cin, 4, 3, 2, 1, output_padding=1, groups=groups).double(), (cin, side, side)),
    ]


@pytest.mark.parametrize("seed", range(4))
def test_hand_written_backwards_equal_the_vjp_of_the_forward(seed):
    """For whole-map and windowed coefficients: ``A M`` and ``A b`` of each rule equal ``torch.func.vjp``'s; the
    interval ``error_backward`` equals the VJP of the map and of its ``|W|`` map."""
    for module, in_shape in _affine_modules(seed):
        layer = build_layers(nn.Sequential(module), in_shape, torch.float64)[0]
        rule, op, out_shape = layer.rule, layer.op, layer.out_shape
        gen = torch.Generator().manual_seed(seed)
        windows = [((0, 0) if len(out_shape) == 3 else None, out_shape)]
        if len(out_shape) == 3 and out_shape[1] > 2:  # a window of the map, as the patch rows leave it
            windows.append(((1, 0), (out_shape[0], out_shape[1] - 2, out_shape[2])))
        for offset, shape in windows:
            A = torch.randn((3, 2) + tuple(shape), generator=gen, dtype=torch.float64)
            moved, bias, moved_offset = rule.backward(op, A, offset, in_shape)
            got = expand(moved, moved_offset, in_shape)[0]
            want, want_bias, _ = vjp.backward(rule.forward, op, A, offset, in_shape, out_shape)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"{module} backward")
            torch.testing.assert_close(bias, want_bias, rtol=1e-10, atol=1e-12, msg=f"{module} bias")
        center = torch.randn((3, 2) + tuple(out_shape), generator=gen, dtype=torch.float64)
        radius = torch.rand((3, 2) + tuple(out_shape), generator=gen, dtype=torch.float64)
        pre = Box(-torch.ones((2,) + tuple(in_shape), dtype=torch.float64), torch.ones((2,) + tuple(in_shape)).double())
        c_in, r_in = rule.error_backward(op, center, radius, pre, torch.zeros_like(pre.lower))
        torch.testing.assert_close(c_in, vjp.backward(rule.forward, op, center, windows[0][0], in_shape,
                                                      out_shape)[0], rtol=1e-10, atol=1e-12)
        # |M|^T r: the VJP of the radius map of IBP (x -> the radius image of a box of radius x)
        radius_map = lambda o, x: rule.ibp(o, torch.zeros_like(x), x)[1]  # noqa: E731
        torch.testing.assert_close(r_in, vjp.transpose(radius_map, op, radius, in_shape), rtol=1e-10, atol=1e-12)


def test_gradients_flow_through_the_vjp_backward():
    """CROWN-IBP training differentiates bounds w.r.t. weights: the VJP path gives the hand-written path's
    gradients."""
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, 2, 1).double()
    from torchcert.bounds.rules import conv as conv_rule

    A = torch.randn(2, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    grads = []
    for path in ("hand", "vjp"):
        op = conv_rule.from_module(conv, (2, 6, 6), torch.float64)
        if path == "hand":
            moved, bias, offset = conv_rule.backward(op, A, (0, 0), (2, 6, 6))
            moved = expand(moved, offset, (2, 6, 6))[0]
        else:
            moved, bias, _ = vjp.backward(conv_rule.forward, op, A, (0, 0), (2, 6, 6), (3, 3, 3))
        total = (moved ** 2).sum() + bias.sum()
        grads.append(torch.autograd.grad(total, [conv.weight, conv.bias, A]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


class Decoder(nn.Module):
    """Conv, ReLU, a transposed conv back up, a residual sum with the input, ReLU, a dense head."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        rng = random.Random(seed)
        torch.manual_seed(seed)
        groups = rng.choice([1, 2])
        self.down = nn.Conv2d(2, 4, 3, 2, 1)
        self.up = nn.ConvTranspose2d(4, 2, 3, 2, 1, output_padding=1, groups=groups, dilation=1)
        self.head = nn.Linear(2 * 6 * 6, 3)
        self.residual = rng.choice([True, False])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(torch.relu(self.down(x)))
        h = torch.relu(h + x) if self.residual else torch.relu(h)
        return self.head(torch.flatten(h, 1))


@pytest.mark.parametrize("seed", range(6))
def test_transposed_convolution_is_bounded_soundly(seed):
    model = Decoder(seed).double().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, 6, 6, generator=gen, dtype=torch.float64)
    box = Box(x - 0.2, x + 0.2)
    C = torch.randn(2, 2, 3, generator=gen, dtype=torch.float64)
    points = sample_points(box, 128, seed)
    with torch.no_grad():
        values = torch.einsum("nbk,bsk->nbs", model(points.flatten(0, 1)).view(points.shape[0], 2, 3), C)
    floor = values.min(0).values
    ib = ibp(model, box, C).lower
    cr = crown(model, box, C).lower
    al = alpha_crown(model, box, C, iterations=5).lower.detach()
    for bound in (ib, cr, al, crown(model, box, C, intermediate="ibp").lower):
        assert bool((bound <= floor + 1e-9).all()), (bound, floor)
    point = crown(model, Box(x, x), C).lower
    torch.testing.assert_close(point, torch.einsum("bk,bsk->bs", model(x), C), rtol=1e-9, atol=1e-9)
    model32 = copy.deepcopy(model).float()
    assert_rounding_bound(model, model32, box, 1.0)


def test_branch_and_bound_through_a_transposed_convolution_matches_the_milp():
    """Exact leaves on a chain with a transposed convolution: BaB's verdict equals the MILP's (dense equivalent)."""
    pytest.importorskip("scipy")
    from torchcert.bounds import margin_matrix
    from torchcert.verify.bab import BabSettings, branch_and_bound
    from verify.milp import exact_min_margin

    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, 2, 1), nn.ReLU(), nn.ConvTranspose2d(2, 1, 2, 2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16, 3)).double().eval()
    x = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    C = margin_matrix(model(x).argmax(1), 3).double()
    mlp = dense_mlp(model, (1, 4, 4))
    for eps in (0.02, 0.1, 0.3):
        box = Box(x - eps, x + eps)
        exact = exact_min_margin(mlp, box.lower.flatten(1), box.upper.flatten(1), C)
        result = branch_and_bound(model, box, C, BabSettings(timeout=60, attacks=False))
        assert result.status == ("verified" if exact > 0 else "falsified"), (eps, exact, result)
        assert result.lower_bound <= exact + 1e-7


def test_a_module_called_with_more_than_its_input_is_refused():
    class Sized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.ConvTranspose2d(1, 1, 3, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.up(x, output_size=[6, 6]).flatten(1)

    box = Box(torch.zeros(1, 1, 3, 3), torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="called on one tensor and nothing else"):
        ibp(Sized(), box)

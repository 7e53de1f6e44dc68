"""Identities and hand-computed cases of the bounds."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nets import conv_net, mlp, random_box
from torchcert.bounds import Box, alpha_crown, crown, ibp, ibp_with_relu_inputs, margin_matrix

SETTINGS = settings(max_examples=25, deadline=None)


def test_margin_matrix_rows_are_label_minus_others_in_increasing_order():
    C = margin_matrix(torch.tensor([1, 0]), 3)
    assert torch.equal(C[0], torch.tensor([[-1.0, 1.0, 0.0], [0.0, 1.0, -1.0]]))
    assert torch.equal(C[1], torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]]))


def test_relu_of_interval_by_hand():
    """f(x) = relu(x) - relu(x)/2 ... on [-1, 2]: chord slope 2/3, intercept 2/3; lower slope 1."""
    model = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)).double()
    with torch.no_grad():
        model[0].weight.fill_(1.0), model[0].bias.fill_(0.0)
        model[2].weight.fill_(1.0), model[2].bias.fill_(0.0)
    box = Box(torch.tensor([[-1.0]], dtype=torch.float64), torch.tensor([[2.0]], dtype=torch.float64))
    C = torch.ones(1, 1, 1, dtype=torch.float64)
    b = crown(model, box, C, bound_upper=True)
    assert b.lower.item() == pytest.approx(-1.0) and b.upper.item() == pytest.approx(2.0)
    with torch.no_grad():
        model[2].weight.fill_(-1.0)
    b = crown(model, box, C, bound_upper=True)
    # lower: -(2/3 x + 2/3) at x = 2 -> -2; upper: -(1 * x) at x = -1 -> 1 (the adaptive lower line)
    assert b.lower.item() == pytest.approx(-2.0) and b.upper.item() == pytest.approx(1.0)
    assert ibp(model, box, C).lower.item() == pytest.approx(-2.0)
    assert alpha_crown(model, box, C, iterations=20, lr=0.2).lower.item() == pytest.approx(-2.0)


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from(["conv", "mlp"]))
def test_zero_width_box_gives_the_output(seed, kind):
    model = conv_net(seed, bn=True) if kind == "conv" else mlp(seed, (4, 6, 5, 3))
    x = random_box(seed, (2, 2, 6, 6) if kind == "conv" else (2, 4), 0.0).lower
    C = torch.randn(2, 2, 3, dtype=torch.float64)
    expected = torch.einsum("bsk,bk->bs", C, model(x))
    for b in (ibp(model, Box(x, x), C), crown(model, Box(x, x), C, bound_upper=True),
              crown(model, Box(x, x), C, intermediate="ibp", bound_upper=True)):
        torch.testing.assert_close(b.lower, expected)
        torch.testing.assert_close(b.upper, expected)
    torch.testing.assert_close(alpha_crown(model, Box(x, x), C, iterations=2).lower, expected)


@SETTINGS
@given(st.integers(0, 10_000), st.floats(0.01, 2.0))
def test_single_affine_layer_is_exact(seed, width):
    model = mlp(seed, (5, 4))
    box = random_box(seed, (3, 5), width)
    C = torch.randn(3, 2, 4, dtype=torch.float64)
    W, bias = C @ model[0].weight, C @ model[0].bias
    exact_lower = (W @ box.center.unsqueeze(-1)).squeeze(-1) + bias - (W.abs() @ box.radius.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ibp(model, box, C).lower, exact_lower)
    torch.testing.assert_close(crown(model, box, C).lower, exact_lower)


@SETTINGS
@given(st.integers(0, 10_000), st.floats(0.01, 1.0), st.floats(0.0, 1.0))
def test_shrinking_the_box_never_loosens_ibp(seed, width, shrink):
    model = conv_net(seed, bn=True)
    box = random_box(seed, (2, 2, 6, 6), width)
    inner = Box.from_center_radius(box.center, shrink * box.radius)
    C = torch.randn(2, 2, 3, dtype=torch.float64)
    outer_b, inner_b = ibp(model, box, C), ibp(model, inner, C)
    assert torch.all(inner_b.lower >= outer_b.lower - 1e-12) and torch.all(inner_b.upper <= outer_b.upper + 1e-12)
    _, outer_pre = ibp_with_relu_inputs(model, box)
    _, inner_pre = ibp_with_relu_inputs(model, inner)
    for o, i in zip(outer_pre, inner_pre):
        assert torch.all(i.lower >= o.lower - 1e-12) and torch.all(i.upper <= o.upper + 1e-12)


def test_merging_c_is_tighter_than_bounding_logits():
    model = mlp(3, (4, 8, 3))
    box = random_box(3, (4, 4), 0.5)
    C = margin_matrix(torch.tensor([0, 1, 2, 0]), 3).double()
    merged, logits = ibp(model, box, C), ibp(model, box)
    naive = torch.einsum("bsk,bk->bs", C.clamp(min=0), logits.lower) + torch.einsum("bsk,bk->bs", C.clamp(max=0), logits.upper)
    assert torch.all(merged.lower >= naive - 1e-12) and torch.any(merged.lower > naive + 1e-6)


def test_unsupported_module_is_a_clear_error():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    with pytest.raises(ValueError, match="Tanh.*supported: .*Conv2d"):
        ibp(model, Box(torch.zeros(1, 2), torch.ones(1, 2)))


def test_float32_and_float64_follow_the_input():
    model = mlp(0, (3, 4, 2)).float()
    box32 = Box(torch.zeros(1, 3), torch.ones(1, 3))
    assert ibp(model, box32).lower.dtype == torch.float32
    box64 = Box(box32.lower.double(), box32.upper.double())
    assert crown(model, box64, torch.eye(2, dtype=torch.float64).unsqueeze(0)).lower.dtype == torch.float64


def test_input_box_takes_per_channel_limits_and_refuses_bad_ones():
    """``data_min``/``data_max`` of shape (C,) are per channel, like ``std`` (they used to broadcast over width)."""
    from torchcert.bounds import input_box

    std = torch.tensor([0.25, 0.5, 1.0])
    low, high = -0.5 / std, 0.5 / std
    x = torch.zeros(2, 3, 3, 3)
    a = input_box(x, 0.9, None, std, low, high)
    b = input_box(x, 0.9, None, std, low.view(1, -1, 1, 1), high.view(1, -1, 1, 1))
    assert torch.equal(a.lower, b.lower) and torch.equal(a.upper, b.upper)
    assert torch.equal(a.lower[:, 0], torch.full((2, 3, 3), -2.0))
    with pytest.raises(ValueError, match="channels"):
        input_box(x, 0.1, None, std, torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        input_box(x, 0.1, None, std, torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        input_box(x, -0.1, None, std, low, high)

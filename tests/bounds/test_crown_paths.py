"""The fast CROWN paths agree with the plain rule-by-rule back-substitution (float64).

Feature-map neurons are bounded with per-position patches (``patches``: first conv by indexing, stride-2
transposed convolutions in phases, channels-last rows); here every neuron is also bounded one at a time
through the rules' own ``backward`` (``backsub.lower_bound`` on a full-map unit row), with the same
relaxations, and the two must agree. Chunk sizes must not change any bound.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nets import conv_net, mlp, random_box
from torchcert.bounds import Box, crown, crown_relu_bounds
from torchcert.bounds.backsub import lower_bound, relu_positions
from torchcert.bounds.layers import build_layers
from torchcert.bounds.patches import lower_bound as patch_lower_bound, shared_unit_relu_rows, unit_conv_rows
from torchcert.bounds.rules import conv, relu


def _cnn(seed: int, size: int = 8) -> nn.Sequential:
    """Conv-BN-ReLU blocks (stride 1 and 2, groups 1) like cnn_7layer, then a small dense head."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, 1, 1), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 3, 3, 1, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(3 * ((size + 1) // 2) ** 2, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=gen, dtype=torch.float64))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen, dtype=torch.float64))
    return model.eval()


def _one_by_one(layers, box: Box, bounds) -> list:
    """Bounds of every ReLU input, each neuron by its own full-map back-substitution (rules' backward)."""
    out = [bounds[0]]
    positions = relu_positions(layers)
    relax = [relu.relaxation(b) for b in bounds]
    for j in range(1, len(positions)):
        shape = tuple(bounds[j].lower.shape[1:])
        n = bounds[j].lower[0].numel()
        eye = torch.eye(n, dtype=torch.float64).view((n, 1) + shape).expand((n, box.lower.shape[0]) + shape)
        offset = (0, 0) if len(shape) == 3 else None
        A = torch.cat([eye, -eye])
        lb = lower_bound(layers[:positions[j]], A, offset, box, relax[:j])
        out.append(Box(lb[:n].t().reshape(bounds[j].lower.shape), -lb[n:].t().reshape(bounds[j].lower.shape)))
    return out


@pytest.mark.parametrize("seed,size", [(0, 8), (1, 8), (2, 7)])
def test_patch_bounds_equal_one_neuron_at_a_time(seed, size):
    """Odd map sizes make the stride-2 windows crop unevenly at the two borders."""
    model = _cnn(seed, size)
    box = random_box(seed, (2, 2, size, size), 0.3)
    with torch.no_grad():
        fast = crown_relu_bounds(model, box, neurons="all")
        layers = build_layers(model, (2, size, size), torch.float64)
        slow = _one_by_one(layers, box, fast)
    unstable = sum(int(relu.unstable(b).sum()) for b in fast[1:])
    assert unstable > 0, "the case must have unstable neurons to be a test of the relaxation"
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a.lower, b.lower, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(a.upper, b.upper, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["cnn", "conv_net", "mlp"])
def test_chunk_size_does_not_change_bounds(kind):
    if kind == "cnn":
        model, box = _cnn(3), random_box(3, (2, 2, 8, 8), 0.3)
    elif kind == "conv_net":
        model, box = conv_net(3, bn=True), random_box(3, (2, 2, 6, 6), 0.3)
    else:
        model, box = mlp(3, (4, 9, 7, 3)), random_box(3, (2, 4), 0.5)
    C = torch.randn(2, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = crown(model, box, C, neurons="all", bound_upper=True)
        for chunk in (1, 3):
            got = crown(model, box, C, neurons="all", bound_upper=True, chunk=chunk)
            torch.testing.assert_close(got.lower, ref.lower, rtol=1e-10, atol=1e-10)
            torch.testing.assert_close(got.upper, ref.upper, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel,dilation", [((3, 3), 1), ((1, 1), 1), ((1, 3), 1), ((3, 1), 1), ((5, 3), 1),
                                             ((3, 3), 2), ((2, 2), 1)])
@pytest.mark.parametrize("cin,cout,stride,size", [(3, 5, 1, 4), (2, 6, 1, 1), (4, 5, 2, 3), (3, 4, 2, 2)])
def test_transposed_convolution_paths(cin, cout, stride, size, kernel, dilation):
    """``conv.transpose`` (GEMM + shifted adds onto ``cin <= FEW_CHANNELS`` channels; stride 2 in phases) equals
    ``conv_transpose2d`` on channels-last coefficients, for kernels with size-1 dimensions and dilation too."""
    gen = torch.Generator().manual_seed(cin * 10 + cout)
    weight = torch.randn(cout, cin, *kernel, dtype=torch.float64, generator=gen)
    op = conv.make(weight, torch.zeros(cout, dtype=torch.float64), stride, 1, dilation, 1)
    A = torch.randn(7, cout, size, size, dtype=torch.float64, generator=gen).contiguous(
        memory_format=torch.channels_last)
    expected = torch.nn.functional.conv_transpose2d(A, weight, None, stride, dilation=dilation)
    torch.testing.assert_close(conv.transpose(op, A), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("relu_index,size", [(1, 7), (2, 7), (3, 8)])
def test_shared_kernel_rows_equal_unit_rows(relu_index, size):
    """The fused first step (shared kernels relaxed by broadcasting, used when every position of a chunk
    bounds the same channels) equals unit rows followed by the ReLU step, on a chunk mixing all border
    classes (so windows are masked, not only cropped)."""
    model = _cnn(relu_index, size)
    box = random_box(relu_index, (2, 2, size, size), 0.3)
    layers = build_layers(model, (2, size, size), torch.float64)
    with torch.no_grad():
        bounds = crown_relu_bounds(model, box, neurons="all")
    relax = [relu.relaxation(b) for b in bounds[:relu_index]]
    sub = layers[:relu_positions(layers)[relu_index]]
    assert sub[-1].rule is conv and sub[-2].rule is relu
    channels, (h, w) = torch.arange(sub[-1].out_shape[0]), sub[-1].out_shape[1:]
    b, y, x = torch.meshgrid(torch.arange(2), torch.arange(h), torch.arange(w), indexing="ij")
    where = (b.flatten(), y.flatten(), x.flatten())
    idx = channels.expand(where[0].shape[0], -1)
    unit, unit_bias = unit_conv_rows(sub[-1].op, idx, torch.ones_like(idx, dtype=torch.bool), *where,
                                     sub[-1].in_shape)
    slow = patch_lower_bound(sub[:-1], unit, box, relax, unit_bias)
    for grad in (False, True):  # in-place buffer without gradient, plain products with it
        with torch.set_grad_enabled(grad):
            shared, bias = shared_unit_relu_rows(sub[-1].op, relax[-1], channels, *where, sub[-1].in_shape)
            fast = patch_lower_bound(sub[:-2], shared, box, relax, bias)
        torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)

"""Random float64 networks over the full layer matrix, and an independent dense equivalent of any of them.

``matrix_net(seed)`` draws conv networks with every shape the bound engine must handle: dilation with groups 1
and 2, strides 1-3, kernels with a size-1 dimension under stride 2, convs that leave the last rows/columns of
their input unread, borders whose windows read only padding, BatchNorm (eval, random statistics), AvgPool,
Identity/Dropout, nested ``nn.Sequential``; some draws have no ReLU at all. ``dense_mlp`` rewrites a network as
Linear/ReLU layers by applying each affine stretch to the identity basis (no bound-engine code involved), the
reference that the conv fast paths and the MILP oracle use.
"""
from __future__ import annotations

import random
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("dilation", "unread", "size1_stride2", "padding_only", "mixed", "no_relu")


def _out_len(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_params(rng: random.Random, family: str, side: int) -> Tuple[tuple, int, int, tuple]:
    """(kernel, stride, padding, dilation) for one conv of the family on a ``side`` map."""
    if family == "dilation":
        return (rng.choice([2, 3]), rng.choice([2, 3])), rng.choice([1, 1, 2]), rng.choice([0, 1, 2]), \
            (rng.choice([2, 3]), rng.choice([1, 2, 3]))
    if family == "unread":  # stride does not divide the map: the last rows/cols are never read
        k = rng.choice([1, 2, 3])
        stride = rng.choice([2, 3])
        return (k, k), stride, 0, (1, 1)
    if family == "size1_stride2":
        return rng.choice([(1, 3), (3, 1), (1, 1), (1, 2)]), 2, rng.choice([0, 1]), (1, 1)
    if family == "padding_only":  # padding wider than the kernel: border outputs read only zeros
        k = rng.choice([1, 2])
        return (k, k), rng.choice([1, 2]), k + rng.choice([0, 1]), (1, 1)
    k = (rng.randint(1, 4), rng.randint(1, 4))
    return k, rng.randint(1, 3), rng.randint(0, 3), (rng.randint(1, 2), rng.randint(1, 2))


def _bn(channels: int, gen: torch.Generator, dims: int) -> nn.Module:
    bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(channels).double()
    with torch.no_grad():
        bn.weight.copy_(torch.randn(channels, generator=gen, dtype=torch.float64))
        bn.bias.copy_(0.3 * torch.randn(channels, generator=gen, dtype=torch.float64))
        bn.running_mean.copy_(0.3 * torch.randn(channels, generator=gen, dtype=torch.float64))
        bn.running_var.copy_(0.5 + torch.rand(channels, generator=gen, dtype=torch.float64))
    return bn


def matrix_net(seed: int, family: str = "", small: bool = False) -> Tuple[nn.Module, Tuple[int, int, int]]:
    """A random eval-mode float64 network of ``family`` (default: drawn from the seed) and its input shape;
    ``small``: one input channel, maps of 4-6 pixels and 2 channels per conv (for exact MILP oracles)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    family = family or FAMILIES[seed % len(FAMILIES)]
    channels, side = (1, rng.randint(4, 6)) if small else (rng.choice([1, 2]), rng.randint(5, 9))
    in_shape = (channels, side, side)
    blocks: List[nn.Module] = []
    h = w = side
    for _ in range(rng.choice([1, 2])):
        for _ in range(20):
            kernel, stride, padding, dilation = _conv_params(rng, family, min(h, w))
            oh = _out_len(h, kernel[0], stride, padding, dilation[0])
            ow = _out_len(w, kernel[1], stride, padding, dilation[1])
            if oh >= 1 and ow >= 1:
                break
        else:
            break
        groups = 2 if family in ("dilation", "mixed") and channels % 2 == 0 and rng.random() < 0.3 else 1
        cout = 2 if small else 2 * rng.randint(1, 2)
        conv = nn.Conv2d(channels, cout, kernel, stride, padding, dilation, groups).double()
        block: List[nn.Module] = [conv]
        if rng.random() < 0.3:
            block.append(_bn(cout, gen, 2))
        if family != "no_relu":
            block.append(nn.ReLU())
        if rng.random() < 0.2 and oh >= 2 and ow >= 2:
            block.append(nn.AvgPool2d(2, stride=1))
            oh, ow = oh - 1, ow - 1
        if rng.random() < 0.2:
            block.append(rng.choice([nn.Identity(), nn.Dropout(0.5)]))
        blocks.append(nn.Sequential(*block) if rng.random() < 0.5 else block[0] if len(block) == 1 else
                      nn.Sequential(nn.Sequential(*block[:1]), *block[1:]))
        channels, h, w = cout, oh, ow
    hidden = rng.randint(3, 6)
    head: List[nn.Module] = [nn.Flatten(), nn.Linear(channels * h * w, hidden).double()]
    if family != "no_relu":
        head.append(nn.ReLU())
    head.append(nn.Linear(hidden, 3).double())
    model = nn.Sequential(nn.Sequential(*blocks), nn.Sequential(*head))
    return model.double().eval(), in_shape


def leaves(model: nn.Module) -> List[nn.Module]:
    """The leaf modules of nested ``nn.Sequential`` containers, in order."""
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in leaves(child)]
    return [model]


def dense_mlp(model: nn.Module, in_shape: Sequence[int]) -> nn.Sequential:
    """The same function as Linear/ReLU layers: every affine stretch between ReLUs applied to the identity basis."""
    layers: List[nn.Module] = []
    stretch: List[nn.Module] = []
    shape = tuple(in_shape)
    for layer in leaves(model) + [nn.ReLU()]:
        if not isinstance(layer, nn.ReLU):
            stretch.append(layer)
            continue
        n = 1
        for d in shape:
            n *= d
        basis = torch.cat([torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)])
        with torch.no_grad():
            out = nn.Sequential(*stretch)(basis.view(n + 1, *shape))
        shape = tuple(out.shape[1:])
        out = out.flatten(1)
        linear = nn.Linear(n, out.shape[1]).double()
        with torch.no_grad():
            linear.weight.copy_((out[1:] - out[:1]).T)
            linear.bias.copy_(out[0])
        layers += [linear, nn.ReLU()]
        stretch = []
    flat = nn.Sequential(nn.Flatten(), *layers[:-1]) if len(in_shape) > 1 else nn.Sequential(*layers[:-1])
    return flat.double().eval()


def relu_inputs(model: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """``(model(x), [input of every nn.ReLU, in order])`` recorded by forward hooks."""
    seen: List[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return out, seen


def reached_values(model: nn.Module, box, C: torch.Tensor, shape, seed: int):
    """``(n, B, values (n, B, S), [ReLU inputs])`` at sampled and corner points of ``box`` and one PGD point per
    example minimising the sum of ``C f``: the values every lower bound must stay under."""
    from nets import pgd_points, sample_points

    f = lambda x: torch.einsum("bsk,bk->bs", C, model(x)).sum(1)  # noqa: E731
    points = torch.cat([sample_points(box, 48, seed), pgd_points(f, box, seed=seed).unsqueeze(0)])
    n, b = points.shape[:2]
    out, pre = relu_inputs(model, points.reshape((n * b,) + tuple(shape)))
    return n, b, torch.einsum("bsk,nbk->nbs", C, out.view(n, b, -1)), pre


def assert_rounding_bound(model64: nn.Module, model32: nn.Module, box, scale: float, samples: int = 64) -> None:
    """On the box scaled by ``scale`` (ends rounded to float32), ``forward_error`` of the float32 network bounds
    ``|f32(x) - f64(x)|`` at float32 points, and the case rounds at all."""
    from nets import sample_points
    from torchcert.bounds import Box
    from torchcert.bounds.rounding import arithmetic, forward_error

    box = Box(box.lower.float().double() * scale, box.upper.float().double() * scale)
    e = forward_error(model32, box, arithmetic(torch.float32))
    points = sample_points(box, samples, 0).flatten(0, 1).float()
    with torch.no_grad():
        gap = (model32(points).double() - model64(points.double())).abs().view(2 * samples, box.lower.shape[0], -1)
    assert float(gap.max()) > 0 and bool((gap <= e).all()), float((gap - e).max())


class Normalised(nn.Module):
    """Constants in a traced forward: input normalisation ``(x - mean) / std`` with per-channel buffers, then
    ``2 * x + 1`` and ``- 0.5`` (numbers)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.2, -0.1]).view(1, 2, 1, 1))
        self.register_buffer("std", torch.tensor([0.5, 2.0]).view(2, 1, 1))
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 2 * 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = F.relu(self.conv(2 * x + 1))
        return self.fc(torch.flatten(x, 1)) - 0.5

"""Random small networks and boxes for the property tests (float64)."""
from __future__ import annotations

import copy
from typing import Dict, List, Tuple

import torch
from torch import nn

from torchcert.bounds import Box, capture_bn_stats


def _randomise_bn(bn: nn.Module, gen: torch.Generator) -> None:
    n = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.randn(n, generator=gen, dtype=torch.float64))
        bn.bias.copy_(0.3 * torch.randn(n, generator=gen, dtype=torch.float64))
        bn.running_mean.copy_(0.3 * torch.randn(n, generator=gen, dtype=torch.float64))
        bn.running_var.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))


def conv_net(seed: int, bn: bool, channels: int = 2, side: int = 6, classes: int = 3) -> nn.Sequential:
    """Conv (stride 2, padding, dilation), grouped conv, AvgPool, Identity, Dropout, BN, Flatten, Linear."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    blocks: List[nn.Module] = [nn.Conv2d(channels, 4, 3, stride=2, padding=1)]
    blocks += [nn.BatchNorm2d(4)] if bn else [nn.Identity()]
    blocks += [nn.ReLU(), nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), nn.ReLU(), nn.Dropout(0.5),
               nn.AvgPool2d(2, stride=1)]
    out = 4 * (((side - 1) // 2 + 1) - 1) ** 2
    head = [nn.Flatten(), nn.Linear(out, 5)] + ([nn.BatchNorm1d(5)] if bn else []) + [nn.ReLU(), nn.Linear(5, classes)]
    model = nn.Sequential(nn.Sequential(*blocks), nn.Sequential(*head)).double()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _randomise_bn(m, gen)
    return model.eval()


def mlp(seed: int, sizes: Tuple[int, ...]) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: List[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double().eval()


def random_box(seed: int, shape: Tuple[int, ...], width: float) -> Box:
    gen = torch.Generator().manual_seed(seed + 7)
    center = torch.randn(shape, generator=gen, dtype=torch.float64)
    radius = width * torch.rand(shape, generator=gen, dtype=torch.float64)
    return Box(center - radius, center + radius)


def train_mode_stats(model: nn.Sequential, batch: torch.Tensor) -> Tuple[nn.Sequential, Dict]:
    """Capture train-mode statistics of ``batch``; also return an eval copy normalising with them."""
    model.train()
    with capture_bn_stats(model) as stats:
        model(batch)
    frozen = copy.deepcopy(model).eval()
    for (name, m), (_, mf) in zip(model.named_modules(), frozen.named_modules()):
        if m in stats:
            mean, var = stats[m]
            mf.running_mean.copy_(mean.detach())
            mf.running_var.copy_(var.detach())
    return frozen, stats


def sample_points(box: Box, n: int, seed: int) -> torch.Tensor:
    """``(n, B, *shape)``: uniform samples and random corners of ``box``."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((n,) + tuple(box.lower.shape), generator=gen, dtype=box.lower.dtype)
    corners = (torch.rand((n,) + tuple(box.lower.shape), generator=gen) > 0.5).to(box.lower.dtype)
    return torch.cat([box.lower + u * (box.upper - box.lower), box.lower + corners * (box.upper - box.lower)])


def pgd_points(f, box: Box, steps: int = 20, sign: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Projected gradient descent on ``sign * sum(f(x))`` inside ``box`` (finds low values of f)."""
    gen = torch.Generator().manual_seed(seed)
    x = box.lower + torch.rand(box.lower.shape, generator=gen, dtype=box.lower.dtype) * (box.upper - box.lower)
    step = (box.upper - box.lower) / 8
    for _ in range(steps):
        x = x.detach().requires_grad_()
        (grad,) = torch.autograd.grad((sign * f(x)).sum(), x)
        x = torch.max(torch.min(x - step * grad.sign(), box.upper), box.lower)
    return x.detach()

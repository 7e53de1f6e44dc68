"""Weight initialisation for certified training.

IBP initialisation (Shi et al., 2021): every Conv/Linear weight except the output layer's is redrawn from
``N(0, σ²)`` with ``σ = sqrt(2π) / fan_in``, which keeps the IBP interval width roughly constant across layers.
Parameters are visited in ``named_parameters`` order and drawn from the global RNG (or ``generator``), as the
original ``manual_init.ibp_init`` does, so a seeded run draws the same weights. The output layer is the last
weighted operation of the network's graph (for an ``nn.Sequential`` the last registered weight, as in the
original; for a residual network whatever order its modules were registered in).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

INIT_METHODS = ("default", "ibp", "kaiming")


def _fan_in(weight: torch.Tensor) -> int:
    """Inputs per output unit: in_features for Linear, in_ch·kh·kw for Conv2d."""
    return weight.shape[1] * math.prod(weight.shape[2:])


def _output_weight(model: nn.Module) -> Optional[torch.Tensor]:
    """The weight of the last Linear/Conv-like operation the network's graph applies (None if it has none)."""
    from torchcert.bounds import BoundGraph

    for _, module, _ in reversed(BoundGraph(model).operations):
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() > 1:
            return weight
    return None


@torch.no_grad()
def ibp_init(model: nn.Module, generator: Optional[torch.Generator] = None) -> None:
    """Redraw all non-final multi-dimensional ``*weight*`` parameters from N(0, 2π/fan_in²), in place."""
    output = _output_weight(model)
    for name, weight in model.named_parameters():
        if "weight" not in name or weight is output or weight.dim() == 1:  # dim 1: BatchNorm scale
            continue
        weight.normal_(0.0, math.sqrt(2 * math.pi / _fan_in(weight) ** 2), generator=generator)


@torch.no_grad()
def kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal redraw of every multi-dimensional weight (the original ``--kaiming_init``)."""
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() > 1:
            nn.init.kaiming_normal_(p)


def initialise(model: nn.Module, method: str) -> None:
    """Apply initialisation ``method`` (one of INIT_METHODS; ``default`` keeps PyTorch's)."""
    if method not in INIT_METHODS:
        raise ValueError(f"unknown init method {method!r}; valid: {', '.join(INIT_METHODS)}")
    if method == "ibp":
        ibp_init(model)
    elif method == "kaiming":
        kaiming_init(model)

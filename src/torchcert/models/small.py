"""Small networks for CPU work and tests."""
from __future__ import annotations

from typing import List

from torch import nn

from .layers import Flatten
from .registry import register_model


@register_model("cnn_small")
def cnn_small(in_ch: int, in_dim: int, num_class: int) -> nn.Sequential:
    """Conv(16, 4x4, s2)-ReLU-Conv(32, 4x4, s2)-ReLU-Flatten-Linear(100)-ReLU-Linear(num_class).

    Each 4x4, stride-2, padding-1 conv halves the side (n -> n // 2), so the Linear has
    ``32 * (in_dim // 4) ** 2`` in-features.
    """
    side = in_dim // 2 // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, 16, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.ReLU(),
        Flatten(),
        nn.Linear(32 * side * side, 100),
        nn.ReLU(),
        nn.Linear(100, num_class),
    )


@register_model("mlp")
def mlp(in_ch: int, in_dim: int, num_class: int, width: int = 50, depth: int = 2) -> nn.Sequential:
    """Flatten, then ``depth`` Linear(width)-ReLU blocks, then Linear(num_class).

    Indices: Flatten 0, hidden Linears 1, 3, ..., output Linear ``2 * depth + 1``.
    """
    layers: List[nn.Module] = [Flatten()]
    features = in_ch * in_dim * in_dim
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    layers.append(nn.Linear(features, num_class))
    return nn.Sequential(*layers)


@register_model("mlp_784_50_50_10", input_shapes=((1, 28),))
def mlp_784_50_50_10(in_ch: int, in_dim: int, num_class: int) -> nn.Sequential:
    """The golden-case MLP: Flatten-Linear(784,50)-ReLU-Linear(50,50)-ReLU-Linear(50,10).

    The name fixes the sizes: the input must have 784 values (1x28x28) and ``num_class`` must be 10.
    """
    if in_ch * in_dim * in_dim != 784 or num_class != 10:
        raise ValueError(
            f"mlp_784_50_50_10 needs in_ch * in_dim**2 == 784 and num_class == 10, got in_ch={in_ch}, "
            f"in_dim={in_dim}, num_class={num_class}; use build_model('mlp', ..., width=50) for other sizes"
        )
    return mlp(in_ch, in_dim, num_class, width=50, depth=2)

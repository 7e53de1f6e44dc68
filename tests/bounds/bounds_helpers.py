"""Shared helpers of the bounds tests: golden-case loading and the cnn_7layer_bn2 / MLP architectures."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import torch
from torch import nn


class ViewFlatten(nn.Module):
    """The original code's view-style Flatten (matched by class name in the bounds)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


ViewFlatten.__name__ = "Flatten"


def cnn_7layer_bn2(in_ch: int, in_dim: int, width: int, linear_size: int, num_class: int = 10) -> nn.Sequential:
    """Conv-BN-ReLU x5 (third conv stride 2), Flatten, Linear-BN1d-ReLU-Linear; state_dict keys 0..19."""
    w = width
    return nn.Sequential(
        nn.Conv2d(in_ch, w, 3, 1, 1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, w, 3, 1, 1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
        ViewFlatten(),
        nn.Linear(2 * w * (in_dim // 2) ** 2, linear_size), nn.BatchNorm1d(linear_size), nn.ReLU(),
        nn.Linear(linear_size, num_class),
    )


def mlp_784_50_50_10() -> nn.Sequential:
    return nn.Sequential(ViewFlatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(),
                         nn.Linear(50, 10))


def golden_model(case: Dict) -> nn.Sequential:
    """The case's model with its state_dict loaded (train mode, as constructed)."""
    if case["model"]["name"] == "cnn_7layer_bn2":
        model = cnn_7layer_bn2(**case["model"]["kwargs"], num_class=case["num_class"])
    elif case["model"]["name"] == "mlp_784_50_50_10":
        model = mlp_784_50_50_10()
    else:
        raise ValueError(case["model"]["name"])
    model.load_state_dict(case["state_dict"])
    return model


def load_case(golden_dir: Path, name: str) -> Dict:
    return torch.load(golden_dir / f"case_{name}.pt", weights_only=True)

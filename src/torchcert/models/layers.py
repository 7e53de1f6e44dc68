"""Parameter-free layers used by the model zoo."""
from __future__ import annotations

import torch
from torch import nn


class Flatten(nn.Module):
    """Flatten every dimension but the batch one: (B, C, H, W) -> (B, C*H*W), C-major.

    Same semantics as the original code's view-based Flatten (``x.view(x.size(0), -1)``), so the
    in-features of the following Linear layer, and the order of its weight columns, match it.
    It has no parameters or buffers, so it adds no ``state_dict`` key.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)

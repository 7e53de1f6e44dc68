"""Specifications (margin matrix ``C``) and the input box of an L-infinity ball."""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from .box import Box


def margin_matrix(labels: Tensor, num_classes: int) -> Tensor:
    """Margin specification ``C`` of shape ``(B, K-1, K)``.

    Row ``i`` of example ``b`` is ``e_y - e_j`` where ``j`` runs over the classes other than the label
    ``y = labels[b]`` in increasing order, so ``C @ logits`` are the margins ``z_y - z_j``.
    """
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (B,), got {tuple(labels.shape)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    batch = labels.shape[0]
    eye = torch.eye(num_classes, device=labels.device)
    others = torch.arange(num_classes, device=labels.device).expand(batch, num_classes)
    keep = others != labels.unsqueeze(1)
    j = others[keep].view(batch, num_classes - 1)
    return eye[labels].unsqueeze(1) - eye[j]


def input_box(
    x: Tensor,
    eps: Union[float, Tensor],
    mean: Tensor,
    std: Tensor,
    data_min: Union[float, Tensor],
    data_max: Union[float, Tensor],
) -> Box:
    """Box ``[max(x - eps/std, data_min), min(x + eps/std, data_max)]`` of a normalised batch.

    ``x``: ``(B, C, H, W)`` (or ``(B, F)``); ``eps`` in pixel units ([0, 1] scale); ``std`` ``(C,)``.
    ``eps / std`` is evaluated as the original code does (``(eps / std).view(1, -1, 1, 1)``) so the box
    matches it to the last bit. ``mean`` is accepted for symmetry with the data pipeline (the box of a
    normalised input does not depend on it).
    """
    del mean  # the normalised box only depends on std and the data range
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    eps_norm = eps / std
    if x.dim() == 4:
        eps_norm = eps_norm.view(1, -1, 1, 1)
    lower = torch.max(x - eps_norm, torch.as_tensor(data_min, dtype=x.dtype, device=x.device))
    upper = torch.min(x + eps_norm, torch.as_tensor(data_max, dtype=x.dtype, device=x.device))
    return Box(lower, upper)

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

    ``x``: ``(B, C, H, W)`` (or ``(B, F)``); ``eps >= 0`` in pixel units ([0, 1] scale); ``std`` ``(C,)``;
    ``data_min``/``data_max``: scalars, per-channel ``(C,)`` (like ``std``) or anything broadcastable to ``x``.
    ``eps / std`` is evaluated as the original code does (``(eps / std).view(1, -1, 1, 1)``) so the box
    matches it to the last bit. ``mean`` is accepted for symmetry with the data pipeline (the box of a
    normalised input does not depend on it).
    """
    del mean  # the normalised box only depends on std and the data range
    if bool((torch.as_tensor(eps) < 0).any()) or not bool(torch.isfinite(torch.as_tensor(eps)).all()):
        raise ValueError(f"eps must be finite and >= 0, got {eps}")
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    eps_norm = eps / std
    if x.dim() == 4:
        eps_norm = eps_norm.view(1, -1, 1, 1)
    low = _per_channel(data_min, x, "data_min")
    high = _per_channel(data_max, x, "data_max")
    return Box(torch.max(x - eps_norm, low), torch.min(x + eps_norm, high))


def _per_channel(limit: Union[float, Tensor], x: Tensor, name: str) -> Tensor:
    """``limit`` as a tensor broadcastable to ``x``: a ``(C,)`` vector of an image batch is per channel."""
    t = torch.as_tensor(limit, dtype=x.dtype, device=x.device)
    if x.dim() == 4 and t.dim() == 1 and t.numel() > 1:
        if t.numel() != x.shape[1]:
            raise ValueError(f"{name} has {t.numel()} values but the input has {x.shape[1]} channels")
        t = t.view(1, -1, 1, 1)
    try:
        torch.broadcast_shapes(t.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to the input {tuple(x.shape)}; "
                         "give a scalar, a per-channel (C,) vector or a (1, C, 1, 1) tensor") from None
    return t

"""Helpers for backward coefficients that cover a rectangular window of a feature map.

Backward coefficients ``A`` have shape ``(S, B, *shape)``. For feature maps ``(C, H, W)`` the last two
dimensions may cover only the window ``[oy, oy + h) x [ox, ox + w)`` of the ``H x W`` map (the
receptive field of the neurons being bounded); ``offset = (oy, ox)``. For vectors ``offset`` is None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

Offset = Optional[Tuple[int, int]]


@dataclass(frozen=True)
class Arithmetic:
    """Floating-point format the network runs in: unit roundoff ``unit`` (relative error of one rounded
    operation), ``tiny`` (absolute error of one operation near zero: the smallest normal number, which covers
    subnormals and flush-to-zero alike) and ``largest`` (the largest finite number; beyond it, overflow)."""

    unit: float
    tiny: float = 0.0
    largest: float = float("inf")

    def gamma(self, n: int) -> float:
        return gamma(n, self.unit)


def gamma(n: int, unit: float) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``: relative error bound of ``n`` rounded operations."""
    if n * unit >= 1:
        raise ValueError(f"rounding error bound undefined for {n} operations at unit roundoff {unit}")
    return n * unit / (1 - n * unit)


def magnitude(box) -> Tensor:
    """``max(|lower|, |upper|)``: the largest absolute value in a box."""
    return torch.maximum(box.lower.abs(), box.upper.abs())


def crop(t: Tensor, offset: Offset, size: Tuple[int, ...]) -> Tensor:
    """``t[..., oy:oy+h, ox:ox+w]`` where ``(h, w) = size[-2:]``; ``t`` itself when ``offset`` is None."""
    if offset is None:
        return t
    oy, ox = offset
    h, w = size[-2], size[-1]
    if oy == 0 and ox == 0 and t.shape[-2] == h and t.shape[-1] == w:
        return t
    return t[..., oy:oy + h, ox:ox + w]


def channel_view(v: Tensor, ndim: int) -> Tensor:
    """Per-channel vector ``(C,)`` viewed to broadcast over ``(..., C, *spatial)`` with ``ndim`` feature dims."""
    return v.view((-1,) + (1,) * (ndim - 1))


def expand(A: Tensor, offset: Offset, size: Tuple[int, ...]) -> Tuple[Tensor, Offset]:
    """Coefficients ``A`` on a window at ``offset`` written into the whole ``(h, w) = size[-2:]`` map (zeros
    outside the window): ``(A', (0, 0))``. Needed before adding a full-map term to ``A`` (broadcasting a
    cropped ``A`` against it would be wrong). Vectors (``offset`` None) are returned as they are."""
    if offset is None:
        return A, offset
    oy, ox = offset
    h, w = size[-2], size[-1]
    if A.shape[-2] == 0 or A.shape[-1] == 0:
        return A.new_zeros(A.shape[:-2] + (h, w)), (0, 0)
    pads = (ox, w - ox - A.shape[-1], oy, h - oy - A.shape[-2])
    if any(p < 0 for p in pads):
        raise ValueError(f"window {tuple(A.shape[-2:])} at {offset} exceeds the {h}x{w} map")
    return (F.pad(A, pads) if any(pads) else A), (0, 0)
